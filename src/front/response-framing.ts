/**
 * Where each response ends on a channel, read as the bytes go by (RFC 9112 §6.3), so that the
 * request log (request-log.ts) can give each request its status, size and time. Nothing is
 * changed: the tracker only watches.
 *
 * Requests are announced in the order they were sent down the channel (`expect`), with their
 * method (a HEAD's response has no body). A response's body is: none for 1xx, 204, 304 and HEAD;
 * `Transfer-Encoding: chunked` up to its last chunk and trailers; `Content-Length` bytes; else
 * everything until the channel closes. A 1xx other than 101 is followed by the real response; a
 * 101, a response with no request announced, or anything that does not parse ends the tracking
 * (the bytes still flow, the log just says less).
 */
import { findHeadEnd, MAX_HEAD_BYTES } from "./http-request.js"

export interface ResponseEvents {
  /** The final head (status and raw text) of the response to the oldest request still waiting. */
  readonly head: (status: number, text: string) => void
  /** Body bytes of that response, as they pass. */
  readonly body: (bytes: Buffer) => void
  /** That response is through: its size on the wire, head included. */
  readonly end: (bytes: number) => void
}

export interface ResponseTracker {
  readonly expect: (method: string) => void
  readonly push: (chunk: Buffer) => void
  /** The channel closed: a body read until close ends here. */
  readonly close: () => void
}

type State =
  | { readonly _tag: "Head" }
  | { readonly _tag: "Length"; left: number }
  | { readonly _tag: "ChunkSize" }
  | { readonly _tag: "ChunkData"; left: number }
  | { readonly _tag: "ChunkDataEnd" }
  | { readonly _tag: "Trailers" }
  | { readonly _tag: "UntilClose" }
  | { readonly _tag: "Done" }

const LINE_LIMIT = 4096

export const makeResponseTracker = (events: ResponseEvents): ResponseTracker => {
  const methods: Array<string> = []
  let state: State = { _tag: "Head" }
  let pending: Buffer = Buffer.alloc(0)
  let size = 0

  const finish = () => {
    events.end(size)
    size = 0
    state = { _tag: "Head" }
  }

  /** Reads a head from `data`: how many bytes it took, or -1 when it has not all come. */
  const readHead = (data: Buffer): number => {
    const end = findHeadEnd(data)
    if (end === -1) {
      if (data.length > MAX_HEAD_BYTES) state = { _tag: "Done" }
      return -1
    }
    const text = data.subarray(0, end).toString("latin1")
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)
    const method = methods[0]
    if (status === null || method === undefined) {
      state = { _tag: "Done" }
      return end
    }
    const code = Number(status[1])
    size += end
    if (code >= 100 && code < 200) {
      // An interim head: the real one follows, for the same request. A 101 hands the channel over.
      if (code === 101) {
        methods.shift()
        events.head(code, text)
        events.end(size)
        state = { _tag: "Done" }
      }
      return end
    }
    methods.shift()
    events.head(code, text)
    const headers = text.toLowerCase()
    const length = /\r?\ncontent-length:[ \t]*(\d+)[ \t]*\r?\n/.exec(headers)
    if (method === "HEAD" || code === 204 || code === 304) finish()
    else if (/\r?\ntransfer-encoding:[^\r\n]*chunked/.test(headers)) state = { _tag: "ChunkSize" }
    else if (length !== null) {
      const left = Number(length[1])
      if (left === 0) finish()
      else state = { _tag: "Length", left }
    } else state = { _tag: "UntilClose" }
    return end
  }

  /** A line ending in LF within `data`: its length with the LF, or -1. */
  const line = (data: Buffer) => {
    const lf = data.indexOf(0x0a)
    if (lf === -1 && data.length > LINE_LIMIT) state = { _tag: "Done" }
    return lf === -1 ? -1 : lf + 1
  }

  /** What a whole line read in `state` means: a chunk's size, the end of its data, a trailer. */
  const onLine = (tag: "ChunkSize" | "ChunkDataEnd" | "Trailers", text: Buffer) => {
    if (tag === "ChunkDataEnd") state = { _tag: "ChunkSize" }
    else if (tag === "Trailers") {
      // The blank line after the trailers ends the body.
      if (text.length === 1 || (text.length === 2 && text[0] === 0x0d)) finish()
    } else {
      const chunkSize = parseInt(text.toString("latin1"), 16)
      state = Number.isNaN(chunkSize) ? { _tag: "Done" } : chunkSize === 0 ? { _tag: "Trailers" } : { _tag: "ChunkData", left: chunkSize }
    }
  }

  const push = (chunk: Buffer) => {
    let data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
    pending = Buffer.alloc(0)
    while (data.length > 0) {
      const current: State = state
      if (current._tag === "Done") return
      if (current._tag === "UntilClose") {
        events.body(data)
        size += data.length
        return
      }
      if (current._tag === "Length" || current._tag === "ChunkData") {
        const take = Math.min(current.left, data.length)
        events.body(data.subarray(0, take))
        size += take
        current.left -= take
        data = data.subarray(take)
        if (current.left === 0) {
          if (current._tag === "Length") finish()
          else state = { _tag: "ChunkDataEnd" }
        }
        continue
      }
      // A head or a line: nothing is done with it until all of it has come.
      const used = current._tag === "Head" ? readHead(data) : line(data)
      if (used === -1) {
        pending = data
        return
      }
      if (current._tag !== "Head") {
        size += used
        onLine(current._tag, data.subarray(0, used))
      }
      data = data.subarray(used)
    }
  }

  return {
    expect: (method) => methods.push(method),
    push,
    close: () => {
      if (state._tag === "UntilClose") finish()
      state = { _tag: "Done" }
    }
  }
}
