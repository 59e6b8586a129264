/**
 * Property tests over what a hostile peer controls: the bytes of the control stream. Whatever
 * arrives, in whatever chunks, the frame decoder and the message parsers answer through their
 * result values (never a throw), never hold more than the frame limit while waiting for a frame,
 * and lose or reorder no byte.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc, Option } from "effect"
import { MessageParseError } from "../../src/errors.js"
import { makeFramedSocket } from "../../src/net/framed-socket.js"
import { encodeFrame, FrameBuffer, MAX_FRAME_LENGTH } from "../../src/protocol/framing.js"
import {
  BySchema,
  type ClientMessage,
  ClientMessages,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  type ServerMessage,
  ServerMessages
} from "../../src/protocol/messages.js"
import type { Uuid } from "../../src/protocol/uuid.js"
import { socketPair } from "../support/net.js"

/** Chunks that mix raw bytes with NULs and real frames, so that every path is taken often. */
const chunk = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.constant(Uint8Array.of(0)),
  fc.constantFrom("{\"Hello\":0}\0", "\"Heartbeat\"\0", "{\"Accept\":\"x\"}\0", "{\"Hel").map((text) => Buffer.from(text)),
  fc.integer({ min: 250, max: 260 }).map((length) => Buffer.alloc(length, 0x78))
)
const chunks = fc.array(chunk, { maxLength: 12 })

/** Both parsers on one body: each answers with a value, a parse error at worst. */
const parseBoth = (body: Uint8Array) => {
  for (const result of [decodeClientMessage(body), decodeServerMessage(body)] as Array<Either.Either<unknown, unknown>>) {
    if (Either.isLeft(result)) expect(result.left).toBeInstanceOf(MessageParseError)
  }
}

const uuid = fc.uuid().map((id) => id as Uuid)
const port = fc.integer({ min: 0, max: 65535 })
const token = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => Buffer.from(bytes).toString("hex"))
const clientMessage: fc.Arbitrary<ClientMessage> = fc.oneof(
  fc.string().map(ClientMessages.authenticate),
  port.map(ClientMessages.hello),
  uuid.map(ClientMessages.accept),
  fc.constant(ClientMessages.offerExtensions),
  token.map(ClientMessages.resume),
  token.map(ClientMessages.pool)
)
const serverMessage: fc.Arbitrary<ServerMessage> = fc.oneof(
  uuid.map(ServerMessages.challenge),
  port.map(ServerMessages.hello),
  fc.constant(ServerMessages.heartbeat),
  uuid.map(ServerMessages.connection),
  fc.string().map(ServerMessages.error),
  token.map(ServerMessages.lease),
  fc.integer({ min: 2, max: 65535 }).map(ServerMessages.extensions),
  fc.record({
    id: uuid,
    source: fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6()), port }),
    destination: fc.record({ address: fc.oneof(fc.ipV4(), fc.ipV6()), port })
  }).map(ServerMessages.visitor)
)

/** What the stream decomposes into, computed over all of it at once. */
const expectedFrames = (input: Buffer) => {
  const frames: Array<string> = []
  let start = 0
  while (true) {
    const nul = input.subarray(start, start + MAX_FRAME_LENGTH + 1).indexOf(0)
    if (nul < 0) break
    frames.push(input.subarray(start, start + nul).toString("hex"))
    start += nul + 1
  }
  const rest = input.subarray(start)
  return { frames, tooLong: rest.length > MAX_FRAME_LENGTH, rest: rest.toString("hex") }
}

/** Feeds the chunks one by one, taking every whole frame after each, as the server does. */
const decodeChunks = (pieces: ReadonlyArray<Uint8Array>) => {
  const buffer = new FrameBuffer()
  const frames: Array<string> = []
  for (const piece of pieces) {
    buffer.push(Buffer.from(piece))
    while (true) {
      const next = buffer.takeFrame()
      if (next._tag === "TooLong") return { frames, tooLong: true, rest: "" }
      if (next._tag === "NeedMore") {
        // Waiting for a frame never holds more than one frame's worth.
        expect(buffer.length).toBeLessThanOrEqual(MAX_FRAME_LENGTH)
        break
      }
      expect(next.body.length).toBeLessThanOrEqual(MAX_FRAME_LENGTH)
      frames.push(next.body.toString("hex"))
    }
  }
  return { frames, tooLong: false, rest: buffer.takeRemaining().toString("hex") }
}

describe("frame decoder and message parsers, under arbitrary input", () => {
  it.prop("the decoder takes the same frames whatever the chunking, and holds at most one frame", [chunks], ([pieces]) => {
    const decoded = decodeChunks(pieces)
    const expected = expectedFrames(Buffer.concat(pieces))
    expect(decoded.frames).toEqual(expected.frames)
    expect(decoded.tooLong).toBe(expected.tooLong)
    if (!expected.tooLong) expect(decoded.rest).toBe(expected.rest)
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("at end of stream the leftover is one final frame, or too long", [chunks], ([pieces]) => {
    const buffer = new FrameBuffer()
    for (const piece of pieces) buffer.push(Buffer.from(piece))
    let taken = 0
    while (true) {
      const last = buffer.takeFinalFrame()
      if (last === undefined || last === "TooLong") break
      expect(last.length).toBeLessThanOrEqual(MAX_FRAME_LENGTH)
      taken++
      expect(taken).toBeLessThanOrEqual(Buffer.concat(pieces).length + 1)
    }
  })

  it.prop("arbitrary bytes never throw past either parser's error channel", [fc.uint8Array({ maxLength: 300 })], ([body]) => {
    parseBoth(body)
  }, { fastCheck: { numRuns: 5000 } })

  it.prop("arbitrary JSON never throws past either parser's error channel", [fc.json({ maxDepth: 3 })], ([text]) => {
    parseBoth(Buffer.from(text))
  }, { fastCheck: { numRuns: 5000 } })

  it.prop(
    "near-miss messages (the right keys, arbitrary values) never throw either",
    [fc.constantFrom("Hello", "Accept", "Authenticate", "Spore", "Resume", "Challenge", "Connection", "Error", "Lease", "Heartbeat"), fc.jsonValue({ maxDepth: 2 })],
    ([key, value]) => {
      const text = JSON.stringify({ [key]: value })
      parseBoth(Buffer.from(text))
    },
    { fastCheck: { numRuns: 5000 } }
  )

  it.prop("the fast encoders write what the schemas write, for every message", [clientMessage, serverMessage], ([client, server]) => {
    expect(encodeClientMessage(client)).toBe(BySchema.encodeClientMessage(client))
    expect(encodeServerMessage(server)).toBe(BySchema.encodeServerMessage(server))
  }, { fastCheck: { numRuns: 2000 } })

  /** Frames near the fast paths: their tags with well-formed, malformed and odd values. */
  const nearFastPath = fc.oneof(
    fc.constantFrom("\"Heartbeat\"", "{\"Heartbeat\":null}", "\"heartbeat\"", "{\"Heartbeat\":\"x\"}"),
    fc.tuple(
      fc.constantFrom("Accept", "Connection", "Challenge", "Visitor", "Hello", "Error"),
      fc.oneof(
        uuid.map((id) => id as string),
        uuid.map((id) => id.toUpperCase()),
        uuid.map((id) => `{${id}}`),
        uuid.map((id) => id.replaceAll("-", "")),
        fc.tuple(uuid, fc.oneof(fc.ipV4(), fc.ipV6()), fc.ipV4(), port, port).map((fields) => fields.join(" ")),
        fc.string(),
        fc.jsonValue({ maxDepth: 1 })
      ),
      fc.boolean()
    ).map(([tag, value, extraKey]) => JSON.stringify(extraKey ? { [tag]: value, Hello: 1 } : { [tag]: value }))
  )

  it.prop("the fast decoders answer as the schemas do, for any frame", [fc.oneof(nearFastPath, fc.json({ maxDepth: 2 }))], ([text]) => {
    const body = Buffer.from(text)
    for (const [fast, slow] of [[decodeClientMessage, BySchema.decodeClientMessage], [decodeServerMessage, BySchema.decodeServerMessage]] as const) {
      const [a, b] = [fast(body) as Either.Either<unknown, MessageParseError>, slow(body) as Either.Either<unknown, MessageParseError>]
      expect(Either.isRight(a)).toBe(Either.isRight(b))
      if (Either.isRight(a) && Either.isRight(b)) expect(a.right).toEqual(b.right)
    }
  }, { fastCheck: { numRuns: 5000 } })

  it.prop("every message Spore can send decodes to itself", [clientMessage, serverMessage], ([client, server]) => {
    expect(decodeClientMessage(Buffer.from(encodeClientMessage(client)))).toEqual(Either.right(client))
    expect(decodeServerMessage(Buffer.from(encodeServerMessage(server)))).toEqual(Either.right(server))
  })

  it.effect.prop(
    "through a real socket, frames come out as the model says and nothing throws",
    [chunks],
    ([pieces]) =>
      Effect.gen(function*() {
        const { far, near } = yield* socketPair
        const stream = makeFramedSocket(far)
        for (const piece of pieces) near.write(piece)
        near.end()
        const frames: Array<string> = []
        let outcome = "ended"
        while (true) {
          const frame = yield* stream.readFrame.pipe(Effect.either)
          if (Either.isLeft(frame)) {
            outcome = frame.left._tag
            break
          }
          if (Option.isNone(frame.right)) break
          frames.push(frame.right.value.toString("hex"))
        }
        const expected = expectedFrames(Buffer.concat(pieces))
        if (expected.tooLong) {
          expect(outcome).toBe("FrameTooLong")
          expect(frames).toEqual(expected.frames)
        } else {
          expect(outcome).toBe("ended")
          // At the end, a leftover without its NUL is a final frame (as tokio's codec does).
          const final = expected.rest.length > 0 ? [expected.rest] : []
          expect(frames).toEqual([...expected.frames, ...final])
        }
      }).pipe(Effect.scoped),
    { fastCheck: { numRuns: 60 } }
  )

  it("a frame Spore writes is never longer than the limit for the longest message it sends", () => {
    const longest = encodeServerMessage({ _tag: "Connection", id: "00000000-0000-0000-0000-000000000000" as never })
    expect(encodeFrame(longest).length - 1).toBeLessThanOrEqual(MAX_FRAME_LENGTH)
  })
})
