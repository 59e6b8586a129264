/**
 * The HTTP front's request heads and bodies: every rule at its edge, since a visitor controls
 * every byte and a framing rule read loosely is a smuggled request.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { HttpRequestError } from "../../src/errors.js"
import { makeBodyScanner } from "../../src/front/body-scanner.js"
import { errorResponse } from "../../src/front/error-page.js"
import {
  type BodyFraming,
  findHeadEnd,
  MAX_HEAD_BYTES,
  parseHead,
  type RequestHead,
  rewriteHead,
  routeOf
} from "../../src/front/http-request.js"

const bytes = (text: string) => Buffer.from(text, "latin1")
const text = (data: Uint8Array) => Buffer.from(data).toString("latin1")
const parse = (head: string) => parseHead(bytes(head))
const parsed = (head: string): RequestHead => Either.getOrThrow(parse(head))
/** The status a head is refused with, or "ok". */
const statusOf = (head: string) =>
  Either.match(parse(head), { onLeft: (error) => error.status, onRight: () => "ok" as const })
/** A GET with these header lines. */
const withHeaders = (...lines: Array<string>) => `GET / HTTP/1.1\r\n${lines.map((line) => `${line}\r\n`).join("")}\r\n`

/** Feeds pieces one after another until done: how many bytes the body took, or the error. */
const scan = (framing: BodyFraming, ...pieces: Array<string | Uint8Array>) => {
  const scanner = makeBodyScanner(framing)
  let total = 0
  for (const piece of pieces) {
    const result = scanner.feed(typeof piece === "string" ? bytes(piece) : piece)
    if (Either.isLeft(result)) return result.left
    total += result.right.consumed
    if (result.right.done) return { total }
  }
  return { total, pending: true }
}
const chunked: BodyFraming = { _tag: "Chunked" }
const chunkedStatus = (body: string) => {
  const result = scan(chunked, body)
  return result instanceof HttpRequestError ? result.status : result
}

describe("findHeadEnd", () => {
  it("finds the blank line however the lines end", () => {
    expect(findHeadEnd(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"))).toBe(27)
    expect(findHeadEnd(bytes("GET / HTTP/1.1\nHost: a\n\nbody"))).toBe(24)
    expect(findHeadEnd(bytes("GET / HTTP/1.1\r\nHost: a\r\n\nbody"))).toBe(26)
    expect(findHeadEnd(bytes("GET / HTTP/1.1\nHost: a\n\r\nbody"))).toBe(25)
  })

  it("waits while the head is incomplete", () => {
    for (const partial of ["", "GET / HTTP/1.1", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r", "a\r\rb\r\r"]) {
      expect(findHeadEnd(bytes(partial))).toBe(-1)
    }
  })

  it("does not take one empty line before the request line for the end", () => {
    expect(findHeadEnd(bytes("\r\nGET / HTTP/1.1\r\n\r\n"))).toBe(20)
    expect(findHeadEnd(bytes("\r\n"))).toBe(-1)
  })

  it("resumes from where the last scan stopped, whatever the split", () => {
    const head = bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\nnext")
    for (let cut = 0; cut <= head.length; cut++) {
      const first = findHeadEnd(head.subarray(0, cut))
      const answer = first !== -1 ? first : findHeadEnd(head, cut)
      expect(answer).toBe(27)
    }
    // One byte at a time, always resuming from the previous length.
    let end = -1
    for (let length = 1; end === -1; length++) end = findHeadEnd(head.subarray(0, length), length - 1)
    expect(end).toBe(27)
  })

  it("property: resuming at any point finds what one scan finds", () => {
    const lineBytes = fc.constantFrom("\r", "\n", "a", ":", " ")
    fc.assert(fc.property(fc.array(lineBytes, { maxLength: 40 }), fc.nat(), (parts, at) => {
      const buffer = bytes(parts.join(""))
      const cut = at % (buffer.length + 1)
      const first = findHeadEnd(buffer.subarray(0, cut))
      expect(first !== -1 ? first : findHeadEnd(buffer, cut)).toBe(findHeadEnd(buffer))
    }))
  })
})

describe("parseHead", () => {
  it("reads the request line and the headers as sent", () => {
    expect(parsed("POST /a?b=1 HTTP/1.1\r\nHost: App.Example.com:8080\r\nx-Custom:  v a l \t\r\nContent-Length: 3\r\n\r\n"))
      .toEqual({
        method: "POST",
        target: "/a?b=1",
        version: "HTTP/1.1",
        headers: [["Host", "App.Example.com:8080"], ["x-Custom", "v a l"], ["Content-Length", "3"]],
        host: "App.Example.com:8080",
        body: { _tag: "Length", length: 3 },
        upgrade: false
      })
  })

  it("accepts bare LF lines, HTTP/1.0, no Host, empty values and obs-text", () => {
    const head = parsed("GET * HTTP/1.0\nX-Empty:\nX-Latin: caf\xe9\n\n")
    expect(head.version).toBe("HTTP/1.0")
    expect(head.target).toBe("*")
    expect(head.host).toBeUndefined()
    expect(head.headers).toEqual([["X-Empty", ""], ["X-Latin", "caf\xe9"]])
    expect(head.body).toEqual({ _tag: "None" })
  })

  it("ignores one empty line before the request line, not two", () => {
    expect(parsed("\r\nGET / HTTP/1.1\r\n\r\n").method).toBe("GET")
    expect(statusOf("\r\n\r\nGET / HTTP/1.1\r\n\r\n")).toBe(400)
  })

  it("parses only up to the blank line", () => {
    expect(parsed("GET / HTTP/1.1\r\n\r\nGARBAGE\0").headers).toEqual([])
    expect(statusOf("GET / HTTP/1.1\r\nHost: a\r\n")).toBe(400)
  })

  it("answers 505 to other HTTP versions and 400 to malformed ones", () => {
    for (const version of ["HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"]) {
      expect(statusOf(`GET / ${version}\r\n\r\n`)).toBe(505)
    }
    for (const version of ["HTTP/1", "http/1.1", "HTTP/1.1 ", "HTTP/11.1", "HTTP/1.1\r", "HTTPS/1.1"]) {
      expect(statusOf(`GET / ${version}\r\n\r\n`)).toBe(400)
    }
  })

  it("refuses malformed request lines", () => {
    for (const line of [
      "GET  / HTTP/1.1", "GET / HTTP/1.1 x", " GET / HTTP/1.1", "GET", "GET /", "GET  HTTP/1.1",
      "G(T / HTTP/1.1", "GE\x01T / HTTP/1.1", "GET /a\x01b HTTP/1.1", "GET /a\x7fb HTTP/1.1",
      "GET /a\tb HTTP/1.1", "GET /a\rb HTTP/1.1", "GET\t/ HTTP/1.1"
    ]) {
      expect(statusOf(`${line}\r\n\r\n`), JSON.stringify(line)).toBe(400)
    }
    // Bytes from 0x80 up may appear in a target (raw UTF-8 paths).
    expect(parsed(bytes("GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n").toString("latin1")).target).toBe("/caf\xc3\xa9")
  })

  it("refuses malformed header lines", () => {
    for (const line of [
      "Host : a", "Host\t: a", "Ho st: a", ": a", "NoColon", "X(y): a", "X\x01: a",
      " folded", "\tfolded", "X: a\0b", "X: a\x1bb", "X: a\x7fb", "X: a\rb", "X: \r"
    ]) {
      expect(statusOf(withHeaders("Host: a", line)), JSON.stringify(line)).toBe(400)
    }
    expect(parse(withHeaders("Host : a")).pipe(Either.flip, Either.getOrThrow).reason)
      .toBe("whitespace before a header's colon")
    expect(statusOf(withHeaders("X: a\tb", "Y: \x80\xff"))).toBe("ok")
  })

  it("refuses a second Host header", () => {
    expect(statusOf(withHeaders("Host: a", "host: b"))).toBe(400)
    expect(statusOf(withHeaders("Host: a", "Host: a"))).toBe(400)
  })

  it("accepts only chunked, alone, as a transfer coding", () => {
    expect(parsed(withHeaders("Transfer-Encoding: chunked")).body).toEqual({ _tag: "Chunked" })
    expect(parsed(withHeaders("transfer-encoding:  ChUnKeD ")).body).toEqual({ _tag: "Chunked" })
    for (const value of ["gzip, chunked", "chunked, chunked", "chunked,", "identity", "gzip", "", "chunked;q=1"]) {
      expect(statusOf(withHeaders(`Transfer-Encoding: ${value}`)), value).toBe(501)
    }
    expect(statusOf(withHeaders("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"))).toBe(501)
    expect(statusOf(withHeaders("Transfer-Encoding: gzip", "Transfer-Encoding: chunked"))).toBe(501)
  })

  it("refuses Transfer-Encoding with Content-Length, and in HTTP/1.0", () => {
    expect(statusOf(withHeaders("Transfer-Encoding: chunked", "Content-Length: 5"))).toBe(400)
    expect(statusOf(withHeaders("Content-Length: 0", "Transfer-Encoding: gzip"))).toBe(400)
    expect(statusOf("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")).toBe(400)
  })

  it("takes Content-Length as digits only, up to the largest safe integer", () => {
    const lengthOf = (...values: Array<string>) => parse(withHeaders(...values.map((value) => `Content-Length: ${value}`)))
    expect(lengthOf("0").pipe(Either.map((head) => head.body))).toEqual(Either.right({ _tag: "Length", length: 0 }))
    expect(lengthOf("9007199254740991").pipe(Either.map((head) => head.body)))
      .toEqual(Either.right({ _tag: "Length", length: Number.MAX_SAFE_INTEGER }))
    for (const value of ["", "abc", "-1", "+1", "1.0", "0x5", "1e3", "5 5", "9007199254740992", "99999999999999999999"]) {
      expect(Either.flip(lengthOf(value)).pipe(Either.map((error) => error.status)), value).toEqual(Either.right(400))
    }
  })

  it("accepts repeated Content-Lengths only when they agree", () => {
    const bodyOf = (...lines: Array<string>) => Either.map(parse(withHeaders(...lines)), (head) => head.body)
    const five = Either.right({ _tag: "Length", length: 5 })
    expect(bodyOf("Content-Length: 5", "Content-Length: 5")).toEqual(five)
    expect(bodyOf("Content-Length: 5, 5")).toEqual(five)
    expect(bodyOf("Content-Length: 5,05")).toEqual(five)
    for (const lines of [["Content-Length: 5", "content-length: 6"], ["Content-Length: 5, 6"], ["Content-Length: 5,,5"], ["Content-Length: 5,"]]) {
      expect(statusOf(withHeaders(...lines)), lines.join("|")).toBe(400)
    }
  })

  it("answers 431 past MAX_HEAD_BYTES", () => {
    const headOf = (length: number) => {
      const start = "GET / HTTP/1.1\r\nX: "
      return `${start}${"a".repeat(length - start.length - 4)}\r\n\r\n`
    }
    expect(headOf(MAX_HEAD_BYTES).length).toBe(MAX_HEAD_BYTES)
    expect(statusOf(headOf(MAX_HEAD_BYTES))).toBe("ok")
    expect(statusOf(headOf(MAX_HEAD_BYTES + 1))).toBe(431)
  })

  it("sees an upgrade only with both Upgrade and a Connection token", () => {
    const upgrade = (...lines: Array<string>) => parsed(withHeaders(...lines)).upgrade
    expect(upgrade("Upgrade: websocket", "Connection: Upgrade")).toBe(true)
    expect(upgrade("Upgrade: websocket", "Connection: keep-alive, UPGRADE")).toBe(true)
    expect(upgrade("Upgrade: websocket", "Connection: keep-alive", "connection: upgrade")).toBe(true)
    expect(upgrade("Upgrade: websocket", "Connection: keep-alive")).toBe(false)
    expect(upgrade("Upgrade: websocket", "Connection: upgraded")).toBe(false)
    expect(upgrade("Upgrade: websocket")).toBe(false)
    expect(upgrade("Connection: upgrade")).toBe(false)
  })

  it("property: any bytes give a value or an HttpRequestError, never a throw", () => {
    const check = (head: Uint8Array) => {
      const result = parseHead(head)
      if (Either.isLeft(result)) expect(result.left).toBeInstanceOf(HttpRequestError)
    }
    const piece = fc.oneof(
      fc.uint8Array({ maxLength: 30 }),
      fc.constantFrom("\r\n", "\n", ":", " ", "\t", "Content-Length: ", "Transfer-Encoding: chunked", "Host: a", ",")
        .map(bytes)
    )
    fc.assert(fc.property(fc.array(piece, { maxLength: 20 }), (pieces) => {
      check(Buffer.concat(pieces))
      check(Buffer.concat([bytes("GET / HTTP/1.1\r\n"), ...pieces, bytes("\r\n\r\n")]))
    }), { numRuns: 500 })
  })
})

describe("makeBodyScanner", () => {
  it("a request without a body is done at once, even fed nothing", () => {
    const scanner = makeBodyScanner({ _tag: "None" })
    expect(scanner.feed(new Uint8Array(0))).toEqual(Either.right({ consumed: 0, done: true }))
    expect(scanner.feed(bytes("GET / HTTP/1.1\r\n"))).toEqual(Either.right({ consumed: 0, done: true }))
    expect(makeBodyScanner({ _tag: "Length", length: 0 }).feed(new Uint8Array(0)))
      .toEqual(Either.right({ consumed: 0, done: true }))
  })

  it("counts a Content-Length down across chunks and from an offset", () => {
    const scanner = makeBodyScanner({ _tag: "Length", length: 5 })
    expect(scanner.feed(new Uint8Array(0))).toEqual(Either.right({ consumed: 0, done: false }))
    expect(scanner.feed(bytes("headab"), 4)).toEqual(Either.right({ consumed: 2, done: false }))
    expect(scanner.feed(bytes("cdeGET"))).toEqual(Either.right({ consumed: 3, done: true }))
    expect(scanner.feed(bytes("more"))).toEqual(Either.right({ consumed: 0, done: true }))
  })

  it("finds the end of a chunked body with extensions and trailers", () => {
    const body = "5;name=value;x=\"q\"\r\nhello\r\nA\r\n0123456789\r\n0;last\r\nX-Sum: 1\r\nY: 2\r\n\r\n"
    expect(scan(chunked, `${body}GET / HTTP/1.1\r\n`)).toEqual({ total: body.length })
    expect(scan(chunked, ...`${body}GET`.split(""))).toEqual({ total: body.length })
    expect(scan(chunked, "0\r\n\r\n")).toEqual({ total: 5 })
    expect(scan(chunked, "0000000000000001\r\nx\r\n0\r\n\r\n")).toEqual({ total: 26 })
    expect(scan(chunked, "aB\r\n", "x".repeat(0xab), "\r\n0\r\n\r\n")).toEqual({ total: 4 + 0xab + 7 })
    // Chunk data may hold anything, CRLFs and NULs included.
    expect(scan(chunked, "4\r\n\r\n\0\n\r\n0\r\n\r\n")).toEqual({ total: 14 })
  })

  it("waits for the rest of an incomplete body", () => {
    for (const partial of ["", "5", "5\r", "5\r\nhel", "5\r\nhello", "5\r\nhello\r", "0\r\n", "0\r\nX: 1\r\n", "0\r\n\r"]) {
      expect(scan(chunked, partial), partial).toEqual({ total: partial.length, pending: true })
    }
  })

  it("feeds from an offset", () => {
    const scanner = makeBodyScanner(chunked)
    expect(scanner.feed(bytes("HEAD3\r\nabc\r\n0\r\n\r\nNEXT"), 4)).toEqual(Either.right({ consumed: 13, done: true }))
  })

  it("refuses malformed chunk-size lines", () => {
    for (const body of [
      "\r\n", ";ext\r\n", "g\r\n", "-5\r\n", "+5\r\n", "0x5\r\n", "5 \r\n", " 5\r\n", "5\t;x\r\n",
      "5\n", "5\r\r", "5\rx", "00000000000000005\r\n", "20000000000000\r\n", "5;a\0b\r\n", "5;a\nb\r\n"
    ]) {
      expect(chunkedStatus(body), JSON.stringify(body)).toBe(400)
    }
    // 2^53 - 1 is the largest size: accepted (and then waited for).
    expect(chunkedStatus("1fffffffffffff\r\n")).toEqual({ total: 16, pending: true })
  })

  it("refuses a chunk-size line past 4 KiB", () => {
    const line = (length: number) => `1;${"x".repeat(length - 2)}\r\n`
    expect(chunkedStatus(`${line(4096)}a\r\n0\r\n\r\n`)).toEqual({ total: 4098 + 3 + 5 })
    expect(chunkedStatus(line(4097))).toBe(400)
  })

  it("refuses chunk data not followed by CRLF", () => {
    for (const body of ["1\r\nab", "1\r\na\n", "1\r\na\r\r", "1\r\na\rx"]) {
      expect(chunkedStatus(body), JSON.stringify(body)).toBe(400)
    }
  })

  it("refuses malformed trailers and more than 64 KiB of them", () => {
    for (const body of ["0\r\nX: 1\n\r\n", "0\r\n\n", "0\r\nX: \0\r\n\r\n", "0\r\nX: 1\rY\r\n\r\n", "0\r\n\rX"]) {
      expect(chunkedStatus(body), JSON.stringify(body)).toBe(400)
    }
    const trailers = (total: number) => `X: ${"t".repeat(total - 7)}\r\n\r\n`
    expect(chunkedStatus(`0\r\n${trailers(64 * 1024)}`)).toEqual({ total: 3 + 64 * 1024 })
    expect(chunkedStatus(`0\r\n${trailers(64 * 1024 + 1)}`)).toBe(400)
  })

  it("stays failed after an error", () => {
    const scanner = makeBodyScanner(chunked)
    expect(Either.isLeft(scanner.feed(bytes("z")))).toBe(true)
    expect(Either.isLeft(scanner.feed(bytes("0\r\n\r\n")))).toBe(true)
  })

  it("property: a valid chunked body ends at its length under any split", () => {
    const hexSize = (size: number) =>
      fc.tuple(fc.nat({ max: 3 }), fc.boolean()).map(([zeros, upper]) => {
        const hex = "0".repeat(zeros) + size.toString(16)
        return upper ? hex.toUpperCase() : hex
      })
    const extension = fc.option(fc.stringMatching(/^[a-z=";\t -~]{0,12}$/), { nil: undefined })
      .map((ext) => ext === undefined ? "" : `;${ext}`)
    const dataChunk = fc.uint8Array({ minLength: 1, maxLength: 40 }).chain((data) =>
      fc.tuple(hexSize(data.length), extension).map(([size, ext]) =>
        Buffer.concat([bytes(`${size}${ext}\r\n`), data, bytes("\r\n")])
      )
    )
    const trailer = fc.stringMatching(/^[A-Za-z-]{1,8}: [ -~]{0,10}$/).map((line) => `${line}\r\n`)
    const body = fc.tuple(fc.array(dataChunk, { maxLength: 6 }), hexSize(0), extension, fc.array(trailer, { maxLength: 3 }))
      .map(([chunks, zero, ext, trailers]) => Buffer.concat([...chunks, bytes(`${zero}${ext}\r\n${trailers.join("")}\r\n`)]))
    const input = fc.tuple(body, fc.uint8Array({ maxLength: 20 }), fc.array(fc.nat(), { maxLength: 8 }), fc.boolean())

    fc.assert(fc.property(input, ([body, rest, cuts, useOffsets]) => {
      const whole = Buffer.concat([body, rest])
      const points = [...new Set([0, ...cuts.map((cut) => cut % (whole.length + 1)), whole.length])].sort((a, b) => a - b)
      const scanner = makeBodyScanner(chunked)
      let total = 0
      for (let i = 0; i + 1 < points.length; i++) {
        const [start, end] = [points[i]!, points[i + 1]!]
        // Either a slice of its own, or the bytes so far with an offset, as a caller's buffer is.
        const result = useOffsets ? scanner.feed(whole.subarray(0, end), start) : scanner.feed(whole.subarray(start, end))
        const { consumed, done } = Either.getOrThrow(result)
        total += consumed
        if (done) {
          expect(total).toBe(body.length)
          return
        }
        expect(consumed).toBe(end - start)
      }
      expect.unreachable("the body never ended")
    }), { numRuns: 500 })
  })

  it("property: any bytes give a result or a 400, never a throw", () => {
    const piece = fc.oneof(
      fc.uint8Array({ maxLength: 20 }),
      fc.constantFrom("\r\n", "\r", "\n", "0", "5", "f", ";", "0\r\n\r\n", "X: y").map(bytes)
    )
    fc.assert(fc.property(fc.array(piece, { maxLength: 20 }), (pieces) => {
      const scanner = makeBodyScanner(chunked)
      for (const piece of pieces) {
        const result = scanner.feed(piece)
        if (Either.isLeft(result)) {
          expect(result.left).toBeInstanceOf(HttpRequestError)
          expect(result.left.status).toBe(400)
          return
        }
        expect(result.right.consumed).toBeLessThanOrEqual(piece.length)
        if (result.right.done) return
        expect(result.right.consumed).toBe(piece.length)
      }
    }), { numRuns: 500 })
  })
})

describe("rewriteHead", () => {
  const options = { target: "/x?y", forwardedFor: "203.0.113.7", proto: "https" }

  it("keeps every other header in order and case, and appends the X-Forwarded ones", () => {
    const head = parsed(
      "POST /t/app/x?y HTTP/1.1\r\nHost: relay.example\r\nx-forwarded-for: 10.0.0.1\r\nAccept: */*\r\n" +
        "X-Forwarded-Proto: gopher\r\nx-FORWARDED-host: evil\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n" +
        "content-length: 2\r\n\r\n"
    )
    expect(text(rewriteHead(head, options))).toBe(
      "POST /x?y HTTP/1.1\r\nHost: relay.example\r\nAccept: */*\r\ncontent-length: 2\r\n" +
        "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 10.0.0.3, 203.0.113.7\r\n" +
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: relay.example\r\n\r\n"
    )
  })

  it("without Host or earlier X-Forwarded-For, adds only what it knows", () => {
    const head = parsed("GET /t/app/x?y HTTP/1.0\nUser-Agent: t\nX-Forwarded-For:\n\n")
    expect(text(rewriteHead(head, { ...options, proto: "http" }))).toBe(
      "GET /x?y HTTP/1.0\r\nUser-Agent: t\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\n\r\n"
    )
  })

  it("gives back header bytes as they came, obs-text included", () => {
    const head = parsed("GET / HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9\t!\r\n\r\n")
    expect(text(rewriteHead(head, options))).toContain("\r\nX-Latin: caf\xe9\t!\r\n")
  })
})

describe("routeOf", () => {
  /** A request for `target` with this Host; the server's domain is spore.example unless `domain` says (null: none). */
  const route = (target: string, host: string | undefined, domain: string | null = "spore.example", headers = "") =>
    routeOf(parsed(`GET ${target} HTTP/1.1\r\n${host === undefined ? "" : `Host: ${host}\r\n`}${headers}\r\n`), domain ?? undefined)
  const tunnel = (name: string, target: string, prefix?: string) => ({ _tag: "Tunnel", name, target, prefix })
  const front = { _tag: "Front" }
  const redirect = (status: number, location: string) => ({ _tag: "Redirect", status, location })

  it("routes NAME.<domain> to the tunnel NAME with the target unchanged", () => {
    expect(route("/t/other/x?q", "app.spore.example")).toEqual(tunnel("app", "/t/other/x?q"))
    expect(route("/", "App.SPORE.Example:8443")).toEqual(tunnel("app", "/"))
    expect(route("/", "app.spore.example.")).toEqual(tunnel("app", "/"))
    expect(route("/", "app.spore.example.:80")).toEqual(tunnel("app", "/"))
    expect(route("/", "app.spore.example", "Spore.Example.")).toEqual(tunnel("app", "/"))
  })

  it("routes nothing by host near misses", () => {
    for (const host of [
      "spore.example", "a.b.spore.example", "app.other.example", "appspore.example", ".spore.example",
      "app.spore.example.evil", "[::1]:80", "[app.spore.example]", "app.spore.example:80:80", "app.spore.example:x", ""
    ]) {
      expect(route("/", host), host).toEqual(front)
    }
    expect(route("/", "app.spore.example", null)).toEqual(front)
    expect(route("/", undefined)).toEqual(front)
  })

  it("routes /t/NAME/ with the prefix stripped and kept apart; /t/NAME is redirected to /t/NAME/", () => {
    expect(route("/t/app/x?y", "relay.example")).toEqual(tunnel("app", "/x?y", "/t/app"))
    expect(route("/t/app/", undefined)).toEqual(tunnel("app", "/", "/t/app"))
    expect(route("/t/App/x", undefined, null)).toEqual(tunnel("app", "/x", "/t/App"))
    // The host form wins where both apply; a host that misses falls back to the path.
    expect(route("/t/app/x", "a.b.spore.example")).toEqual(tunnel("app", "/x", "/t/app"))
    // Without the slash, the page's relative links would leave the prefix.
    expect(route("/t/app", undefined)).toEqual(redirect(308, "/t/app/"))
    expect(route("/t/app?q=1", undefined)).toEqual(redirect(308, "/t/app/?q=1"))
  })

  it("sends a link that leaves a path-routed page back inside its tunnel, by its Referer on the same host", () => {
    const from = (referer: string) => `Referer: ${referer}\r\n`
    expect(route("/style.css", "relay.example", null, from("http://relay.example/t/app/page"))).toEqual(redirect(307, "/t/app/style.css"))
    expect(route("/api?x=1", "relay.example:8080", null, from("https://relay.example:8080/t/app/"))).toEqual(redirect(307, "/t/app/api?x=1"))
    expect(route("/", "relay.example", null, from("http://relay.example/t/app/x"))).toEqual(redirect(307, "/t/app/"))
    // The front's own paths stay the front's; other hosts, other paths and bad referers change nothing.
    for (const target of ["/v1/tunnels", "/ws/control?tunnel_id=x", "/health", "/v1"]) {
      expect(route(target, "relay.example", null, from("http://relay.example/t/app/")), target).toEqual(front)
    }
    for (const referer of ["http://evil.example/t/app/", "http://relay.example/t/app", "http://relay.example/other/", "not a url"]) {
      expect(route("/style.css", "relay.example", null, from(referer)), referer).toEqual(front)
    }
    expect(route("/style.css", "relay.example", null, from("http://relay.example/t/a/") + from("http://relay.example/t/b/"))).toEqual(front)
  })

  it("routes nothing by path near misses", () => {
    for (const target of ["/tx/app", "/t/", "/t//x", "/t", "/t?x", "/T/app", "//t/app", "t/app", "*", "http://h/t/app", "/a/t/app"]) {
      expect(route(target, "relay.example"), target).toEqual(front)
    }
  })
})

describe("errorResponse", () => {
  it("is a complete HTTP/1.1 response with an escaped page", () => {
    const response = text(errorResponse(404, "No <tunnel>", "Nothing is called \"a&b\" here"))
    const [head, body] = response.split("\r\n\r\n") as [string, string]
    expect(head.split("\r\n")).toEqual([
      "HTTP/1.1 404 Not Found",
      "Content-Type: text/html; charset=utf-8",
      `Content-Length: ${body.length}`,
      "Connection: close",
      "Cache-Control: no-store"
    ])
    expect(body).toContain("<title>404 No &#60;tunnel&#62;</title>")
    expect(body).toContain("<h1>No &#60;tunnel&#62;</h1><p>Nothing is called &#34;a&#38;b&#34; here</p>")
    expect(body).toContain("spore")
  })

  it("counts Content-Length in bytes and knows the reason phrases", () => {
    const response = Buffer.from(errorResponse(502, "Tunnel down", "é"))
    const end = response.indexOf("\r\n\r\n") + 4
    const length = Number(/Content-Length: (\d+)/.exec(response.subarray(0, end).toString())![1])
    expect(response.length - end).toBe(length)
    const reasons: Record<number, string> = {
      400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
      431: "Request Header Fields Too Large", 501: "Not Implemented", 502: "Bad Gateway",
      504: "Gateway Timeout", 505: "HTTP Version Not Supported"
    }
    for (const [status, reason] of Object.entries(reasons)) {
      expect(text(errorResponse(Number(status), "t", "d")).split("\r\n")[0]).toBe(`HTTP/1.1 ${status} ${reason}`)
    }
  })
})
