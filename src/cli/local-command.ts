/**
 * `spore local`: flags, their validation, and the running client: one tunnel per local port
 * (`spore local 3000 5432`, `--local-port` repeated, or `--config FILE`), each over its own
 * control connection (so it works against bore servers too), each reconnecting on its own.
 */
import { Args, Command, Options } from "@effect/cli"
import type { FileSystem } from "@effect/platform"
import { Config, Console, Effect, Layer, Option } from "effect"
import * as Client from "../client/client.js"
import type { ClientStatus } from "../client/status.js"
import { ClientMetrics, tunnelLabel } from "../client/client-metrics.js"
import type { ClientConfig } from "../client/config.js"
import * as LocalRelay from "../client/local-relay.js"
import type { ProxyProtocolVersion } from "../client/proxy-header.js"
import * as Drain from "../net/drain.js"
import * as Logging from "./logger.js"
import { checkChoice, checkPort, integerOption, metricsAddrOption, optionalTextOption, textOption, UsageError } from "./options.js"
import { readTunnelFile, type TunnelEntry, type TunnelFile } from "./tunnel-file.js"
import { checkTunnelFlags, serveClientMetrics, statusLine, tunnelOptions } from "./tunnel-flags.js"

/** What the command does, in `--help`. */
export const description = "Expose local ports through a remote server."

export const options = {
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
  port: integerOption("port", "Public port to ask the server for (one tunnel only); 0 lets it choose.", { default: 0, alias: "p" }),
  proxyProtocol: optionalTextOption(
    "proxy-protocol",
    "v1 or v2: send each local connection a PROXY protocol header (v1 text, v2 binary) with the visitor's address. Needs a Spore server. Default: off."
  ),
  config: Options.file("config", { exists: "yes" }).pipe(
    Options.withDescription("A JSON file of tunnels, each with its own localPort, localHost, port and proxyProtocol; to and controlPort may be there too (see the README)."),
    Options.optional
  ),
  metricsAddr: metricsAddrOption,
  ...tunnelOptions
}

type Flags = Command.Command.ParseConfig<typeof options>

/** The tunnels asked for: local ports from the command line, then those of the file. */
const tunnelEntries = (flags: Flags, file: Option.Option<TunnelFile>) =>
  Effect.gen(function*() {
    const flagged = yield* Effect.forEach(flags.localPorts, (text) =>
      /^\d+$/.test(text) ? Effect.succeed(Number(text)) : new UsageError({ message: `--local-port must be a port number, not ${text}` }))
    const fromCommandLine = [...new Set([...flags.localPortArgs, ...flagged])].map((localPort): TunnelEntry => ({ localPort }))
    const entries = [...fromCommandLine, ...Option.match(file, { onNone: () => [], onSome: (f) => f.tunnels })]
    if (entries.length > 0) return entries
    // bore's own environment variable for its LOCAL_PORT, when nothing else names a port.
    const fromEnv = yield* Config.option(Config.string("BORE_LOCAL_PORT")).pipe(Effect.orElseSucceed(() => Option.none<string>()))
    if (Option.isNone(fromEnv)) return entries
    if (!/^\d+$/.test(fromEnv.value)) return yield* new UsageError({ message: `BORE_LOCAL_PORT must be a port number, not ${fromEnv.value}` })
    return [{ localPort: Number(fromEnv.value) }]
  })

const toConfigs = (flags: Flags): Effect.Effect<ReadonlyArray<ClientConfig>, UsageError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const file = yield* Effect.transposeMapOption(flags.config, readTunnelFile)
    const entries = yield* tunnelEntries(flags, file)
    if (entries.length === 0) return yield* new UsageError({ message: "missing the local port: give LOCAL_PORT, --local-port, --config or BORE_LOCAL_PORT" })
    if (entries.length > 1 && flags.port !== 0) {
      return yield* new UsageError({ message: "--port applies to one tunnel; give each tunnel its port in --config" })
    }
    const shared = yield* checkTunnelFlags(flags, Option.getOrElse(file, () => ({})))
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

export const localCommand = Command.make("local", options, (flags) =>
  Logging.withLogFormat(flags.logFormat, (logFormat) => Effect.scoped(serveTunnels(flags, logFormat)))).pipe(
    Command.withDescription(description)
  )

const serveTunnels = (flags: Flags, logFormat: Logging.LogFormat) =>
  Effect.gen(function*() {
    const configs = yield* toConfigs(flags)
    const metrics = yield* serveClientMetrics(flags.metricsAddr)
    // Every tunnel runs on its own; the first to fail for good (a wrong secret, say) ends all.
    return yield* Effect.all(
      configs.map((config) =>
        Client.run(config, reporter(config, logFormat, configs.length > 1)).pipe(
          Effect.annotateLogs({ tunnel: tunnelLabel(config).tunnel })
        )
      ),
      { concurrency: "unbounded" }
    ).pipe(
      Effect.provide(Layer.mergeAll(Drain.layer, LocalRelay.spliceLayer)),
      Effect.provideService(ClientMetrics, metrics)
    )
  })
