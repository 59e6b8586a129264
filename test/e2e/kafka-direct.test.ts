/**
 * Real Kafka clients straight to librdkafka's mock cluster on 127.0.0.1, no tunnel: the baseline
 * for Kafka through a tunnel. With the brokers advertising their real listeners every client
 * works; with them advertising unresolvable names (as brokers behind NAT or in a private network
 * do) every client fails, so only something that rewrites broker addresses can make it work.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
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

const BROKERS = ["-b", "3", "-s", "-r", "0"]

describe("Kafka clients straight to the mock cluster", () => {
  it.live("kafkajs: 30 messages over 6 partitions of 3 brokers reach a consumer group", () =>
    Effect.gen(function*() {
      const mock = yield* startKafkaMock([...BROKERS, "-t", "orders:6"])
      expect(mock.brokers.map((broker) => broker.id)).toEqual([1, 2, 3])
      expect(mock.bootstrap).toBe(mock.brokers.map((broker) => `127.0.0.1:${broker.port}`).join(","))
      expect(mock.advertised).toEqual([])

      const messages = numbered("order", 30)
      yield* kafkajsProduce(mock.bootstrap, "orders", messages)
      const records = yield* kafkajsConsumeGroup(mock.bootstrap, "orders", "orders-readers", 30)
      expect(sorted(records.map((record) => record.value))).toEqual(sorted(messages))
      expect(new Set(records.map((record) => record.partition))).toEqual(new Set([0, 1, 2, 3, 4, 5]))
    }).pipe(Effect.scoped))

  it.live("kcat: produces, then consumes every partition and as a consumer group", () =>
    Effect.gen(function*() {
      const mock = yield* startKafkaMock([...BROKERS, "-t", "lines:6", "-t", "orders:6"])
      const lines = numbered("line", 30)
      yield* kcatProduce(mock.bootstrap, "lines", lines)
      expect(sorted(yield* kcatConsume(mock.bootstrap, "lines", 30))).toEqual(sorted(lines))
      expect(sorted(yield* kcatConsume(mock.bootstrap, "lines", 30, { groupId: "lines-readers" }))).toEqual(sorted(lines))

      // The two kinds of client read each other's messages.
      const orders = numbered("order", 12)
      yield* kafkajsProduce(mock.bootstrap, "orders", orders)
      expect(sorted(yield* kcatConsume(mock.bootstrap, "orders", 12))).toEqual(sorted(orders))
    }).pipe(Effect.scoped))

  it.live("rdkafka-client (librdkafka 2.15): 30 messages over 6 partitions reach a consumer group, in flexible versions", () =>
    Effect.gen(function*() {
      const mock = yield* startKafkaMock([...BROKERS, "-t", "orders:6"])
      const produced = yield* rdkafkaProduce(mock.bootstrap, "orders", 30, { prefix: "order", debug: "protocol" })
      expect(produced.messages).toEqual(numbered("order", 30))
      const consumed = yield* rdkafkaConsumeGroup(mock.bootstrap, "orders", "orders-readers", 30, { debug: "protocol" })
      expect(sorted(consumed.records.map((record) => record.value))).toEqual(sorted(produced.messages))
      expect(new Set(consumed.records.map((record) => record.partition))).toEqual(new Set([0, 1, 2, 3, 4, 5]))

      // What kafkajs and kcat never send: the flexible versions (compact strings and arrays,
      // tagged fields). Seen with librdkafka 2.15.1: Metadata v12, Produce v10, Fetch v16,
      // ListOffsets v7, OffsetFetch v6, OffsetCommit v9; FindCoordinator stays at v2 (the most
      // librdkafka sends) and ApiVersions v3 falls back to v0 (the mock answers v3 with
      // UNSUPPORTED_VERSION, as it supports v0-2).
      const sent = sentRequestVersions(produced.stderr + consumed.stderr)
      expect(sent.get("Metadata")?.length).toBeGreaterThan(0)
      expect(Math.min(...sent.get("Metadata")!)).toBeGreaterThanOrEqual(9)
      expect(Math.min(...sent.get("Produce") ?? [])).toBeGreaterThanOrEqual(9)
      expect(Math.min(...sent.get("Fetch") ?? [])).toBeGreaterThanOrEqual(12)
      expect(sent.get("FindCoordinator")).toEqual([2])

      // It reads what kafkajs produced, and kafkajs what it produced. (Fresh groups: the mock
      // keeps a group its last member left in JOINING for that member's session timeout - 1 s.)
      yield* kafkajsProduce(mock.bootstrap, "orders", numbered("js", 6))
      const all = yield* rdkafkaConsumeGroup(mock.bootstrap, "orders", "everything", 36)
      expect(sorted(all.records.map((record) => record.value))).toEqual(sorted([...produced.messages, ...numbered("js", 6)]))
      const more = yield* rdkafkaProduce(mock.bootstrap, "orders", ["tab\tand space", "last"])
      const records = yield* kafkajsConsumeGroup(mock.bootstrap, "orders", "js-readers", 38)
      expect(sorted(records.map((record) => record.value))).toEqual(sorted([...all.records.map((r) => r.value), ...more.messages]))
    }).pipe(Effect.scoped))

  describe("brokers advertising unresolvable names", () => {
    it.live("kafkajs reaches the bootstrap listener but cannot produce", () =>
      Effect.gen(function*() {
        const mock = yield* startKafkaMock([...BROKERS, "-t", "orders:6", ...UNRESOLVABLE_BROKERS])
        expect(mock.advertised).toEqual([1, 2, 3].map((id) => ({ id, host: `kafka-${id}.invalid`, port: 9092 })))
        const result = yield* Effect.either(kafkajsProduce(mock.bootstrap, "orders", numbered("order", 30), { timeoutSeconds: 10 }))
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) expect(result.left.message).toMatch(/(ENOTFOUND|EAI_AGAIN) kafka-\d\.invalid/)
      }).pipe(Effect.scoped))

    it.live("kcat reaches the bootstrap listener but cannot produce or consume", () =>
      Effect.gen(function*() {
        const mock = yield* startKafkaMock([...BROKERS, "-t", "lines:6", ...UNRESOLVABLE_BROKERS])
        const produced = yield* Effect.either(kcatProduce(mock.bootstrap, "lines", numbered("line", 30), { timeoutSeconds: 6 }))
        expect(Either.isLeft(produced)).toBe(true)
        if (Either.isLeft(produced)) {
          expect(produced.left.message).toMatch(/exited with 1/)
          expect(produced.left.message).toMatch(/Failed to resolve 'kafka-\d\.invalid:9092'/)
        }
        const consumed = yield* Effect.either(kcatConsume(mock.bootstrap, "lines", 1, { timeoutSeconds: 6 }))
        expect(Either.isLeft(consumed)).toBe(true)
        if (Either.isLeft(consumed)) expect(consumed.left.message).toMatch(/Failed to resolve 'kafka-\d\.invalid:9092'/)
      }).pipe(Effect.scoped))

    it.live("rdkafka-client (librdkafka 2.15) reaches the bootstrap listener but cannot produce or consume", () =>
      Effect.gen(function*() {
        const mock = yield* startKafkaMock([...BROKERS, "-t", "orders:6", ...UNRESOLVABLE_BROKERS])
        const produced = yield* Effect.either(rdkafkaProduce(mock.bootstrap, "orders", 30, { timeoutSeconds: 6 }))
        expect(Either.isLeft(produced)).toBe(true)
        if (Either.isLeft(produced)) {
          expect(produced.left.message).toMatch(/exited with 1/)
          expect(produced.left.message).toMatch(/Failed to resolve 'kafka-\d\.invalid:9092'/)
          expect(produced.left.message).toMatch(/0 of 30 delivered/)
        }
        const consumed = yield* Effect.either(rdkafkaConsumeGroup(mock.bootstrap, "orders", "orders-readers", 1, { timeoutSeconds: 4 }))
        expect(Either.isLeft(consumed)).toBe(true)
        if (Either.isLeft(consumed)) {
          expect(consumed.left.message).toMatch(/not within 4 s/)
          expect(consumed.left.message).toMatch(/Failed to resolve 'kafka-\d\.invalid:9092'/)
        }
      }).pipe(Effect.scoped))
  })
})
