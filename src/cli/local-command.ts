/** `spore local`: flags, their validation, and the running client. */
import { Args, Command, Options } from "@effect/cli"
import { Console, Duration, Effect, Option } from "effect"
import * as Client from "../client/client.js"
import { ClientMetrics, makeClientMetrics } from "../client/client-metrics.js"
import { formatHostPort, serveMetrics } from "../metrics/http.js"
import * as Drain from "../net/drain.js"
import type { ClientStatus } from "../client/client.js"
import type { ClientConfig } from "../client/config.js"
import { bufferOptions, checkHostPort, drainOption, metricsAddrOption, checkBuffers, checkPort, checkSeconds, checkSecret, integerOption, optionalTextOption, secretOption, textOption, UsageError } from "./options.js"

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
  to: optionalTextOption("to", "Address of the server (required).", { env: ["SPORE_SERVER", "BORE_SERVER"], alias: "t" }),
  port: integerOption("port", "Public port to ask the server for; 0 lets it choose.", { default: 0, alias: "p" }),
  secret: secretOption,
  controlPort: integerOption("control-port", "The server's control port.", {
    default: 7835,
    env: ["SPORE_CONTROL_PORT"]
  }),
  noReconnect: Options.boolean("no-reconnect").pipe(
    Options.withDescription("Exit (with code 1) when the server is lost, instead of reconnecting.")
  ),
  maxReconnectDelay: integerOption("max-reconnect-delay", "Longest wait in seconds between reconnection attempts.", {
    default: 64,
    env: ["SPORE_MAX_RECONNECT_DELAY"]
  }),
  drainSeconds: drainOption,
  metricsAddr: metricsAddrOption,
  ...bufferOptions
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
      localHost: flags.localHost,
      localPort: yield* checkPort("local-port", chosenPort.value, { allowZero: false }),
      to: flags.to.value,
      port: yield* checkPort("port", flags.port, { allowZero: true }),
      secret: yield* checkSecret(flags.secret),
      controlPort: yield* checkPort("control-port", flags.controlPort, { allowZero: false }),
      reconnect: !flags.noReconnect,
      maxReconnectDelay: Duration.seconds(yield* checkSeconds("max-reconnect-delay", flags.maxReconnectDelay, { min: 1 })),
      buffers: yield* checkBuffers(flags),
      drain: Duration.seconds(yield* checkSeconds("drain-seconds", flags.drainSeconds, { min: 0 }))
    }
  })

/** The client's state, one plain line on stderr each time it changes. */
const report = (status: ClientStatus) => {
  switch (status._tag) {
    case "Listening":
      return Console.error(`${status.resumed ? "resumed: " : ""}listening at ${status.host}:${status.port}`)
    case "Lost":
      return Console.error(`lost the connection to the server: ${status.reason}`)
    case "AttemptFailed":
      return Console.error(`could not reach the server: ${status.reason}`)
    case "Retrying":
      return Console.error(`reconnecting in ${(Duration.toMillis(status.delay) / 1000).toFixed(1)} s`)
  }
}

/** Serves the client's metrics at `--metrics-addr`, if given, for the rest of the scope. */
const serveClientMetrics = (flags: Flags) =>
  Effect.gen(function*() {
    const metrics = makeClientMetrics()
    if (Option.isSome(flags.metricsAddr)) {
      const address = yield* checkHostPort("metrics-addr", flags.metricsAddr.value)
      const { port } = yield* serveMetrics(address, metrics.registry)
      yield* Effect.logInfo(`metrics at http://${formatHostPort(address.host, port)}/metrics`)
    }
    return metrics
  })

export const localCommand = Command.make("local", options, (flags) =>
  Effect.gen(function*() {
    const config = yield* toConfig(flags)
    const metrics = yield* serveClientMetrics(flags)
    return yield* Client.run(config, report).pipe(
      Effect.provide(Drain.layer),
      Effect.provideService(ClientMetrics, metrics)
    )
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription("Expose a local port through a remote server.")
  )
