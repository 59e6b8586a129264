/**
 * The HTTP front's REST API and status page, on Node's own HTTP server:
 *
 *   POST   /v1/tunnels        {"name"?: string} → 201 (created) or 200 (the owner's, reclaimed)
 *   GET    /v1/tunnels        the owner's tunnels
 *   DELETE /v1/tunnels/{id}   204; 404 if it is not the owner's
 *   GET    /v1/status         the owner's tunnels with live counts (what the status page polls)
 *   GET    /                  the status page (it holds no data; its script asks /v1/status)
 *
 * Every /v1 call needs `Authorization: Bearer KEY`. Wrong keys count towards the address's
 * lockout (the one the control port uses: 5 failures a minute refuse it for a minute); a request
 * that presents no key (no header, another scheme) is not a guess and does not count. The address
 * is the client's (client-address.ts: the peer, or what a trusted proxy says). Each key's calls
 * are rate limited (rate-limit.ts; the status page's poll is not counted). Errors are
 * JSON `{"error": "..."}`. Every response closes its connection, so each new request passes
 * through the front's router again (a browser may follow a link from here to `/t/NAME/`).
 */
import type * as http from "node:http"
import { Effect, Option } from "effect"
import { ApiRefusal } from "../errors.js"
import type { AuthLockout } from "../limits/auth-lockout.js"
import { type ApiKeys, type Owner, presentedKey } from "./api-keys.js"
import { dashboardPage } from "./dashboard.js"
import { type HttpTunnel, HttpTunnels } from "./http-tunnels.js"
import type { RateLimit } from "../limits/rate-limit.js"

/** The largest request body the API reads. */
export const MAX_API_BODY_BYTES = 4096

export interface ApiContext {
  readonly keys: ApiKeys
  readonly lockout: AuthLockout
  readonly rateLimit: RateLimit
  /** The client's address (the front knows what proxy, if any, the connection came through). */
  readonly clientOf: (request: http.IncomingMessage) => string
  /** The domain tunnels are served under (`NAME.DOMAIN`), if any. */
  readonly domain: Option.Option<string>
}

/** Where a tunnel's links point: the scheme and the host (with its port) of the front. */
export interface Origin {
  readonly proto: string
  readonly host: string
}

/** How a request reached the front: its links should go the same way. */
export const originOf = (request: http.IncomingMessage): Origin => ({
  // Over the front's own TLS (--https-addr), or behind a TLS terminator that says so.
  proto: (request.socket as { encrypted?: boolean }).encrypted === true || request.headers["x-forwarded-proto"] === "https" ? "https" : "http",
  host: request.headers.host ?? "localhost"
})

/** The public URL of a tunnel, as seen from `origin`. */
export const publicUrl = (tunnel: HttpTunnel, { host, proto }: Origin, domain: Option.Option<string>) => {
  if (Option.isNone(domain)) return `${proto}://${host}/t/${tunnel.name}/`
  const port = /:(\d+)$/.exec(host)?.[1]
  return `${proto}://${tunnel.name}.${domain.value}${port === undefined ? "" : `:${port}`}`
}

/** A tunnel as the API shows it. */
export const describe = (tunnel: HttpTunnel, origin: Origin, domain: Option.Option<string>) => ({
  id: tunnel.id,
  name: tunnel.name,
  url: publicUrl(tunnel, origin, domain),
  online: tunnel.control !== undefined,
  connections: tunnel.counts.active,
  totalConnections: tunnel.stats.connections,
  bytesIn: tunnel.stats.bytesIn,
  bytesOut: tunnel.stats.bytesOut
})

const send = (response: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}) => {
  const text = body === undefined ? "" : JSON.stringify(body)
  response.writeHead(status, {
    ...headers,
    ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
    "Connection": "close"
  })
  response.end(text)
}

const readJson = (request: http.IncomingMessage) =>
  Effect.async<unknown, ApiRefusal>((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    request.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_API_BODY_BYTES) {
        request.removeAllListeners("data")
        request.resume()
        resume(Effect.fail(new ApiRefusal({ reason: "body-too-large", limit: MAX_API_BODY_BYTES })))
      } else chunks.push(chunk)
    })
    request.on("end", () => {
      if (size > MAX_API_BODY_BYTES) return
      const text = Buffer.concat(chunks).toString("utf8").trim()
      if (text === "") return resume(Effect.succeed({}))
      try {
        resume(Effect.succeed(JSON.parse(text)))
      } catch {
        resume(Effect.fail(new ApiRefusal({ reason: "bad-body", detail: "the body is not JSON" })))
      }
    })
    request.on("error", () => resume(Effect.fail(new ApiRefusal({ reason: "bad-body", detail: "the request failed" }))))
  })

const requestedName = (body: unknown): Effect.Effect<Option.Option<string>, ApiRefusal> => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return Effect.fail(new ApiRefusal({ reason: "bad-body", detail: "the body must be a JSON object" }))
  }
  const unknown = Object.keys(body).filter((key) => key !== "name")
  if (unknown.length > 0) return Effect.fail(new ApiRefusal({ reason: "bad-body", detail: `unknown field ${unknown[0]}` }))
  const name = (body as { name?: unknown }).name
  if (name === undefined || name === null) return Effect.succeedNone
  if (typeof name !== "string") return Effect.fail(new ApiRefusal({ reason: "bad-body", detail: "name must be a string" }))
  return Effect.succeedSome(name)
}

/**
 * Who is calling: the key's owner, or a 401 (a 429 once the address is locked out). Shared with
 * the WebSocket endpoints.
 *
 * Only a presented key that is wrong counts as a failure. A locked-out address gets the same 429
 * whatever it presents, so the lockout is no oracle for guesses; `whileLockedOut` may let a right
 * key through all the same (a data channel for a visitor that is waiting, see channels.ts).
 */
export const authenticate = (
  context: ApiContext,
  request: http.IncomingMessage,
  options: { readonly whileLockedOut?: (owner: Owner) => Effect.Effect<boolean> } = {}
) =>
  Effect.gen(function*() {
    const address = context.clientOf(request)
    const authorization = request.headers.authorization
    const owner = context.keys.ownerOf(authorization)
    if (yield* context.lockout.isLocked(address)) {
      const { whileLockedOut } = options
      if (Option.isSome(owner) && whileLockedOut !== undefined && (yield* whileLockedOut(owner.value))) return owner.value
      return yield* new ApiRefusal({ reason: "locked-out" })
    }
    if (Option.isSome(owner)) return owner.value
    if (presentedKey(authorization) === undefined) {
      yield* Effect.logDebug("http api: refused a request without an API key").pipe(Effect.annotateLogs({ peer: address }))
      return yield* new ApiRefusal({ reason: "key-required" })
    }
    const locked = yield* context.lockout.recordFailure(address)
    yield* Effect.logWarning(`http api: refused a wrong API key${locked ? "; address locked out for a minute" : ""}`).pipe(
      Effect.annotateLogs({ peer: address })
    )
    return yield* new ApiRefusal({ reason: "invalid-key" })
  })

const limited = (context: ApiContext, owner: Owner) =>
  Effect.flatMap(context.rateLimit.take(owner), (wait) =>
    wait === 0 ? Effect.void : Effect.fail(new ApiRefusal({ reason: "rate-limited", retryAfterSeconds: wait })))

const route = (context: ApiContext, request: http.IncomingMessage, response: http.ServerResponse) =>
  Effect.gen(function*() {
    const tunnels = yield* HttpTunnels
    const path = new URL(request.url ?? "/", "http://front").pathname
    const method = request.method ?? "GET"
    if (path === "/" && (method === "GET" || method === "HEAD")) {
      const page = dashboardPage({ title: "spore tunnels" })
      response.writeHead(200, {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Length": Buffer.byteLength(page),
        "Cache-Control": "no-store",
        "Connection": "close"
      })
      return response.end(method === "HEAD" ? undefined : page)
    }
    if (!path.startsWith("/v1/")) return yield* new ApiRefusal({ reason: "no-such-endpoint", detail: path })
    const owner = yield* authenticate(context, request)
    if (path === "/v1/status" && method === "GET") {
      const listed = tunnels.list(Option.some(owner)).map((tunnel) => describe(tunnel, originOf(request), context.domain))
      return send(response, 200, { tunnels: listed })
    }
    yield* limited(context, owner)
    if (path === "/v1/tunnels" && method === "POST") {
      const name = yield* Effect.flatMap(readJson(request), requestedName)
      const { created, tunnel } = yield* tunnels.create(owner, name)
      return send(response, created ? 201 : 200, describe(tunnel, originOf(request), context.domain))
    }
    if (path === "/v1/tunnels" && method === "GET") {
      return send(response, 200, { tunnels: tunnels.list(Option.some(owner)).map((t) => describe(t, originOf(request), context.domain)) })
    }
    const match = /^\/v1\/tunnels\/([^/]+)$/.exec(path)
    if (match !== null && method === "DELETE") {
      const tunnel = tunnels.byId(decodeURIComponent(match[1]!))
      // Another owner's tunnel is as absent as a missing one: ids are not to be probed.
      if (Option.isNone(tunnel) || tunnel.value.owner !== owner) {
        return yield* new ApiRefusal({ reason: "no-such-tunnel" })
      }
      yield* tunnels.remove(tunnel.value)
      return send(response, 204, undefined)
    }
    return yield* new ApiRefusal({ reason: "no-such-endpoint", detail: `${method} ${path}` })
  })

/** Answers one API request; every failure becomes its JSON error. */
export const handleApiRequest = (context: ApiContext, request: http.IncomingMessage, response: http.ServerResponse) =>
  route(context, request, response).pipe(
    Effect.catchTag("ApiRefusal", (error) =>
      Effect.sync(() => {
        const headers: http.OutgoingHttpHeaders = {}
        if (error.status === 401) headers["WWW-Authenticate"] = "Bearer"
        if (error.status === 429) headers["Retry-After"] = String(error.retryAfterSeconds ?? 60)
        send(response, error.status, { error: error.message }, headers)
      }))
  )

/**
 * The operator's status page (`--dashboard HOST:PORT`): every tunnel, no key asked. Its links go
 * to the front (`front`), not to the dashboard's own address.
 */
export const handleDashboardRequest = (
  context: ApiContext,
  front: (request: http.IncomingMessage) => Origin,
  request: http.IncomingMessage,
  response: http.ServerResponse
) =>
  Effect.gen(function*() {
    const tunnels = yield* HttpTunnels
    const path = new URL(request.url ?? "/", "http://dashboard").pathname
    if (request.method !== "GET") return send(response, 405, { error: "method not allowed" }, { Allow: "GET" })
    if (path === "/v1/status") {
      return send(response, 200, { tunnels: tunnels.list(Option.none()).map((t) => describe(t, front(request), context.domain)) })
    }
    if (path !== "/") return send(response, 404, { error: "not found" })
    const page = dashboardPage({ title: "spore tunnels (all)" })
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Length": Buffer.byteLength(page), "Cache-Control": "no-store" })
    response.end(page)
  })
