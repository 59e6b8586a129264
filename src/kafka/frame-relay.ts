/**
 * The byte path of `spore kafka-proxy`: a client's connection (through the tunnel) and its
 * broker, joined like `splice`, except that Kafka frames are followed both ways.
 *
 * - Requests pass through untouched, as they come; only the header of each frame is read, to
 *   remember which API and version each correlation id asked for.
 * - Responses pass through untouched too, unless they answer a request whose responses carry
 *   broker addresses (or ApiVersions): such a frame is collected whole, every broker it names is
 *   given its tunnel first (`publicAddressOf`, which may take a moment), then the rewritten frame
 *   goes on. Frames stay in order: reading from the broker pauses meanwhile.
 *
 * Bytes never go through an Effect Stream or Queue (DESIGN.md): Node sockets with pause/resume
 * keep backpressure both ways; each direction ends on its own (half-close); an error or a
 * frame too large to collect destroys both sockets.
 */
import type * as net from "node:net"
import { Effect, Runtime } from "effect"
import { KafkaRelayError } from "../errors.js"
import { VERSION_CAPS } from "./apis.js"
import { type BrokerAddress, brokersIn, isRewritten, readRequestHeader, type RequestHeader, rewriteResponse } from "./rewrite.js"

/** A response collected for rewriting is never larger than this (Metadata of a huge cluster fits). */
export const MAX_REWRITTEN_FRAME = 16 * 1024 * 1024
/** Requests still waiting for their response, per connection; Produce with acks=0 never gets one. */
const MAX_OUTSTANDING = 4096

/** Where clients reach a broker: the public host and the port of its tunnel (made on first use). */
export type PublicAddressOf = (broker: BrokerAddress) => Effect.Effect<{ readonly host: string; readonly port: number }, Error>

/**
 * Cuts a stream of Kafka frames into pieces: `onHeader` sees the first `headerLength` bytes of
 * each frame (after its size) and says whether to collect the frame whole or pass it on.
 */
class FrameScanner {
  private header = Buffer.alloc(0)
  private passing = 0
  private collecting: { size: number; parts: Array<Buffer>; length: number } | undefined

  constructor(
    private readonly headerLength: number,
    private readonly onHeader: (size: number, header: Buffer) => "pass" | "collect",
    private readonly pass: (bytes: Buffer) => void,
    private readonly collected: (frame: Buffer) => void
  ) {}

  /** Feeds bytes; returns what is left unread when a collected frame is complete (else nothing). */
  feed(chunk: Buffer): Buffer | undefined {
    let rest = chunk
    while (rest.length > 0) {
      if (this.passing > 0) {
        const n = Math.min(this.passing, rest.length)
        this.pass(rest.subarray(0, n))
        this.passing -= n
        rest = rest.subarray(n)
        continue
      }
      if (this.collecting !== undefined) {
        const want = this.collecting.size - this.collecting.length
        const piece = rest.subarray(0, want)
        this.collecting.parts.push(piece)
        this.collecting.length += piece.length
        rest = rest.subarray(piece.length)
        if (this.collecting.length === this.collecting.size) {
          const frame = Buffer.concat(this.collecting.parts)
          this.collecting = undefined
          this.collected(frame)
          return rest
        }
        continue
      }
      // The size first (a bad one is refused at once), then the rest of the header.
      const need = (this.header.length < 4 ? 4 : 4 + this.headerLength) - this.header.length
      this.header = Buffer.concat([this.header, rest.subarray(0, need)])
      rest = rest.subarray(Math.min(need, rest.length))
      if (this.header.length >= 4 && this.header.readInt32BE(0) < this.headerLength) {
        throw new KafkaRelayError({ reason: "short-frame", size: this.header.readInt32BE(0) })
      }
      if (this.header.length < 4 + this.headerLength) continue
      const size = this.header.readInt32BE(0)
      const head = this.header
      this.header = Buffer.alloc(0)
      if (this.onHeader(size, head.subarray(4)) === "collect") {
        if (size > MAX_REWRITTEN_FRAME) throw new KafkaRelayError({ reason: "response-too-large", size })
        this.collecting = { size, parts: [head.subarray(4)], length: this.headerLength }
        if (size === this.headerLength) {
          const frame = Buffer.concat(this.collecting.parts)
          this.collecting = undefined
          this.collected(frame)
          return rest
        }
      } else {
        this.pass(head)
        this.passing = size - this.headerLength
      }
    }
    return undefined
  }
}

const sizePrefixed = (body: Buffer) => {
  const size = Buffer.alloc(4)
  size.writeInt32BE(body.length)
  return Buffer.concat([size, body])
}

/** Metadata's api key: its responses list every broker of the cluster. */
const METADATA_API_KEY = 3

/**
 * Joins `client` (the tunnel's data stream) and `broker` until both directions are done.
 * `firstToBroker` are request bytes already read from the client. Interrupting destroys both.
 */
export const relayKafka = (
  client: net.Socket,
  broker: net.Socket,
  firstToBroker: Buffer,
  publicAddressOf: PublicAddressOf,
  /** Told the node ids of every Metadata response: the cluster's whole broker list as of then. */
  brokersListed: (nodeIds: ReadonlyArray<number>) => void = () => {}
): Effect.Effect<void> =>
  Effect.flatMap(Effect.runtime<never>(), (runtime) =>
    Effect.async<void>((resume) => {
      const runPromise = Runtime.runPromise(runtime)
      const outstanding = new Map<number, RequestHeader>()
      const abort = (error?: unknown) => {
        if (error !== undefined) void runPromise(Effect.logWarning(`kafka connection closed: ${String((error as Error).message ?? error)}`))
        client.destroy()
        broker.destroy()
      }

      // Requests: client -> broker, untouched.
      const requests = new FrameScanner(8, (_size, header) => {
        const request = readRequestHeader(header)
        outstanding.set(request.correlationId, request)
        if (outstanding.size > MAX_OUTSTANDING) outstanding.delete(outstanding.keys().next().value!)
        return "pass"
      }, (bytes) => {
        if (!broker.write(bytes)) client.pause()
      }, () => {})
      const onRequestBytes = (chunk: Buffer) => {
        try {
          requests.feed(chunk)
        } catch (error) {
          abort(error)
        }
      }

      // Responses: broker -> client, rewritten where they name brokers.
      let rewriting = false
      let brokerEnded = false
      const rewrite = async (frame: Buffer) => {
        const request = outstanding.get(frame.readInt32BE(0))!
        outstanding.delete(request.correlationId)
        // A version above the caps (a client that skipped ApiVersions) might name brokers in a
        // layout not known here: never let it through unrewritten.
        const cap = VERSION_CAPS.get(request.apiKey)
        if (cap !== undefined && request.apiVersion > cap) {
          throw new KafkaRelayError({ reason: "version-unsupported", apiKey: request.apiKey, apiVersion: request.apiVersion, cap })
        }
        // Every broker named gets its tunnel (new ones open side by side) before the frame goes on.
        const named = brokersIn(request, frame)
        if (request.apiKey === METADATA_API_KEY) brokersListed(named.map((broker) => broker.nodeId))
        const addresses = await runPromise(Effect.forEach(named, publicAddressOf, { concurrency: "unbounded" }))
        const mapped = new Map(named.map((broker, index) => [broker.nodeId, addresses[index]!] as const))
        return rewriteResponse(request, frame, (broker) => mapped.get(broker.nodeId) ?? broker)
      }
      let held: Buffer | undefined
      const responses = new FrameScanner(4, (_size, header) => {
        const request = outstanding.get(header.readInt32BE(0))
        if (request !== undefined && isRewritten(request)) return "collect"
        if (request !== undefined) outstanding.delete(request.correlationId)
        return "pass"
      }, (bytes) => {
        if (!client.write(bytes)) broker.pause()
      }, (frame) => {
        rewriting = true
        broker.pause()
        rewrite(frame).then(
          (rewritten) => {
            rewriting = false
            client.write(sizePrefixed(rewritten))
            const rest = held
            held = undefined
            if (rest !== undefined) onResponseBytes(rest)
            if (!rewriting) {
              if (brokerEnded) client.end()
              else if (client.writableNeedDrain !== true) broker.resume()
            }
          },
          abort
        )
      })
      const onResponseBytes = (chunk: Buffer) => {
        // While a frame is being rewritten, later bytes wait their turn (order is kept).
        if (rewriting) {
          held = held === undefined ? chunk : Buffer.concat([held, chunk])
          return
        }
        try {
          const rest = responses.feed(chunk)
          if (rest !== undefined && rest.length > 0) held = held === undefined ? rest : Buffer.concat([rest, held])
        } catch (error) {
          abort(error)
        }
      }

      let open = 2
      const onClose = (hadError: boolean) => {
        open -= 1
        if (hadError) abort()
        if (open === 0) resume(Effect.void)
      }
      client.once("close", onClose)
      broker.once("close", onClose)
      client.on("error", () => abort())
      broker.on("error", () => abort())
      client.on("data", onRequestBytes)
      broker.on("data", onResponseBytes)
      broker.on("drain", () => client.resume())
      client.on("drain", () => {
        if (!rewriting) broker.resume()
      })
      client.on("end", () => broker.end())
      broker.on("end", () => {
        brokerEnded = true
        if (!rewriting) client.end()
      })
      if (firstToBroker.length > 0) onRequestBytes(firstToBroker)
      client.resume()
      broker.resume()
      return Effect.sync(() => abort())
    }))
