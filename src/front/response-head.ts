/**
 * Keeping a path-routed app inside its prefix, as nginx's `proxy_redirect` and
 * `proxy_cookie_path` do: in the response head of a tunnel reached at `/t/NAME/`, a `Location`
 * on the visitor's host that leaves the prefix (`/about`, `http://HOST/about`) is moved inside it
 * (`/t/NAME/about`), and so is a `Set-Cookie` `Path`. Relative locations, other hosts, and paths
 * already inside the prefix (an app that honours X-Forwarded-Prefix) are left alone.
 *
 * Only heads are touched: the rewriter reads the response's first head (and the interim 1xx
 * heads before it; 101 ends it, the rest is another protocol), then passes every byte through.
 * It works because a path-routed request has its channel to itself (`Connection: close`, one
 * response per channel). A head over MAX_HEAD_BYTES, or one that is not HTTP, passes untouched.
 */
import { findHeadEnd, MAX_HEAD_BYTES } from "./http-request.js"

/** Bytes of a channel on their way to the visitor: what to write now, and what is left at the end. */
export interface ResponseTransform {
  readonly push: (chunk: Buffer) => Buffer
  readonly flush: () => Buffer
}

const inside = (path: string, prefix: string) =>
  path === prefix || path.startsWith(`${prefix}/`) || path.startsWith(`${prefix}?`)

/** A Location value kept inside `prefix`, for a visitor who asked `host`. */
export const rewriteLocation = (value: string, prefix: string, host: string | undefined): string => {
  if (value.startsWith("/") && !value.startsWith("//")) return inside(value, prefix) ? value : `${prefix}${value}`
  const absolute = /^(https?:\/\/)([^/?#]+)(.*)$/i.exec(value)
  if (absolute === null || host === undefined || absolute[2]!.toLowerCase() !== host.toLowerCase()) return value
  const rest = absolute[3]!
  const path = rest.startsWith("/") ? rest : `/${rest}`
  return `${absolute[1]}${absolute[2]}${inside(path, prefix) ? path : `${prefix}${path}`}`
}

/** A Set-Cookie value whose Path attribute is kept inside `prefix` (no Path: the browser's default already is). */
export const rewriteCookiePath = (value: string, prefix: string): string =>
  value.split(";").map((part, index) => {
    const attribute = index === 0 ? null : /^(\s*path\s*=\s*)(.*?)(\s*)$/i.exec(part)
    if (attribute === null || !attribute[2]!.startsWith("/") || inside(attribute[2]!, prefix)) return part
    return `${attribute[1]}${prefix}${attribute[2]}${attribute[3]}`
  }).join(";")

/** One response head, rewritten; whether another head follows it (an interim 1xx other than 101). */
const rewriteHead = (head: Buffer, prefix: string, host: string | undefined): { bytes: Buffer; interim: boolean } => {
  const text = head.toString("latin1")
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)
  if (status === null) return { bytes: head, interim: false }
  const code = Number(status[1])
  const lines = text.split("\r\n").map((line, index) => {
    if (index === 0) return line
    const colon = line.indexOf(":")
    if (colon === -1) return line
    const name = line.slice(0, colon).toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === "location") return `${line.slice(0, colon)}: ${rewriteLocation(value, prefix, host)}`
    if (name === "set-cookie") return `${line.slice(0, colon)}: ${rewriteCookiePath(value, prefix)}`
    return line
  })
  return { bytes: Buffer.from(lines.join("\r\n"), "latin1"), interim: code >= 100 && code < 200 && code !== 101 }
}

/** The transform for a channel of a tunnel reached under `prefix` by a visitor who asked for `host`. */
export const keepInsidePrefix = (prefix: string, host: string | undefined): ResponseTransform => {
  let pending: Buffer = Buffer.alloc(0)
  let through = false
  return {
    push: (chunk) => {
      if (through) return chunk
      let data = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      const out: Array<Buffer> = []
      while (!through) {
        const end = findHeadEnd(data)
        if (end === -1) {
          if (data.length > MAX_HEAD_BYTES) through = true
          break
        }
        const { bytes, interim } = rewriteHead(data.subarray(0, end), prefix, host)
        out.push(bytes)
        data = data.subarray(end)
        if (!interim) through = true
      }
      if (through) {
        out.push(data)
        pending = Buffer.alloc(0)
      } else pending = data
      return out.length === 1 ? out[0]! : Buffer.concat(out)
    },
    flush: () => {
      const rest = pending
      pending = Buffer.alloc(0)
      through = true
      return rest
    }
  }
}
