/**
 * `spore local`: flags, their validation, and the running client: one tunnel per local port
 * (`spore local 3000 5432`, `--local-port` repeated, or `--config FILE`), each over its own
 * control connection (so it works against bore servers too), each reconnecting on its own.
 */
import { Args, Command, Options } from "@effect/cli"
import type { FileSystem } from "@effect/platform"
import { Console, Duration, Effect, Option } from "effect"
import * as Client from "../client/client.js"
import type { ClientStatus } from "../client/client.js"
import { ClientMetrics, makeClientMetrics, tunnelLabel } from "../client/client-metrics.js"
import type { ClientConfig } from "../client/config.js"
import type { ProxyProtocolVersion } from "../client/proxy-header.js"
import { formatHostPort, serveMetrics } from "../metrics/http.js"
import * as Drain from "../net/drain.js"
import * as Logging from "./logger.js"
import {
  bufferOptions,
  checkBuffers,
  checkChoice,
  checkHostPort,
  checkPort,
  checkSeconds,
  checkSecret,
  drainOption,
  integerOption,
  logFormatOption,
  metricsAddrOption,
  optionalIntegerOption,
  optionalTextOption,
  secretOption,
  textOption,
  UsageError
} from "./options.js"
import { readTunnelFile, type TunnelEntry, type TunnelFile } from "./tunnel-file.js"

const DEFAULT_CONTROL_PORT = 7835

const options = {
  localPortArgs: Args.integer({ name: "LOCAL_PORT" }).pipe(
    Args.withDescription("Port of a local service to expose; give several for several tunnels (or use --local-port)."),
    Args.repeated
  ),
  // Text, read as a number below: @effect/cli 0.77 rejects a single repeated integer option.
  localPorts: Options.text("local-port").pipe(
    Options.withDescription("Port of a local service to expose (same as LOCAL_PORT); repeat for several tunnels."),
    Options.repeated
  ),
  localHost: textOption("local-host", "Host of the local services.", { default: "localhost", alias: "l" }),
  to: optionalTextOption("to", "Address of the server (required, here or in --config).", { env: ["SPORE_SERVER", "BORE_SERVER"], alias: "t" }),
  port: integerOption("port", "Public port to ask the server for (one tunnel only); 0 lets it choose.", { default: 0, alias: "p" }),
  secret: secretOption,
  controlPort: optionalIntegerOption("control-port", "The server's control port.", {
    defaultText: String(DEFAULT_CONTROL_PORT),
    env: ["SPORE_CONTROL_PORT"]
  }),
  noReconnect: Options.boolean("no-reconnect").pipe(
    Options.withDescription("Exit (with code 1) when the server is lost, instead of reconnecting.")
  ),
  maxReconnectDelay: integerOption("max-reconnect-delay", "Longest wait in seconds between reconnection attempts.", {
    default: 64,
    env: ["SPORE_MAX_RECONNECT_DELAY"]
  }),
  proxyProtocol: optionalTextOption(
    "proxy-protocol",
    "v1 or v2: send each local connection a PROXY protocol header (v1 text, v2 binary) with the visitor's address. Needs a Spore server. Default: off."
  ),
  config: Options.file("config", { exists: "yes" }).pipe(
    Options.withDescription("A JSON file of tunnels, each with its own localPort, localHost, port and proxyProtocol (see the README)."),
    Options.optional
  ),
  drainSeconds: drainOption,
  metricsAddr: metricsAddrOption,
  logFormat: logFormatOption,
  ...bufferOptions
}

type Flags = Command.Command.ParseConfig<typeof options>

/** The tunnels asked for: local ports from the command line, then those of the file. */
const tunnelEntries = (flags: Flags, file: Option.Option<TunnelFile>) =>
  Effect.gen(function*() {
    const flagged = yield* Effect.forEach(flags.localPorts, (text) =>
      /^\d+$/.test(text) ? Effect.succeed(Number(text)) : new UsageError({ message: `--local-port must be a port number, not ${text}` }))
    const fromCommandLine = [...new Set([...flags.localPortArgs, ...flagged])].map((localPort): TunnelEntry => ({ localPort }))
    return [...fromCommandLine, ...Option.match(file, { onNone: () => [], onSome: (f) => f.tunnels })]
  })

const toConfigs = (flags: Flags): Effect.Effect<ReadonlyArray<ClientConfig>, UsageError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const file = yield* Effect.transposeMapOption(flags.config, readTunnelFile)
    const entries = yield* tunnelEntries(flags, file)
    if (entries.length === 0) return yield* new UsageError({ message: "missing the local port: give LOCAL_PORT, --local-port or --config" })
    if (entries.length > 1 && flags.port !== 0) {
      return yield* new UsageError({ message: "--port applies to one tunnel; give each tunnel its port in --config" })
    }
    const to = Option.orElse(flags.to, () => Option.flatMap(file, (f) => Option.fromNullable(f.to)))
    if (Option.isNone(to)) return yield* new UsageError({ message: "missing --to: the address of the server" })
    const controlPort = Option.getOrElse(
      Option.orElse(flags.controlPort, () => Option.flatMap(file, (f) => Option.fromNullable(f.controlPort))),
      () => DEFAULT_CONTROL_PORT
    )
    const shared = {
      to: to.value,
      secret: yield* checkSecret(flags.secret),
      controlPort: yield* checkPort("control-port", controlPort, { allowZero: false }),
      reconnect: !flags.noReconnect,
      maxReconnectDelay: Duration.seconds(yield* checkSeconds("max-reconnect-delay", flags.maxReconnectDelay, { min: 1 })),
      buffers: yield* checkBuffers(flags),
      drain: Duration.seconds(yield* checkSeconds("drain-seconds", flags.drainSeconds, { min: 0 }))
    }
    const flaggedProxyProtocol = yield* Effect.transposeMapOption(flags.proxyProtocol, (value) =>
      checkChoice("proxy-protocol", value, ["v1", "v2"] as const))
    const configs = yield* Effect.forEach(entries, (entry) =>
      Effect.gen(function*() {
        const proxyProtocol: Option.Option<ProxyProtocolVersion> = entry.proxyProtocol === undefined
          ? flaggedProxyProtocol
          : Option.some(entry.proxyProtocol)
        return {
          ...shared,
          localHost: entry.localHost ?? flags.localHost,
          localPort: yield* checkPort("local-port", entry.localPort, { allowZero: false }),
          port: yield* checkPort("port", entry.port ?? flags.port, { allowZero: true }),
          proxyProtocol
        } satisfies ClientConfig
      }))
    const labels = configs.map((config) => tunnelLabel(config).tunnel)
    const repeated = labels.find((label, index) => labels.indexOf(label) !== index)
    if (repeated !== undefined) return yield* new UsageError({ message: `${repeated} is given twice; one tunnel per local service` })
    return configs
  })

/**
 * The client's state, one line on stderr each time it changes: plain lines in text mode (with the
 * local service first when there are several tunnels), log lines in JSON mode.
 */
const reporter = (config: ClientConfig, format: Logging.LogFormat, several: boolean) => (status: ClientStatus) => {
  const line = statusLine(status)
  if (format === "json") return Effect.logInfo(line)
  return Console.error(several ? `[${tunnelLabel(config).tunnel}] ${line}` : line)
}

const statusLine = (status: ClientStatus) => {
  switch (status._tag) {
    case "Listening":
      return `${status.resumed ? "resumed: " : ""}listening at ${status.host}:${status.port}`
    case "Lost":
      return `lost the connection to the server: ${status.reason}`
    case "AttemptFailed":
      return `could not reach the server: ${status.reason}`
    case "Retrying":
      return `reconnecting in ${(Duration.toMillis(status.delay) / 1000).toFixed(1)} s`
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
  Effect.flatMap(checkChoice("log-format", flags.logFormat, ["text", "json"] as const), (logFormat) =>
    serveTunnels(flags, logFormat).pipe(Effect.scoped, Effect.provide(Logging.layerFor(logFormat))))).pipe(
    Command.withDescription("Expose local ports through a remote server.")
  )

const serveTunnels = (flags: Flags, logFormat: Logging.LogFormat) =>
  Effect.gen(function*() {
    const configs = yield* toConfigs(flags)
    const metrics = yield* serveClientMetrics(flags)
    // Every tunnel runs on its own; the first to fail for good (a wrong secret, say) ends all.
    return yield* Effect.all(
      configs.map((config) =>
        Client.run(config, reporter(config, logFormat, configs.length > 1)).pipe(
          Effect.annotateLogs({ tunnel: tunnelLabel(config).tunnel })
        )
      ),
      { concurrency: "unbounded" }
    ).pipe(
      Effect.provide(Drain.layer),
      Effect.provideService(ClientMetrics, metrics)
    )
  })
