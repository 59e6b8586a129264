/**
 * `spore kafka-proxy`: a whole Kafka cluster through one command (see src/kafka/proxy.ts): a
 * tunnel for the bootstrap broker and one per broker it discovers, with broker addresses in
 * responses rewritten to the server's host and each broker's tunnel port.
 */
import { Command, Options } from "@effect/cli"
import { Console, Duration, Effect, Option } from "effect"
import type { ClientStatus } from "../client/client.js"
import * as KafkaProxy from "../kafka/proxy.js"
import * as Drain from "../net/drain.js"
import * as Logging from "./logger.js"
import {
  bufferOptions,
  checkBuffers,
  checkChoice,
  checkPort,
  checkSeconds,
  checkSecret,
  drainOption,
  integerOption,
  logFormatOption,
  optionalTextOption,
  secretOption,
  textOption,
  UsageError
} from "./options.js"

const options = {
  bootstrapServer: textOption("bootstrap-server", "HOST:PORT of a broker of the cluster to expose.", { default: "localhost:9092" }),
  to: optionalTextOption("to", "Address of the server (required).", { env: ["SPORE_SERVER", "BORE_SERVER"], alias: "t" }),
  secret: secretOption,
  controlPort: integerOption("control-port", "The server's control port.", { default: 7835, env: ["SPORE_CONTROL_PORT"] }),
  brokerAddress: Options.text("broker-address").pipe(
    Options.withDescription(
      "ID=HOST:PORT: reach broker ID there instead of at the address it advertises (repeat for more). Default: the advertised addresses."
    ),
    Options.repeated
  ),
  noReconnect: Options.boolean("no-reconnect").pipe(
    Options.withDescription("Exit (with code 1) when the server is lost, instead of reconnecting.")
  ),
  maxReconnectDelay: integerOption("max-reconnect-delay", "Longest wait in seconds between reconnection attempts.", {
    default: 64,
    env: ["SPORE_MAX_RECONNECT_DELAY"]
  }),
  drainSeconds: drainOption,
  logFormat: logFormatOption,
  ...bufferOptions
}

type Flags = Command.Command.ParseConfig<typeof options>

/** HOST:PORT with a name or an address (an IPv6 one in brackets). */
const checkHostAndPort = (name: string, text: string) => {
  const match = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text)
  const host = match?.[1] ?? match?.[2]
  const port = Number(match?.[3])
  return host !== undefined && port >= 1 && port <= 65535
    ? Effect.succeed({ host, port })
    : Effect.fail(new UsageError({ message: `--${name} must be HOST:PORT, not ${text}` }))
}

const checkBrokerAddress = (text: string) => {
  const [id = "", address = ""] = text.split(/=(.*)/s)
  return /^\d+$/.test(id)
    ? Effect.map(checkHostAndPort("broker-address", address), (target) => [Number(id), target] as const)
    : Effect.fail(new UsageError({ message: `--broker-address must be ID=HOST:PORT, not ${text}` }))
}

const toConfig = (flags: Flags): Effect.Effect<KafkaProxy.KafkaProxyConfig, UsageError> =>
  Effect.gen(function*() {
    if (Option.isNone(flags.to)) return yield* new UsageError({ message: "missing --to: the address of the server" })
    return {
      bootstrap: yield* checkHostAndPort("bootstrap-server", flags.bootstrapServer),
      brokerAddresses: new Map(yield* Effect.forEach(flags.brokerAddress, checkBrokerAddress)),
      tunnel: {
        to: flags.to.value,
        secret: yield* checkSecret(flags.secret),
        controlPort: yield* checkPort("control-port", flags.controlPort, { allowZero: false }),
        reconnect: !flags.noReconnect,
        maxReconnectDelay: Duration.seconds(yield* checkSeconds("max-reconnect-delay", flags.maxReconnectDelay, { min: 1 })),
        buffers: yield* checkBuffers(flags),
        drain: Duration.seconds(yield* checkSeconds("drain-seconds", flags.drainSeconds, { min: 0 }))
      }
    }
  })

/** One line per change of a tunnel: the bootstrap address to give clients, then one per broker. */
const reporter = (format: Logging.LogFormat): KafkaProxy.ProxyReport => (tunnel, status) => {
  const name = Option.match(tunnel.nodeId, { onNone: () => "bootstrap", onSome: (id) => `broker ${id}` })
  const line = statusLine(name, tunnel.target, status)
  return format === "json" ? Effect.annotateLogs(Effect.logInfo(line), { tunnel: name }) : Console.error(line)
}

const statusLine = (name: string, target: string, status: ClientStatus) => {
  switch (status._tag) {
    case "Listening":
      return name === "bootstrap"
        ? `${status.resumed ? "resumed: " : ""}bootstrap server for Kafka clients: ${status.host}:${status.port} (the cluster at ${target})`
        : `${status.resumed ? "resumed: " : ""}${name} (${target}) at ${status.host}:${status.port}`
    case "Lost":
      return `[${name}] lost the connection to the server: ${status.reason}`
    case "AttemptFailed":
      return `[${name}] could not reach the server: ${status.reason}`
    case "Retrying":
      return `[${name}] reconnecting in ${(Duration.toMillis(status.delay) / 1000).toFixed(1)} s`
  }
}

export const kafkaCommand = Command.make("kafka-proxy", options, (flags) =>
  Effect.flatMap(checkChoice("log-format", flags.logFormat, ["text", "json"] as const), (logFormat) =>
    Effect.gen(function*() {
      const config = yield* toConfig(flags)
      return yield* KafkaProxy.run(config, reporter(logFormat)).pipe(Effect.provide(Drain.layer))
    }).pipe(Effect.scoped, Effect.provide(Logging.layerFor(logFormat))))).pipe(
    Command.withDescription("Expose a whole Kafka cluster: the bootstrap broker and every broker it names.")
  )
