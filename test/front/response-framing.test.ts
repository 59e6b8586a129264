import { describe, expect, it } from "vitest"
import { makeResponseTracker } from "../../src/front/response-framing.js"

/** Feeds `wire` in pieces of `step` bytes for requests `methods`; what the tracker saw. */
const track = (methods: ReadonlyArray<string>, wire: string, step: number, close = false) => {
  const seen: Array<{ status: number; body: string; bytes?: number }> = []
  const tracker = makeResponseTracker({
    head: (status) => seen.push({ status, body: "" }),
    body: (bytes) => (seen[seen.length - 1]!.body += bytes.toString("latin1")),
    end: (bytes) => (seen[seen.length - 1]!.bytes = bytes)
  })
  for (const method of methods) tracker.expect(method)
  for (let at = 0; at < wire.length; at += step) tracker.push(Buffer.from(wire.slice(at, at + step), "latin1"))
  if (close) tracker.close()
  return seen
}

describe("response framing, for the request log", () => {
  const length = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
  const chunked = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n"
  const noBody = "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
  const head = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"
  const interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"

  it("finds each response's end on a kept-alive channel, however the bytes are cut", () => {
    const wire = length + chunked + noBody + head + interim
    for (const step of [1, 2, 3, 7, 64, wire.length]) {
      expect(track(["GET", "POST", "GET", "HEAD", "PUT"], wire, step), `step ${step}`).toEqual([
        { status: 200, body: "hello", bytes: length.length },
        { status: 201, body: "abcde", bytes: chunked.length },
        { status: 304, body: "", bytes: noBody.length },
        { status: 200, body: "", bytes: head.length },
        { status: 204, body: "", bytes: interim.length }
      ])
    }
  })

  it("a body without a length ends with the channel; a 101 and what does not parse end the tracking", () => {
    expect(track(["GET"], "HTTP/1.0 200 OK\r\n\r\nuntil the end", 4, true)).toEqual([{ status: 200, body: "until the end", bytes: 32 }])
    expect(track(["GET", "GET"], "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 5)).toEqual([
      { status: 101, body: "", bytes: 56 }
    ])
    expect(track(["GET"], "garbage\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3)).toEqual([])
    // A response nobody asked for is not pinned on anyone.
    expect(track([], length, 3)).toEqual([])
    expect(track(["GET"], "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 2)).toEqual([{ status: 200, body: "" }])
  })
})
