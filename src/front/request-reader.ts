/**
 * Reads a visitor's connection request by request: each head whole (for routing and rewriting),
 * each body as it streams by (forwarded untouched, with backpressure), knowing exactly where it
 * ends so the next request on a keep-alive connection can be read too.
 *
 * One "data" listener feeds whichever phase is running; between phases the socket is paused and
 * bytes read past the current request wait in `buffer`. Payload is handed straight to a channel
 * sender, never through an Effect Stream or Queue.
 */
import type * as net from "node:net"
import { Effect, Either, Option } from "effect"
import { HttpRequestError } from "../errors.js"
import type { ChannelSender } from "../net/ws-channel.js"
import { makeBodyScanner } from "./body-scanner.js"
import { findHeadEnd, MAX_HEAD_BYTES, parseHead, type RequestHead } from "./http-request.js"
import { decodeProxyHeader } from "./proxy-header.js"

const EMPTY = Buffer.alloc(0)

/** How a body ended: complete, or cut short by the visitor's FIN (what it sent is forwarded). */
export type BodyEnd = "complete" | "visitor-ended"

export interface RequestReader {
  /**
   * The PROXY protocol header the connection starts with, consumed (only ever asked of a trusted
   * proxy's connection, before the first head): the client's address it names, if any. None when
   * the connection does not start with one (or closed before sending anything).
   */
  readonly readProxyHeader: Effect.Effect<Option.Option<{ readonly source: string | undefined }>, HttpRequestError>
  /** The next request head; None when the visitor closed (or sent FIN) between requests. */
  readonly readHead: Effect.Effect<Option.Option<{ head: RequestHead; raw: Buffer }>, HttpRequestError>
  /** Forwards the body of `head` to `sender`. */
  readonly pipeBody: (head: RequestHead, sender: ChannelSender) => Effect.Effect<BodyEnd, HttpRequestError>
  /** Forwards everything the visitor sends from now on (after a protocol upgrade), then its FIN. */
  readonly pipeRest: (sender: ChannelSender) => void
  /**
   * Stops reading and puts back the bytes read so far (the last head included), so another
   * parser (Node's HTTP server) can take the socket over.
   */
  readonly release: (raw: Buffer) => void
}

export const makeRequestReader = (socket: net.Socket): RequestReader => {
  let buffer: Buffer = EMPTY
  let ended = false
  let sink: ((chunk: Buffer) => void) | undefined
  let onEnd: (() => void) | undefined
  const onData = (chunk: Buffer) => {
    if (sink !== undefined) sink(chunk)
    else {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      socket.pause()
    }
  }
  socket.on("data", onData)
  socket.once("end", () => {
    ended = true
    onEnd?.()
  })
  socket.once("close", () => {
    ended = true
    onEnd?.()
  })
  socket.pause()

  const stop = () => {
    sink = undefined
    onEnd = undefined
    if (!socket.destroyed) socket.pause()
  }

  const readHead = Effect.async<Option.Option<{ head: RequestHead; raw: Buffer }>, HttpRequestError>((resume) => {
    let scanned = 0
    const attempt = (): boolean => {
      const end = findHeadEnd(buffer, Math.max(0, scanned - 3))
      if (end < 0) {
        scanned = buffer.length
        if (buffer.length > MAX_HEAD_BYTES) {
          stop()
          resume(Effect.fail(new HttpRequestError({ status: 431, reason: "request head too large" })))
          return true
        }
        return false
      }
      const raw = buffer.subarray(0, end)
      buffer = buffer.subarray(end)
      stop()
      resume(Either.match(parseHead(raw), {
        onLeft: Effect.fail,
        onRight: (head) => Effect.succeed(Option.some({ head, raw }))
      }))
      return true
    }
    if (attempt()) return
    if (ended) {
      stop()
      return resume(
        buffer.length === 0 ? Effect.succeedNone : Effect.fail(new HttpRequestError({ status: 400, reason: "connection ended inside a request head" }))
      )
    }
    sink = (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      attempt()
    }
    onEnd = () => {
      stop()
      resume(buffer.length === 0 ? Effect.succeedNone : Effect.fail(new HttpRequestError({ status: 400, reason: "connection ended inside a request head" })))
    }
    socket.resume()
    return Effect.sync(stop)
  })

  const readProxyHeader = Effect.async<Option.Option<{ readonly source: string | undefined }>, HttpRequestError>((resume) => {
    const attempt = (): boolean => {
      const decoded = decodeProxyHeader(buffer)
      if (decoded._tag === "Incomplete") return false
      stop()
      if (decoded._tag === "Absent") resume(Effect.succeedNone)
      else if (decoded._tag === "Invalid") resume(Effect.fail(new HttpRequestError({ status: 400, reason: decoded.reason })))
      else {
        buffer = buffer.subarray(decoded.length)
        resume(Effect.succeedSome({ source: decoded.source }))
      }
      return true
    }
    const ending = () => {
      stop()
      resume(buffer.length === 0 ? Effect.succeedNone : Effect.fail(new HttpRequestError({ status: 400, reason: "connection ended inside a PROXY header" })))
    }
    if (buffer.length > 0 && attempt()) return
    if (ended) return ending()
    sink = (chunk) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk])
      attempt()
    }
    onEnd = ending
    socket.resume()
    return Effect.sync(stop)
  })

  const pipeBody = (head: RequestHead, sender: ChannelSender) =>
    Effect.async<BodyEnd, HttpRequestError>((resume) => {
      const scanner = makeBodyScanner(head.body)
      // Feeds one chunk; true when the body is over (the rest of the chunk is the next request's).
      const feed = (chunk: Buffer): boolean => {
        const result = scanner.feed(chunk)
        if (Either.isLeft(result)) {
          stop()
          resume(Effect.fail(result.left))
          return true
        }
        const { consumed, done } = result.right
        const writable = sender.send(chunk.subarray(0, consumed))
        if (done) {
          buffer = chunk.subarray(consumed)
          stop()
          resume(Effect.succeed("complete"))
          return true
        }
        if (!writable) {
          socket.pause()
          sender.whenDrained(() => {
            if (sink !== undefined && !socket.destroyed) socket.resume()
          })
        }
        return false
      }
      const first = buffer
      buffer = EMPTY
      if (feed(first)) return
      if (ended) {
        stop()
        return resume(Effect.succeed("visitor-ended"))
      }
      sink = (chunk) => void feed(chunk)
      onEnd = () => {
        stop()
        resume(Effect.succeed("visitor-ended"))
      }
      socket.resume()
      return Effect.sync(stop)
    })

  const pipeRest = (sender: ChannelSender) => {
    const forward = (chunk: Buffer) => {
      if (!sender.send(chunk)) {
        socket.pause()
        sender.whenDrained(() => {
          if (!socket.destroyed) socket.resume()
        })
      }
    }
    if (buffer.length > 0) forward(buffer)
    buffer = EMPTY
    if (ended) return sender.end()
    sink = forward
    onEnd = () => sender.end()
    socket.resume()
  }

  const release = (raw: Buffer) => {
    stop()
    socket.off("data", onData)
    socket.unshift(Buffer.concat([raw, buffer]))
    buffer = EMPTY
  }

  return { readProxyHeader, readHead, pipeBody, pipeRest, release }
}
