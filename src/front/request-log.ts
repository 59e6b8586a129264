/**
 * What an HTTP tunnel's inspector shows: the last REQUEST_LOG_SIZE requests (method, path,
 * status, time, bytes, visitor; both heads and the first CAPTURE_BYTES of both bodies), and the
 * tunnel's requests and bytes over the last 15 minutes (metrics/series.ts).
 *
 * Bounded by construction: a full log drops its oldest entry; a head is kept up to
 * HEAD_TEXT_LIMIT (an over-long one is cut, and its request not replayable); bodies up to
 * CAPTURE_BYTES. Worst case per tunnel: 100 × (2 × 8 KiB heads + 8 KiB replay head + 2 × 1 KiB)
 * = 2.6 MiB; a typical request costs about 2 KiB, so 200 KiB.
 *
 * A visitor's `Authorization` and `Cookie` headers are shown redacted; the head kept for replay
 * (which must carry them to pass a tunnel's basic auth) is never shown.
 */
export const REQUEST_LOG_SIZE = 100
export const CAPTURE_BYTES = 1024
export const HEAD_TEXT_LIMIT = 8 * 1024

export interface LoggedRequest {
  /** Increasing within the tunnel, from 1. */
  readonly id: number
  /** When its head came, epoch ms. */
  readonly at: number
  readonly method: string
  /** The target as the visitor sent it (the /t/NAME prefix included). */
  readonly path: string
  readonly visitor: string
  readonly requestHead: string
  readonly requestBody: Array<Buffer>
  requestBytes: number
  /** Whether the body has all been seen and kept (a replay needs it whole). */
  requestWhole: boolean
  status: number | undefined
  responseHead: string | undefined
  readonly responseBody: Array<Buffer>
  responseBytes: number
  durationMs: number | undefined
  /** The head as received, for a replay; undefined when it was over HEAD_TEXT_LIMIT. */
  readonly replayHead: Buffer | undefined
}

const SECRET_HEADERS = /^(authorization|proxy-authorization|cookie):.*$/gim

const headText = (raw: Buffer) => {
  const text = raw.toString("latin1").replace(SECRET_HEADERS, (line) => `${line.slice(0, line.indexOf(":"))}: (redacted)`)
  return text.length > HEAD_TEXT_LIMIT ? `${text.slice(0, HEAD_TEXT_LIMIT)}\n(cut at ${HEAD_TEXT_LIMIT} bytes)` : text
}

const capture = (into: Array<Buffer>, bytes: Uint8Array) => {
  const have = into.reduce((sum, piece) => sum + piece.length, 0)
  if (have < CAPTURE_BYTES) into.push(Buffer.from(bytes.subarray(0, CAPTURE_BYTES - have)))
}

import { makeSeries, type Series } from "../metrics/series.js"

/** Each call says what time it is (`now`, epoch ms, from the caller's clock). */
export interface RequestLog {
  /** A request whose head was just read (`raw`), from `visitor`. */
  readonly begin: (now: number, raw: Buffer, head: { readonly method: string; readonly target: string }, visitor: string) => LoggedRequest
  readonly requestBody: (entry: LoggedRequest, bytes: Uint8Array) => void
  readonly requestDone: (entry: LoggedRequest, whole: boolean) => void
  readonly responseHead: (now: number, entry: LoggedRequest, status: number, text: string) => void
  readonly responseBody: (entry: LoggedRequest, bytes: Uint8Array) => void
  readonly responseDone: (now: number, entry: LoggedRequest, bytes: number) => void
  /** The entries, newest first. */
  readonly entries: () => ReadonlyArray<LoggedRequest>
  readonly byId: (id: number) => LoggedRequest | undefined
  readonly series: (now: number) => Series
}

export const makeRequestLog = (): RequestLog => {
  const entries: Array<LoggedRequest> = []
  let nextId = 1
  const series = makeSeries()

  return {
    begin: (now, raw, head, visitor) => {
      const entry: LoggedRequest = {
        id: nextId++,
        at: now,
        method: head.method,
        path: head.target,
        visitor,
        requestHead: headText(raw),
        requestBody: [],
        requestBytes: raw.length,
        requestWhole: false,
        status: undefined,
        responseHead: undefined,
        responseBody: [],
        responseBytes: 0,
        durationMs: undefined,
        replayHead: raw.length <= HEAD_TEXT_LIMIT ? Buffer.from(raw) : undefined
      }
      entries.push(entry)
      if (entries.length > REQUEST_LOG_SIZE) entries.shift()
      series.add(now, 1, 0)
      return entry
    },
    requestBody: (entry, chunk) => {
      entry.requestBytes += chunk.length
      capture(entry.requestBody, chunk)
    },
    requestDone: (entry, whole) => {
      entry.requestWhole = whole && entry.replayHead !== undefined && entry.requestBytes - entry.replayHead.length <= CAPTURE_BYTES
    },
    responseHead: (now, entry, status, text) => {
      entry.status = status
      entry.responseHead = headText(Buffer.from(text, "latin1"))
      entry.durationMs = now - entry.at
    },
    responseBody: (entry, chunk) => capture(entry.responseBody, chunk),
    responseDone: (now, entry, size) => {
      entry.responseBytes = size
      entry.durationMs = now - entry.at
      series.add(now, 0, entry.requestBytes + size)
    },
    entries: () => [...entries].reverse(),
    byId: (id) => entries.find((entry) => entry.id === id),
    series: (now) => series.snapshot(now)
  }
}
