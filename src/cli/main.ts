/**
 * The `spore` executable: the one place that reads argv and composes layers.
 *
 * Exit codes: 0 after SIGINT/SIGTERM, 1 when the tunnel or server fails, 2 for bad usage.
 */
import { Command, ValidationError } from "@effect/cli"
// The modules themselves, not the package's barrel, which would also load an HTTP client.
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Effect, Exit } from "effect"
import { checkArgs, knownOptions } from "./argv-check.js"
import { httpCommand, options as httpOptions } from "./http-command.js"
import { kafkaCommand, options as kafkaOptions } from "./kafka-command.js"
import { localCommand, options as localOptions } from "./local-command.js"
import * as Logging from "./logger.js"
import { options as serverOptions, serverCommand } from "./server-command.js"
import { VERSION } from "../version.js"
import { UsageError } from "./options.js"

const version = VERSION

const spore = Command.make("spore").pipe(
  Command.withDescription("A TCP tunnel that speaks the bore protocol."),
  Command.withSubcommands([serverCommand, localCommand, httpCommand, kafkaCommand])
)

const cli = Command.run(spore, { name: "spore", version })

// Mistakes @effect/cli would answer with a misleading line get their own (argv-check.ts).
const mistake = checkArgs(process.argv.slice(2), new Map([
  ["server", knownOptions(serverOptions)],
  ["local", knownOptions(localOptions)],
  ["http", knownOptions(httpOptions)],
  ["kafka-proxy", knownOptions(kafkaOptions)]
]))

const program = (mistake === undefined ? cli(process.argv) : Effect.fail(new UsageError({ message: mistake }))).pipe(
  Effect.as(0),
  Effect.catchAll((error) => {
    // @effect/cli has already printed its own validation messages.
    if (ValidationError.isValidationError(error)) return Effect.succeed(2)
    // Said already, as a JSON line (--log-format json).
    if (error instanceof Logging.ReportedFailure) return Effect.succeed((error as Logging.ReportedFailure).exitCode)
    return Effect.as(Console.error(`error: ${Logging.describeError(error)}`), Logging.exitCodeOf(error))
  }),
  Effect.provide(NodeContext.layer),
  Effect.provide(Logging.layer)
)

// runMain turns the first SIGINT or SIGTERM into an interruption, which drains (see
// net/drain.ts), and then stops listening for signals; a second one must stop at once.
let signals = 0
const onSignal = () => {
  signals += 1
  if (signals < 2) return
  process.stderr.write("error: second signal: stopping at once\n")
  process.exit(1)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) return onExit(typeof exit.value === "number" ? exit.value : 0)
    if (Cause.isInterruptedOnly(exit.cause)) return onExit(0)
    process.stderr.write(`error: ${Cause.pretty(exit.cause)}\n`)
    onExit(1)
  }
})
