/**
 * HTTP/1.x request heads as the server's HTTP front sees them, pure: no I/O.
 *
 * The front does not hand visitors to Node's HTTP parser. It reads a request head itself, decides
 * which tunnel it goes to, rewrites the head, and copies the body bytes through unchanged. It must
 * still know exactly where each body ends, so that the next keep-alive or pipelined head is read
 * from the right byte: if the front and the service behind it disagreed on that, a visitor could
 * smuggle a second request past the routing. So the rules here are strict where framing is
 * concerned and reject anything two parsers could read differently (RFC 9112 §6, §11.2).
 * Responses are never parsed.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { Either } from "effect"
import { HttpRequestError } from "../errors.js"

/** The longest request head accepted, blank line included; longer is answered 431. */
export const MAX_HEAD_BYTES = 64 * 1024

export const LF = 0x0a
export const CR = 0x0d

export const fail = (status: HttpRequestError["status"], reason: string) =>
  Either.left(new HttpRequestError({ status, reason }))

/**
 * The index just past the blank line that ends a head, or -1 if it has not arrived yet.
 *
 * The blank line is a LF followed by LF or CR LF, so `\r\n\r\n`, `\n\n`, `\r\n\n` and `\n\r\n`
 * all end a head. A single empty line before the request line (which RFC 9112 §2.2 says to
 * ignore) is not mistaken for the end, because the blank line must follow a LF.
 *
 * `from` lets a caller that appends bytes as they arrive resume instead of rescanning: pass the
 * buffer's length at the previous call that returned -1. The scan starts 2 bytes earlier, so a
 * terminator split between two arrivals is still found.
 */
export const findHeadEnd = (buffer: Uint8Array, from = 0): number => {
  let index = buffer.indexOf(LF, Math.max(0, from - 2))
  while (index !== -1) {
    if (buffer[index + 1] === LF) return index + 2
    if (buffer[index + 1] === CR && buffer[index + 2] === LF) return index + 3
    index = buffer.indexOf(LF, index + 1)
  }
  return -1
}

/** How a request's body is delimited (RFC 9112 §6.3): nothing, a byte count, or chunks. */
export type BodyFraming =
  | { readonly _tag: "None" }
  | { readonly _tag: "Length"; readonly length: number }
  | { readonly _tag: "Chunked" }

export interface RequestHead {
  readonly method: string
  readonly target: string
  readonly version: "HTTP/1.0" | "HTTP/1.1"
  /** Every header line in order: the name as sent, the value without surrounding spaces. */
  readonly headers: ReadonlyArray<readonly [name: string, value: string]>
  /** The Host header's value as sent, if there was one. */
  readonly host: string | undefined
  readonly body: BodyFraming
  /** An `Upgrade` header with `upgrade` among the `Connection` tokens (WebSocket, h2c, ...). */
  readonly upgrade: boolean
}

// RFC 9110 §5.6.2: tchar. A header name or method with anything else (a space before the colon,
// above all) is read differently by different parsers, so it is rejected, not repaired.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// The target may hold any visible byte; bytes from 0x80 up pass (raw UTF-8 paths exist in the
// wild and cannot shift framing or routing), controls, space and DEL do not.
const REQUEST_LINE = /^([^ ]+) ([^\x00-\x20\x7f]+) (HTTP\/\d\.\d)$/
// A value may hold HT and bytes from 0x20 up except DEL (obs-text included); no CR, LF or NUL.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/

/** `name: value` lists, comma-separated and trimmed (`Connection`, `Content-Length`). */
const listItems = (values: ReadonlyArray<string>) => values.flatMap((value) => value.split(",").map((item) => item.trim()))

/**
 * Parses a request head: the bytes up to and including the blank line (anything after it is not
 * looked at). Header values are latin1 strings, one char per byte, so `rewriteHead` gives back
 * exactly the bytes that came in.
 */
export const parseHead = (head: Uint8Array): Either.Either<RequestHead, HttpRequestError> => {
  if (head.length > MAX_HEAD_BYTES) return fail(431, `request head is longer than ${MAX_HEAD_BYTES} bytes`)
  const end = findHeadEnd(head)
  if (end === -1) return fail(400, "request head does not end with a blank line")
  const lines = Buffer.from(head.buffer, head.byteOffset, end).toString("latin1").split("\n")
    .map((line) => line.endsWith("\r") ? line.slice(0, -1) : line)
  // The split leaves the blank line and the empty text after its LF; one empty line may come first.
  lines.splice(-2)
  if (lines[0] === "") lines.shift()

  const requestLine = REQUEST_LINE.exec(lines[0] ?? "")
  if (requestLine === null) return fail(400, "malformed request line")
  const [, method, target, version] = requestLine as unknown as [string, string, string, string]
  if (!TOKEN.test(method)) return fail(400, "malformed request method")
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") return fail(505, `${version} is not supported`)

  const headers: Array<readonly [string, string]> = []
  for (const line of lines.slice(1)) {
    // Line folding (obs-fold) is how a header hides inside another one for some parsers.
    if (line.startsWith(" ") || line.startsWith("\t")) return fail(400, "folded header line")
    const colon = line.indexOf(":")
    if (colon === -1) return fail(400, "header line without a colon")
    const name = line.slice(0, colon)
    if (!TOKEN.test(name)) {
      return fail(400, /[ \t]$/.test(name) ? "whitespace before a header's colon" : "malformed header name")
    }
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "")
    if (CONTROL.test(value)) return fail(400, `control character in the ${name} header`)
    headers.push([name, value])
  }

  const valuesOf = (wanted: string) =>
    headers.filter(([name]) => name.toLowerCase() === wanted).map(([, value]) => value)
  const hosts = valuesOf("host")
  if (hosts.length > 1) return fail(400, "more than one Host header")

  const body = framingOf(version, valuesOf("transfer-encoding"), valuesOf("content-length"))
  if (Either.isLeft(body)) return Either.left(body.left)
  return Either.right({
    method,
    target,
    version,
    headers,
    host: hosts[0],
    body: body.right,
    upgrade: valuesOf("upgrade").length > 0 &&
      listItems(valuesOf("connection")).some((token) => token.toLowerCase() === "upgrade")
  })
}

/** RFC 9112 §6.3, minus every leniency: only `chunked` alone, lengths that all agree. */
const framingOf = (
  version: RequestHead["version"],
  transferEncodings: ReadonlyArray<string>,
  contentLengths: ReadonlyArray<string>
): Either.Either<BodyFraming, HttpRequestError> => {
  if (transferEncodings.length > 0) {
    if (contentLengths.length > 0) return fail(400, "both Transfer-Encoding and Content-Length")
    // An HTTP/1.0 peer may not know chunked, so such a request's framing is not to be trusted.
    if (version === "HTTP/1.0") return fail(400, "Transfer-Encoding in an HTTP/1.0 request")
    if (transferEncodings.length > 1 || transferEncodings[0]!.toLowerCase() !== "chunked") {
      return fail(501, `unsupported Transfer-Encoding: ${transferEncodings.join(", ")}`)
    }
    return Either.right({ _tag: "Chunked" })
  }
  if (contentLengths.length === 0) return Either.right({ _tag: "None" })
  const lengths = listItems(contentLengths)
  if (!lengths.every((length) => /^\d+$/.test(length))) return fail(400, "malformed Content-Length")
  const length = Number(lengths[0])
  if (length > Number.MAX_SAFE_INTEGER) return fail(400, "Content-Length is too large")
  if (lengths.some((other) => Number(other) !== length)) return fail(400, "Content-Lengths that differ")
  return Either.right({ _tag: "Length", length })
}

/**
 * The head as the local service gets it: the new target, every header line as it came (names in
 * their case, in order) except the X-Forwarded-* ones a visitor could forge, then those three (and
 * X-Forwarded-Prefix for a path-routed request) as
 * the relay vouches for them. X-Forwarded-For keeps the chain a visitor's proxies built and
 * appends the address the relay saw (`forwardedFor`); when the relay has read the chain itself
 * (from a trusted proxy, client-address.ts), `before` replaces it: the entries before the client.
 * With `connectionClose` (one request per channel, NullBore's framing) the hop-by-hop headers
 * go and `Connection: close` asks the app to close after its response; an upgrade keeps them.
 */
export const rewriteHead = (
  head: RequestHead,
  options: {
    readonly target: string
    readonly forwardedFor: string
    readonly before?: ReadonlyArray<string> | undefined
    readonly proto: string
    readonly connectionClose?: boolean
    /** The visitor's Authorization was the front's (a tunnel's basic auth): the app never sees it. */
    readonly dropAuthorization?: boolean
    /** The path prefix the visitor reached the app under (`/t/NAME`), sent as X-Forwarded-Prefix. */
    readonly prefix?: string | undefined
    /** The Host to send instead of the visitor's (X-Forwarded-Host still says the visitor's). */
    readonly host?: string | undefined
  }
): Uint8Array => {
  const forwardedFor: Array<string> = [...(options.before ?? [])]
  const closing = options.connectionClose === true && !head.upgrade
  let text = `${head.method} ${options.target} ${head.version}\r\n`
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase()
    if (closing && (lower === "connection" || lower === "keep-alive" || lower === "proxy-connection")) continue
    if (options.dropAuthorization === true && lower === "authorization") continue
    if (options.host !== undefined && lower === "host") {
      text += `${name}: ${options.host}\r\n`
      continue
    }
    if (lower === "x-forwarded-for") {
      if (value !== "" && options.before === undefined) forwardedFor.push(value)
    } else if (lower !== "x-forwarded-proto" && lower !== "x-forwarded-host" && lower !== "x-forwarded-prefix") {
      text += `${name}: ${value}\r\n`
    }
  }
  if (options.host !== undefined && head.host === undefined) text += `Host: ${options.host}\r\n`
  if (closing) text += "Connection: close\r\n"
  forwardedFor.push(options.forwardedFor)
  text += `X-Forwarded-For: ${forwardedFor.join(", ")}\r\n`
  text += `X-Forwarded-Proto: ${options.proto}\r\n`
  if (head.host !== undefined) text += `X-Forwarded-Host: ${head.host}\r\n`
  if (options.prefix !== undefined) text += `X-Forwarded-Prefix: ${options.prefix}\r\n`
  return Buffer.from(`${text}\r\n`, "latin1")
}

/** Whether the head's `Authorization: Basic ...` gives this user and password (compared in constant time). */
export const givesBasicAuth = (head: RequestHead, expected: { readonly user: string; readonly password: string }): boolean => {
  const values = head.headers.filter(([name]) => name.toLowerCase() === "authorization").map(([, value]) => value)
  const given = values.length === 1 ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(values[0]!)?.[1] : undefined
  const want = createHash("sha256").update(`${expected.user}:${expected.password}`, "utf8").digest()
  const got = createHash("sha256").update(given === undefined ? "" : Buffer.from(given, "base64")).digest()
  return given !== undefined && timingSafeEqual(want, got)
}

/**
 * Which tunnel a request is for, a redirect, or the front itself (its API and pages). A tunnel
 * reached by path has its `prefix` (`/t/NAME`, as the visitor wrote it), which the service never
 * sees in the target but is told of (X-Forwarded-Prefix), and which its redirects and cookies
 * are kept inside (response-head.ts).
 */
export type Route =
  | { readonly _tag: "Tunnel"; readonly name: string; readonly target: string; readonly prefix: string | undefined }
  | { readonly _tag: "Redirect"; readonly status: 307 | 308; readonly location: string }
  | { readonly _tag: "Front" }

const withoutTrailingDot = (name: string) => name.endsWith(".") ? name.slice(0, -1) : name

/** The front's own paths, which a link from inside a tunnel's page never takes over. */
const FRONT_PATHS = /^\/(?:v1|ws)(?:[/?]|$)|^\/health(?:\?|$)/

/**
 * The tunnel a request's Referer says it came from: a page at `/t/NAME/...` on the same host.
 * An app served by path links to `/style.css` or fetches `/api` as if it owned the host.
 */
const refererTunnel = (head: RequestHead): string | undefined => {
  const referers = head.headers.filter(([name]) => name.toLowerCase() === "referer")
  if (referers.length !== 1 || head.host === undefined) return undefined
  let referer: URL
  try {
    referer = new URL(referers[0]![1])
  } catch {
    return undefined
  }
  if (referer.host.toLowerCase() !== head.host.toLowerCase()) return undefined
  return /^\/t\/([^/?#]+)\//.exec(referer.pathname)?.[1]
}

/**
 * A request names its tunnel by host, `NAME.<domain>` (one label, when the server has a domain),
 * or else by path, `/t/NAME/...`, which is stripped from the target the service sees. Names come
 * back lowercased but unchecked: the caller validates them.
 *
 * Path routing mends what it breaks where it can: `/t/NAME` is redirected (308) to `/t/NAME/`, so
 * the page's relative links resolve inside the prefix, and a request for one of the host's other
 * paths whose Referer is a page under `/t/NAME/` (an absolute link, `/style.css`) is redirected
 * (307, method and body kept) to `/t/NAME/style.css`. The front's own paths (/v1/, /ws/, /health)
 * stay the front's. Host routing needs none of this.
 */
export const routeOf = (head: RequestHead, domain: string | undefined): Route => {
  if (domain !== undefined && head.host !== undefined) {
    // `[v6]:port` hosts and anything with a second colon are never tunnel names.
    const hostname = /^([^:[\]]*)(?::\d*)?$/.exec(head.host)?.[1]
    const suffix = `.${withoutTrailingDot(domain.toLowerCase())}`
    const host = hostname === undefined ? "" : withoutTrailingDot(hostname.toLowerCase())
    const label = host.endsWith(suffix) ? host.slice(0, -suffix.length) : ""
    if (label !== "" && !label.includes(".")) return { _tag: "Tunnel", name: label, target: head.target, prefix: undefined }
  }
  const path = /^\/t\/([^/?]+)(.*)$/s.exec(head.target)
  if (path !== null) {
    const [, name, rest] = path as unknown as [string, string, string]
    if (!rest.startsWith("/")) return { _tag: "Redirect", status: 308, location: `/t/${name}/${rest}` }
    return { _tag: "Tunnel", name: name.toLowerCase(), target: rest, prefix: `/t/${name}` }
  }
  const from = head.target.startsWith("/") && !FRONT_PATHS.test(head.target) ? refererTunnel(head) : undefined
  if (from !== undefined) return { _tag: "Redirect", status: 307, location: `/t/${from}${head.target}` }
  return { _tag: "Front" }
}
