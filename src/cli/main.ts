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
import { type CommandHelp, commandHelp, programHelp } from "./help.js"
import { description as httpDescription, httpCommand, options as httpOptions } from "./http-command.js"
import { description as kafkaDescription, kafkaCommand, options as kafkaOptions } from "./kafka-command.js"
import { description as localDescription, localCommand, options as localOptions } from "./local-command.js"
import * as Logging from "./logger.js"
import { description as serverDescription, options as serverOptions, serverCommand } from "./server-command.js"
import { VERSION } from "../version.js"
import { UsageError } from "./options.js"

const version = VERSION

const spore = Command.make("spore").pipe(
  Command.withDescription("A TCP tunnel that speaks the bore protocol."),
  Command.withSubcommands([serverCommand, localCommand, httpCommand, kafkaCommand])
)

const cli = Command.run(spore, { name: "spore", version })

const helps: ReadonlyArray<CommandHelp> = [
  { name: "server", description: serverDescription, args: "", fields: serverOptions, footer: ["Example: spore server --min-port 20000 --max-port 21000"] },
  {
    name: "local",
    description: localDescription,
    args: "LOCAL_PORT...",
    argLines: [["LOCAL_PORT...", "Port of a local service to expose; several for several tunnels. Env: BORE_LOCAL_PORT (one port)."]],
    fields: localOptions,
    footer: ["Example: spore local 3000 --to my.server.example"]
  },
  {
    name: "http",
    description: httpDescription,
    args: "LOCAL_PORT",
    argLines: [["LOCAL_PORT", "Port of the local web app to expose."]],
    fields: httpOptions,
    footer: ["Example: spore http 3000 --to https://tunnel.example.com --token KEY --name myapp"]
  },
  { name: "kafka-proxy", description: kafkaDescription, args: "", fields: kafkaOptions, footer: ["Example: spore kafka-proxy --to my.server.example --bootstrap-server localhost:9092"] }
]

const args = process.argv.slice(2)
// Mistakes @effect/cli would answer with a misleading line get their own (argv-check.ts).
const mistake = checkArgs(args, new Map(helps.map((help) => [help.name, knownOptions(help.fields)])))
// --help is Spore's own (help.ts): the command's, or the program's before any command.
const wantsHelp = args.includes("--help") || args.includes("-h")
const helpFor = helps.find((help) => args.includes(help.name))

const help = Console.log(helpFor === undefined ? programHelp(version, helps) : commandHelp(version, helpFor))

const program = (wantsHelp ? Effect.as(help, 0) : mistake === undefined ? cli(process.argv) : Effect.fail(new UsageError({ message: mistake }))).pipe(
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
