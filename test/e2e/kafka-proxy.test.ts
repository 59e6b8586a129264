/**
 * `spore kafka-proxy` end to end: a 3-broker Kafka-protocol cluster (librdkafka's mock) whose
 * brokers advertise unresolvable names, a Spore server and the proxy, all real processes on
 * 127.0.0.1, and real clients given only the proxy's bootstrap address: kafkajs produces and a
 * consumer group reads every partition; kcat (librdkafka 2.0) and a librdkafka 2.15 client (which
 * sends flexible versions: Metadata v12) do the same. Without the proxy the same clients fail
 * (test/e2e/kafka-direct.test.ts shows that).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  kafkajsConsumeGroup,
  kafkajsProduce,
  kcatConsume,
  kcatProduce,
  rdkafkaConsumeGroup,
  rdkafkaProduce,
  sentRequestVersions
} from "../support/kafka-clients.js"
import { numbered, sorted, startKafkaMock, UNRESOLVABLE_BROKERS } from "../support/kafka-cluster.js"
import { freePort, LOOPBACK } from "../support/net.js"
import { startSpore, within } from "../support/process.js"
import { TEST_CERTIFICATE, tlsFixture } from "../support/tls.js"

/** The cluster, a server and the proxy; returns the bootstrap address clients get, and the proxy. */
const proxiedCluster = (topics: ReadonlyArray<string>, options: { readonly tls?: boolean } = {}) =>
  Effect.gen(function*() {
    const mock = yield* startKafkaMock(["-b", "3", "-s", "-r", "0", ...topics.flatMap((topic) => ["-t", topic]), ...UNRESOLVABLE_BROKERS])
    const plainPort = String(yield* freePort)
    // With TLS, the proxy's every tunnel reaches the server on its TLS port (test/fixtures/tls).
    const tlsPort = String(yield* freePort)
    const serverTls = options.tls ? ["--tls-cert", TEST_CERTIFICATE.certFile, "--tls-key", TEST_CERTIFICATE.keyFile, "--tls-port", tlsPort] : []
    const controlPort = options.tls ? tlsPort : plainPort
    const server = yield* startSpore(["server", "--bind-addr", LOOPBACK, "--control-port", plainPort, "--min-port", "38000", "--max-port", "38999", ...serverTls],
      {}, { lifetimeMs: 120_000 })
    yield* within("the server", 15, server.waitFor(/server listening/))
    const [first] = mock.brokers
    const proxy = yield* startSpore([
      "kafka-proxy", "--bootstrap-server", `127.0.0.1:${first!.port}`, "--to", LOOPBACK, "--control-port", controlPort,
      ...(options.tls ? ["--tls", "--tls-ca", tlsFixture("ca.pem")] : []),
      // The brokers advertise names nobody can resolve; the proxy is told where they listen.
      ...mock.brokers.flatMap((broker) => ["--broker-address", `${broker.id}=127.0.0.1:${broker.port}`])
    ], {}, { lifetimeMs: 120_000 })
    const bootstrapPort = (yield* within("the bootstrap tunnel", 15,
      proxy.waitFor(/bootstrap server for Kafka clients: 127\.0\.0\.1:(\d+)/)))[1]!
    return { bootstrap: `127.0.0.1:${bootstrapPort}`, proxy, mock }
  })

describe("spore kafka-proxy", () => {
  for (const tls of [false, true]) {
    it.live(`kafkajs produces and a consumer group reads all 6 partitions through the tunnels${tls ? ", over TLS to the server" : ""}`, () =>
      Effect.gen(function*() {
        const { bootstrap, proxy } = yield* proxiedCluster(["orders:6"], { tls })
        const messages = numbered("order", 60)
        yield* kafkajsProduce(bootstrap, "orders", messages, { timeoutSeconds: 30 })
        const records = yield* kafkajsConsumeGroup(bootstrap, "orders", "orders-readers", 60, { timeoutSeconds: 40 })
        expect(sorted(records.map((record) => record.value))).toEqual(sorted(messages))
        expect(new Set(records.map((record) => record.partition))).toEqual(new Set([0, 1, 2, 3, 4, 5]))
        // One tunnel per broker, opened as the metadata named them.
        for (const id of [1, 2, 3]) expect(proxy.stderr()).toMatch(new RegExp(`broker ${id} \\(127\\.0\\.0\\.1:\\d+\\) at 127\\.0\\.0\\.1:\\d+`))
      }).pipe(Effect.scoped), 120_000)
  }

  it.live("librdkafka 2.15 produces and a group consumes all partitions, with flexible Metadata, and Produce and Fetch capped", () =>
    Effect.gen(function*() {
      const { bootstrap } = yield* proxiedCluster(["events:6"])
      const produced = yield* rdkafkaProduce(bootstrap, "events", 30, { prefix: "event", debug: "protocol", timeoutSeconds: 30 })
      const consumed = yield* rdkafkaConsumeGroup(bootstrap, "events", "event-readers", 30, { debug: "protocol", timeoutSeconds: 40 })
      expect(sorted(consumed.records.map((record) => record.value))).toEqual(sorted(numbered("event", 30)))
      expect(new Set(consumed.records.map((record) => record.partition))).toEqual(new Set([0, 1, 2, 3, 4, 5]))
      const sent = sentRequestVersions(produced.stderr + consumed.stderr)
      // Flexible Metadata went through the proxy and was rewritten (the brokers' own names do not
      // resolve); the proxy's ApiVersions caps kept Produce and Fetch below NodeEndpoints.
      expect(Math.min(...sent.get("Metadata")!)).toBeGreaterThanOrEqual(9)
      expect(Math.max(...sent.get("Produce")!)).toBeLessThanOrEqual(9)
      expect(Math.max(...sent.get("Fetch")!)).toBeLessThanOrEqual(15)
    }).pipe(Effect.scoped), 120_000)

  it.live("kcat (librdkafka) produces and consumes, alone and as a group, through the tunnels", () =>
    Effect.gen(function*() {
      const { bootstrap } = yield* proxiedCluster(["lines:6"])
      const lines = numbered("line", 30)
      yield* kcatProduce(bootstrap, "lines", lines, { timeoutSeconds: 30 })
      expect(sorted(yield* kcatConsume(bootstrap, "lines", 30, { timeoutSeconds: 30 }))).toEqual(sorted(lines))
      expect(sorted(yield* kcatConsume(bootstrap, "lines", 30, { timeoutSeconds: 30, groupId: "line-readers" }))).toEqual(sorted(lines))
    }).pipe(Effect.scoped), 120_000)
})
