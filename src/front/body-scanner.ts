/**
 * Where a request body ends, found in the bytes that follow its head as they stream by: the
 * bytes themselves pass through untouched (the app behind the tunnel reads the framing itself).
 * The front must agree with that app on every byte, or a visitor could smuggle a second request
 * past the routing; so chunked framing is read strictly (RFC 9112 §7.1).
 */
import { Either } from "effect"
import type { HttpRequestError } from "../errors.js"
import { type BodyFraming, CR, fail, LF } from "./http-request.js"

/** The longest chunk-size line (size and extensions), not counting its CRLF. */
const MAX_CHUNK_LINE_BYTES = 4 * 1024
/** The most trailer bytes after the last chunk, lines and CRLFs together. */
const MAX_TRAILER_BYTES = 64 * 1024

/** Where a body ends in the bytes that follow its head; the bytes themselves pass untouched. */
export interface BodyScanner {
  /**
   * Looks at `chunk` from `offset` (0 by default): `consumed` bytes from there belong to the body,
   * and once `done`, the bytes after them are the next request. Feeding an empty chunk is fine
   * (it tells whether a None or zero-length body is done); feeding after done consumes nothing.
   */
  readonly feed: (chunk: Uint8Array, offset?: number) => Either.Either<
    { readonly consumed: number; readonly done: boolean },
    HttpRequestError
  >
}

export const makeBodyScanner = (framing: BodyFraming): BodyScanner => {
  switch (framing._tag) {
    case "None":
      return { feed: () => Either.right({ consumed: 0, done: true }) }
    case "Length": {
      let remaining = framing.length
      return {
        feed: (chunk, offset = 0) => {
          const consumed = Math.min(remaining, Math.max(0, chunk.length - offset))
          remaining -= consumed
          return Either.right({ consumed, done: remaining === 0 })
        }
      }
    }
    case "Chunked":
      return makeChunkedScanner()
  }
}

/** The value of a hex digit byte, or -1. */
const hexValue = (byte: number) =>
  byte >= 0x30 && byte <= 0x39 ? byte - 0x30 : (byte | 0x20) >= 0x61 && (byte | 0x20) <= 0x66 ? (byte | 0x20) - 0x57 : -1
/** Bytes a line may not hold: controls other than HT, and DEL. */
const isControl = (byte: number) => (byte < 0x20 && byte !== 0x09) || byte === 0x7f

/**
 * RFC 9112 §7.1, one byte at a time except for chunk data, so any split of the input gives the
 * same answer. Every line here must end in CRLF: a bare LF or CR is where parsers disagree.
 */
const makeChunkedScanner = (): BodyScanner => {
  type State =
    | "size" // hex digits of a chunk-size line
    | "extension" // after `;`, up to the CR
    | "sizeLF" // after the size line's CR
    | "data" // `remaining` bytes of chunk data
    | "dataCR" | "dataLF" // the CRLF that closes chunk data
    | "trailerStart" // at the start of a trailer line, or of the final empty line
    | "trailer" // inside a trailer line
    | "trailerLF" // after a trailer line's CR
    | "endLF" // after the final empty line's CR
    | "done"
  let state: State = "size"
  let lineBytes = 0 // of the current size line, then of all the trailers together
  let digits = 0
  let remaining = 0
  // A framing error is final: the connection is answered 400 and closed.
  let failure: Either.Either<never, HttpRequestError> | undefined

  const feed: BodyScanner["feed"] = (chunk, offset = 0) => {
    if (failure !== undefined) return failure
    const stop = (reason: string) => (failure = fail(400, reason))
    let index = offset
    while (index < chunk.length && state !== "done") {
      if (state === "data") {
        const take = Math.min(remaining, chunk.length - index)
        index += take
        remaining -= take
        if (remaining === 0) state = "dataCR"
        continue
      }
      const byte = chunk[index++]!
      switch (state) {
        case "size":
        case "extension": {
          const digit = hexValue(byte)
          if (byte === CR) {
            if (digits === 0) return stop("chunk-size line without a size")
            state = "sizeLF"
          } else if (++lineBytes > MAX_CHUNK_LINE_BYTES) {
            return stop("chunk-size line is too long")
          } else if (state === "extension") {
            if (isControl(byte)) return stop("control character in a chunk extension")
          } else if (byte === 0x3b && digits > 0) {
            state = "extension"
          } else if (digit === -1) {
            return stop("malformed chunk size")
          } else if (++digits > 16) {
            return stop("chunk size has more than 16 digits")
          } else {
            remaining = remaining * 16 + digit
            if (remaining > Number.MAX_SAFE_INTEGER) return stop("chunk size is too large")
          }
          break
        }
        case "sizeLF":
          if (byte !== LF) return stop("chunk-size line does not end with CRLF")
          lineBytes = 0
          digits = 0
          // Size 0 is the last chunk; trailers (maybe none) and an empty line follow.
          state = remaining > 0 ? "data" : "trailerStart"
          break
        case "dataCR":
        case "dataLF":
          if (byte !== (state === "dataCR" ? CR : LF)) return stop("chunk data is not followed by CRLF")
          state = state === "dataCR" ? "dataLF" : "size"
          break
        default: // the trailer section
          if (++lineBytes > MAX_TRAILER_BYTES) return stop("trailers are too long")
          if (state === "trailerLF" || state === "endLF") {
            if (byte !== LF) return stop("trailer line does not end with CRLF")
            state = state === "endLF" ? "done" : "trailerStart"
          } else if (byte === CR) {
            state = state === "trailerStart" ? "endLF" : "trailerLF"
          } else if (isControl(byte)) {
            return stop("control character in a trailer")
          } else {
            state = "trailer"
          }
      }
    }
    return Either.right({ consumed: index - offset, done: state === "done" })
  }
  return { feed }
}
