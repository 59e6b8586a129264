/** `spore local`: flags, their validation, and the running client. */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import * as Client from "../client/client.js"
import type { ClientConfig } from "../client/config.js"
import { checkPort, checkSecret, integerOption, secretOption, textOption, UsageError } from "./options.js"

const options = {
  localPortArg: Args.integer({ name: "LOCAL_PORT" }).pipe(
    Args.withDescription("Port of the local service to expose (or use --local-port)."),
    Args.optional
  ),
  localPort: Options.integer("local-port").pipe(
    Options.withDescription("Port of the local service to expose (same as LOCAL_PORT)."),
    Options.optional
  ),
  localHost: textOption("local-host", "Host of the local service.", { default: "localhost", alias: "l" }),
  to: textOption("to", "Address of the server (required).", { env: ["SPORE_SERVER", "BORE_SERVER"], alias: "t" }),
  port: integerOption("port", "Public port to ask the server for; 0 lets it choose.", { default: 0, alias: "p" }),
  secret: secretOption,
  controlPort: integerOption("control-port", "The server's control port.", {
    default: 7835,
    env: ["SPORE_CONTROL_PORT"]
  })
}

type Flags = Command.Command.ParseConfig<typeof options>

const toConfig = (flags: Flags): Effect.Effect<ClientConfig, UsageError> =>
  Effect.gen(function*() {
    const { localPortArg, localPort } = flags
    if (Option.isSome(localPortArg) && Option.isSome(localPort) && localPortArg.value !== localPort.value) {
      return yield* new UsageError({ message: "LOCAL_PORT and --local-port disagree; give one of them" })
    }
    const chosenPort = Option.orElse(localPortArg, () => localPort)
    if (Option.isNone(chosenPort)) return yield* new UsageError({ message: "missing the local port: give LOCAL_PORT or --local-port" })
    if (Option.isNone(flags.to)) return yield* new UsageError({ message: "missing --to: the address of the server" })
    return {
      localHost: Option.getOrElse(flags.localHost, () => "localhost"),
      localPort: yield* checkPort("local-port", chosenPort.value, { allowZero: false }),
      to: flags.to.value,
      port: yield* checkPort("port", flags.port, { allowZero: true }),
      secret: yield* checkSecret(flags.secret),
      controlPort: yield* checkPort("control-port", flags.controlPort, { allowZero: false })
    }
  })

export const localCommand = Command.make("local", options, (flags) =>
  Effect.gen(function*() {
    const config = yield* toConfig(flags)
    const tunnel = yield* Client.openTunnel(config)
    yield* Console.error(`listening at ${config.to}:${tunnel.remotePort}`)
    return yield* tunnel.serve
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription("Expose a local port through a remote server.")
  )
