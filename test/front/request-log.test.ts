import { describe, expect, it } from "vitest"
import { CAPTURE_BYTES, HEAD_TEXT_LIMIT, makeRequestLog, REQUEST_LOG_SIZE } from "../../src/front/request-log.js"
import { SERIES_BUCKET_MS, SERIES_BUCKETS } from "../../src/metrics/series.js"

const head = (extra = "") => Buffer.from(`GET /x HTTP/1.1\r\nHost: a\r\nAuthorization: Basic c2VjcmV0\r\nCookie: sid=1\r\n${extra}\r\n`, "latin1")

describe("the request log", () => {
  it("keeps the last REQUEST_LOG_SIZE requests, newest first, and the first KiB of each body", () => {
    const log = makeRequestLog()
    for (let index = 0; index < REQUEST_LOG_SIZE + 20; index++) {
      const entry = log.begin(1000 + index, head(), { method: "GET", target: `/r${index}` }, "127.0.0.2")
      log.requestBody(entry, Buffer.alloc(3000, 1))
      log.requestDone(entry, true)
      log.responseHead(1001 + index, entry, 200, "HTTP/1.1 200 OK\r\n\r\n")
      log.responseBody(entry, Buffer.alloc(700, 2))
      log.responseBody(entry, Buffer.alloc(700, 3))
      log.responseDone(1005 + index, entry, 1419)
    }
    const entries = log.entries()
    expect(entries).toHaveLength(REQUEST_LOG_SIZE)
    expect(entries[0]!.path).toBe(`/r${REQUEST_LOG_SIZE + 19}`)
    expect(entries.at(-1)!.path).toBe("/r20")
    expect(Buffer.concat(entries[0]!.requestBody).length).toBe(CAPTURE_BYTES)
    expect(Buffer.concat(entries[0]!.responseBody).length).toBe(CAPTURE_BYTES)
    // A body over the capture is not replayable; the durations run from the head.
    expect(entries[0]!.requestWhole).toBe(false)
    expect(entries[0]!.durationMs).toBe(5)
    expect(log.byId(1)).toBeUndefined()
    expect(log.byId(REQUEST_LOG_SIZE + 20)?.path).toBe(`/r${REQUEST_LOG_SIZE + 19}`)
  })

  it("shows credentials redacted, cuts long heads, and keeps the whole head only for a replay", () => {
    const log = makeRequestLog()
    const entry = log.begin(0, head(), { method: "GET", target: "/x" }, "127.0.0.2")
    expect(entry.requestHead).toContain("Authorization: (redacted)\r\nCookie: (redacted)\r\n")
    expect(entry.requestHead).not.toContain("c2VjcmV0")
    expect(entry.replayHead?.toString("latin1")).toContain("Authorization: Basic c2VjcmV0")
    log.requestDone(entry, true)
    expect(entry.requestWhole).toBe(true)
    const long = log.begin(0, head(`X-Long: ${"y".repeat(HEAD_TEXT_LIMIT)}\r\n`), { method: "GET", target: "/x" }, "127.0.0.2")
    expect(long.requestHead.length).toBeLessThan(HEAD_TEXT_LIMIT + 100)
    expect(long.replayHead).toBeUndefined()
    log.requestDone(long, true)
    expect(long.requestWhole).toBe(false)
  })

  it("counts requests and bytes in 10 s buckets over 15 minutes, the oldest falling off", () => {
    const log = makeRequestLog()
    const start = 1_000_000 * SERIES_BUCKET_MS
    const entry = log.begin(start, head(), { method: "GET", target: "/x" }, "127.0.0.2")
    log.responseDone(start + 1, entry, 100)
    log.begin(start + SERIES_BUCKET_MS, head(), { method: "GET", target: "/y" }, "127.0.0.2")
    const now = log.series(start + SERIES_BUCKET_MS)
    expect(now.requests.slice(-2)).toEqual([1, 1])
    expect(now.bytes.at(-2)).toBe(head().length + 100)
    expect(now.requests).toHaveLength(SERIES_BUCKETS)
    const later = log.series(start + SERIES_BUCKETS * SERIES_BUCKET_MS)
    expect(later.requests.reduce((a, b) => a + b, 0)).toBe(1)
    expect(log.series(start + 10 * SERIES_BUCKETS * SERIES_BUCKET_MS).requests.every((count) => count === 0)).toBe(true)
  })
})
