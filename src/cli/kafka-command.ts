/**
 * `spore kafka-proxy`: a whole Kafka cluster through one command (see src/kafka/proxy.ts): a
 * tunnel for the bootstrap broker and one per broker it discovers, with broker addresses in
 * responses rewritten to the server's host and each broker's tunnel port.
 */
import { Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import type { ClientStatus } from "../client/status.js"
import * as ClientMetrics from "../client/client-metrics.js"
import * as KafkaProxy from "../kafka/proxy.js"
import * as Drain from "../net/drain.js"
import * as Logging from "./logger.js"
import { checkHostPort, checkPort, integerOption, metricsAddrOption, textOption, UsageError } from "./options.js"
import { checkTunnelFlags, serveClientMetrics, statusLine as tunnelStatusLine, tunnelOptions } from "./tunnel-flags.js"

/** What the command does, in `--help`. */
export const description = "Expose a whole Kafka cluster: the bootstrap broker and every broker it names."

export const options = {
  bootstrapServer: textOption("bootstrap-server", "HOST:PORT of a broker of the cluster to expose.", { default: "localhost:9092" }),
  brokerAddress: Options.text("broker-address").pipe(
    Options.withDescription(
      "ID=HOST:PORT: reach broker ID there instead of at the address it advertises (repeat for more). Default: the advertised addresses."
    ),
    Options.repeated
  ),
  port: integerOption("port", "Public port to ask the server for the bootstrap tunnel, so that clients' bootstrap.servers survive a restart; 0 lets it choose.", {
    default: 0,
    alias: "p"
  }),
  brokerPort: Options.text("broker-port").pipe(
    Options.withDescription("ID=PORT: the public port to ask for broker ID's tunnel (repeat for more). Default: the server picks."),
    Options.repeated
  ),
  metricsAddr: metricsAddrOption,
  ...tunnelOptions
}

type Flags = Command.Command.ParseConfig<typeof options>

const checkBrokerAddress = (text: string) => {
  const [id = "", address = ""] = text.split(/=(.*)/s)
  return /^\d+$/.test(id)
    ? Effect.map(checkHostPort("broker-address", address, { names: true }), (target) => [Number(id), target] as const)
    : Effect.fail(new UsageError({ message: `--broker-address must be ID=HOST:PORT, not ${text}` }))
}

const checkBrokerPort = (text: string) => {
  const match = /^(\d+)=(\d+)$/.exec(text)
  return match === null
    ? Effect.fail(new UsageError({ message: `--broker-port must be ID=PORT, not ${text}` }))
    : Effect.map(checkPort("broker-port", Number(match[2]), { allowZero: false }), (port) => [Number(match[1]), port] as const)
}

const toConfig = (flags: Flags): Effect.Effect<KafkaProxy.KafkaProxyConfig, UsageError> =>
  Effect.gen(function*() {
    const tunnel = yield* checkTunnelFlags(flags)
    const bootstrap = yield* checkHostPort("bootstrap-server", flags.bootstrapServer, { names: true })
    if (bootstrap.port === 0) return yield* new UsageError({ message: "--bootstrap-server needs a port from 1 to 65535" })
    return {
      bootstrap,
      brokerAddresses: new Map(yield* Effect.forEach(flags.brokerAddress, checkBrokerAddress)),
      port: yield* checkPort("port", flags.port, { allowZero: true }),
      brokerPorts: new Map(yield* Effect.forEach(flags.brokerPort, checkBrokerPort)),
      tunnel
    }
  })

/** One line per change of a tunnel: the bootstrap address to give clients, then one per broker. */
const reporter = (format: Logging.LogFormat): KafkaProxy.ProxyReport => (tunnel, status) => {
  const name = Option.match(tunnel.nodeId, { onNone: () => "bootstrap", onSome: (id) => `broker ${id}` })
  const line = statusLine(name, tunnel.target, status)
  return format === "json" ? Effect.annotateLogs(Effect.logInfo(line), { tunnel: name }) : Console.error(line)
}

/** The bootstrap and broker lines say where clients connect; the others are a tunnel's usual lines. */
const statusLine = (name: string, target: string, status: ClientStatus) => {
  if (status._tag !== "Listening") return `[${name}] ${tunnelStatusLine(status)}`
  const resumed = status.resumed ? "resumed: " : ""
  return name === "bootstrap"
    ? `${resumed}bootstrap server for Kafka clients: ${status.host}:${status.port} (the cluster at ${target})`
    : `${resumed}${name} (${target}) at ${status.host}:${status.port}`
}

export const kafkaCommand = Command.make("kafka-proxy", options, (flags) =>
  Logging.withLogFormat(flags.logFormat, (logFormat) =>
    Effect.gen(function*() {
      const config = yield* toConfig(flags)
      // Every tunnel's metrics (the bootstrap's and each broker's, by their target) at --metrics-addr.
      const metrics = yield* serveClientMetrics(flags.metricsAddr)
      return yield* KafkaProxy.run(config, reporter(logFormat)).pipe(
        Effect.provide(Drain.layer),
        Effect.provideService(ClientMetrics.ClientMetrics, metrics)
      )
    }).pipe(Effect.scoped))).pipe(
    Command.withDescription(description)
  )
