/**
 * The Kafka relay over real sockets on 127.0.0.1: requests and other responses pass byte for
 * byte and in order, a Metadata response is rewritten only once every broker it names has its
 * tunnel, and a large response passes without being collected.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import { Deferred, Effect, Fiber, Logger } from "effect"
import { MAX_REWRITTEN_FRAME, relayKafka } from "../../src/kafka/frame-relay.js"
import type { BrokerAddress } from "../../src/kafka/rewrite.js"
import { readExactly, socketPair } from "../support/net.js"
import { encodeMetadata, i16, i32 } from "./encode.js"
import { metadata, metadataMoved, tunnelAddress } from "./fixtures.js"

const sized = (body: Buffer) => Buffer.concat([i32(body.length), body])
/** A request frame: api key, version, correlation id, then a client id and some body. */
const request = (apiKey: number, version: number, correlationId: number, body = Buffer.from("body")) =>
  sized(Buffer.concat([i16(apiKey), i16(version), i32(correlationId), i16(6), Buffer.from("client"), body]))

/** Runs `effect` with its log lines collected in `lines`. */
const logged = <A, E, R>(lines: Array<string>, effect: Effect.Effect<A, E, R>) =>
  Effect.provide(
    effect,
    Logger.replace(Logger.defaultLogger, Logger.make(({ message }) => lines.push(Array.isArray(message) ? message.join(" ") : String(message))))
  )


describe("relayKafka", () => {
  it.live("rewrites Metadata after the tunnels exist, and passes everything else byte for byte", () =>
    Effect.gen(function*() {
      const client = yield* socketPair // near: the Kafka client, far: the tunnel's data stream
      const broker = yield* socketPair // near: the proxy's broker connection, far: the broker
      const tunnelsReady = yield* Deferred.make<void>()
      const asked: Array<number> = []
      const publicAddressOf = (named: BrokerAddress) =>
        Effect.as(Effect.zipRight(Effect.sync(() => asked.push(named.nodeId)), Deferred.await(tunnelsReady)), tunnelAddress(named))
      const relay = yield* Effect.fork(relayKafka(client.far, broker.near, Buffer.alloc(0), publicAddressOf))

      // Requests reach the broker untouched: an ApiVersions-less Produce and a Metadata v12.
      const produce = request(0, 9, 41, randomBytes(1000))
      const metadataRequest = request(3, 12, 42)
      client.near.write(Buffer.concat([produce, metadataRequest]))
      expect((yield* readExactly(broker.far, produce.length + metadataRequest.length)).equals(Buffer.concat([produce, metadataRequest]))).toBe(true)

      // The Produce response passes as it is; the Metadata one waits for the tunnels.
      const produceResponse = sized(Buffer.concat([i32(41), randomBytes(300)]))
      const original = encodeMetadata(12, { ...metadata, correlationId: 42 })
      broker.far.write(Buffer.concat([produceResponse, sized(original)]))
      expect((yield* readExactly(client.near, produceResponse.length)).equals(produceResponse)).toBe(true)
      yield* Effect.sleep("50 millis")
      expect(asked).toEqual([1, 2, 3])
      expect(client.near.readableLength).toBe(0)

      yield* Deferred.succeed(tunnelsReady, undefined)
      const expected = sized(encodeMetadata(12, { ...metadataMoved(metadata), correlationId: 42 }))
      expect((yield* readExactly(client.near, expected.length)).equals(expected)).toBe(true)

      // A large response to an unknown correlation id streams through unchanged.
      const large = sized(Buffer.concat([i32(999), randomBytes(8 * 1024 * 1024)]))
      broker.far.write(large)
      const through = yield* readExactly(client.near, large.length)
      expect(createHash("sha256").update(through).digest("hex")).toBe(createHash("sha256").update(large).digest("hex"))

      // Each side's end reaches the other (half-close), and then the relay is done.
      client.near.end()
      broker.far.resume()
      broker.far.end()
      yield* Fiber.join(relay)
    }).pipe(Effect.scoped))

  it.live("a response to a version above the caps is never passed on unrewritten: the connection closes", () =>
    Effect.gen(function*() {
      const client = yield* socketPair
      const broker = yield* socketPair
      const logs: Array<string> = []
      const relay = yield* Effect.fork(logged(logs, relayKafka(client.far, broker.near, Buffer.alloc(0), (named) => Effect.succeed(named))))
      const metadata13 = request(3, 13, 7)
      client.near.write(metadata13)
      yield* readExactly(broker.far, metadata13.length)
      broker.far.write(sized(Buffer.concat([i32(7), Buffer.from("a layout nobody knows")])))
      yield* Fiber.join(relay)
      expect(client.near.readableLength).toBe(0)
      expect(client.far.destroyed && broker.near.destroyed).toBe(true)
      expect(logs).toEqual(["kafka connection closed: api 3 v13 is above what the proxy rewrites (v12)"])
    }).pipe(Effect.scoped))

  it.live("a frame too short to be Kafka closes both sides", () =>
    Effect.gen(function*() {
      const client = yield* socketPair
      const broker = yield* socketPair
      const logs: Array<string> = []
      const relay = yield* Effect.fork(logged(logs, relayKafka(client.far, broker.near, Buffer.alloc(0), (named) => Effect.succeed(named))))
      client.near.write(Buffer.concat([i32(3), Buffer.from("abc")]))
      yield* Fiber.join(relay)
      expect(client.far.destroyed && broker.near.destroyed).toBe(true)
      expect(logs).toEqual(["kafka connection closed: a Kafka frame of 3 bytes is too short"])
    }).pipe(Effect.scoped))

  it.live("a response to be rewritten that is too large to collect closes both sides", () =>
    Effect.gen(function*() {
      const client = yield* socketPair
      const broker = yield* socketPair
      const logs: Array<string> = []
      const relay = yield* Effect.fork(logged(logs, relayKafka(client.far, broker.near, Buffer.alloc(0), (named) => Effect.succeed(named))))
      const metadataRequest = request(3, 12, 7)
      client.near.write(metadataRequest)
      yield* readExactly(broker.far, metadataRequest.length)
      // Only the size and the correlation id: the frame is refused before any of its body comes.
      broker.far.write(Buffer.concat([i32(MAX_REWRITTEN_FRAME + 1), i32(7)]))
      yield* Fiber.join(relay)
      expect(client.near.readableLength).toBe(0)
      expect(client.far.destroyed && broker.near.destroyed).toBe(true)
      expect(logs).toEqual([`kafka connection closed: a ${MAX_REWRITTEN_FRAME + 1}-byte response is too large to rewrite`])
    }).pipe(Effect.scoped))
})
