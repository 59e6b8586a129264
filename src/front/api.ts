/**
 * The HTTP front's REST API and status page, on Node's own HTTP server. The API is NullBore's
 * (its clients work against it unchanged), with Spore's own fields beside NullBore's:
 *
 *   POST   /v1/tunnels        create-request.ts's body → 201 (created) or 200 (the owner's, reclaimed)
 *   GET    /v1/tunnels        the owner's tunnels, a bare array
 *   GET    /v1/tunnels/{id}   one of them; 404 if it is not the owner's
 *   DELETE /v1/tunnels/{id}   200 {"status":"closed"}; 404 if it is not the owner's
 *   GET    /v1/status         the owner's tunnels with live counts (what the status page polls)
 *   GET    /health            {"status":"ok",...}, no key needed (NullBore's clients check it)
 *   GET    /                  the status page (it holds no data; its script asks /v1/status)
 *
 * Every reply says `X-NullBore-API: 1`, the API version NullBore's clients check.
 * Every /v1 call needs `Authorization: Bearer KEY`. Wrong keys count towards the address's
 * lockout (the one the control port uses: 5 failures a minute refuse it for a minute); a request
 * that presents no key (no header, another scheme) is not a guess and does not count. The address
 * is the client's (client-address.ts: the peer, or what a trusted proxy says). Each key's calls
 * are rate limited (rate-limit.ts; the status page's poll is not counted). Errors are
 * JSON `{"error": "..."}`. Every response closes its connection, so each new request passes
 * through the front's router again (a browser may follow a link from here to `/t/NAME/`).
 */
import type * as http from "node:http"
import { Clock, Duration, Effect, Option } from "effect"
import { ApiRefusal } from "../errors.js"
import type { AuthLockout } from "../limits/auth-lockout.js"
import { type ApiKeys, type Owner, presentedKey } from "./api-keys.js"
import { dashboardPage } from "./dashboard.js"
import { type HttpTunnel, HttpTunnels } from "./http-tunnels.js"
import type { RateLimit } from "../limits/rate-limit.js"
import { formatGoDuration } from "../protocol/go-duration.js"
import { VERSION } from "../version.js"
import { checkCreateRequest } from "./create-request.js"
import type { LoggedRequest } from "./request-log.js"
import { TcpTunnelDirectory } from "../visitors/tunnel-directory.js"
import { Cluster, SOLO } from "../cluster/cluster.js"

/** The version of NullBore's API this front speaks, sent as X-NullBore-API. */
export const NULLBORE_API_VERSION = "1"

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
  /** Sends a request (head and body, as a visitor sent them) through the front again, as a visitor of its own. */
  readonly replay: (request: Buffer) => Effect.Effect<void>
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
export const publicUrl = (tunnel: { readonly name: string }, { host, proto }: Origin, domain: Option.Option<string>) => {
  if (Option.isNone(domain)) return `${proto}://${host}/t/${tunnel.name}/`
  const port = /:(\d+)$/.exec(host)?.[1]
  return `${proto}://${tunnel.name}.${domain.value}${port === undefined ? "" : `:${port}`}`
}

const isoTime = (ms: number | undefined) => ms === undefined ? undefined : new Date(ms).toISOString()

/**
 * A tunnel as the API shows it: NullBore's fields (snake_case; `public_url` whole, where
 * NullBore's is a path without a base domain) and Spore's (camelCase). A tunnel without a ttl
 * has no `ttl` or `expires_at`.
 */
export const describe = (tunnel: HttpTunnel, origin: Origin, domain: Option.Option<string>) => {
  const url = publicUrl(tunnel, origin, domain)
  return {
    id: tunnel.id,
    name: tunnel.name,
    url,
    online: tunnel.control !== undefined,
    client: tunnel.control?.peer,
    onlineSince: tunnel.control === undefined ? undefined : new Date(tunnel.control.since).toISOString(),
    connections: tunnel.counts.active,
    totalConnections: tunnel.stats.connections,
    bytesIn: tunnel.stats.bytesIn,
    bytesOut: tunnel.stats.bytesOut,
    slug: tunnel.name,
    client_id: tunnel.owner,
    local_port: Option.getOrElse(tunnel.meta.localPort, () => 0),
    ttl: Option.getOrUndefined(Option.map(tunnel.expiry.ttl, (ttl) => formatGoDuration(Duration.toMillis(ttl)))),
    idle_ttl: tunnel.expiry.idle || undefined,
    mode: "relay",
    created_at: tunnel.meta.createdAt.toISOString(),
    expires_at: isoTime(tunnel.expiry.expiresAt),
    last_active: isoTime(tunnel.expiry.lastActive),
    bytes_in: tunnel.stats.bytesIn,
    bytes_out: tunnel.stats.bytesOut,
    requests: tunnel.stats.requests,
    device_name: Option.getOrUndefined(tunnel.meta.deviceName),
    source: Option.getOrUndefined(tunnel.meta.source),
    basic_auth: Option.isSome(tunnel.meta.basicAuth) || undefined,
    host_header: Option.getOrUndefined(tunnel.meta.hostHeader),
    public_url: url
  }
}

/** A tunnel as the status page shows it: live counts, and its traffic over the last 15 minutes. */
const describeLive = (tunnel: HttpTunnel, origin: Origin, domain: Option.Option<string>, now: number) => ({
  ...describe(tunnel, origin, domain),
  series: tunnel.log.series(now)
})

/**
 * The tunnels a listing shows: this node's (`local`, described by `show`) and, in a cluster, the
 * other nodes' from their records (as of their last renewal), each with the node that holds it.
 * Without Redis the others' are left out: a listing is not worth failing for.
 */
const listed = <A extends Record<string, unknown>>(
  local: ReadonlyArray<HttpTunnel>,
  show: (tunnel: HttpTunnel) => A,
  owner: Option.Option<Owner>,
  origin: Origin,
  domain: Option.Option<string>,
  live: boolean
) =>
  Effect.gen(function*() {
    const cluster = Option.getOrElse(yield* Effect.serviceOption(Cluster), () => SOLO)
    if (Option.isNone(cluster.self)) return local.map(show)
    const self = cluster.self.value
    const records = yield* Effect.orElseSucceed(cluster.all, () => [])
    const remote = records
      .filter((record) => record.node !== self.id && (Option.isNone(owner) || record.owner === owner.value))
      .map((record) => {
        const url = publicUrl(record, origin, domain)
        // The plot's series only where the local tunnels have theirs (the status page's list).
        const { series, ...view } = record.view
        return { ...view, ...(live ? { series } : {}), id: record.id, name: record.name, slug: record.name, url, public_url: url, node: record.addr }
      })
    return [...local.map((tunnel) => ({ ...show(tunnel), node: self.addr })), ...remote]
      .sort((a, b) => String(a.name).localeCompare(String(b.name)))
  })

const bodyText = (pieces: ReadonlyArray<Buffer>) => Buffer.concat(pieces).toString("utf8")

/** A logged request in a list (NullBore's fields first, as its client's `requests` reads them). */
const requestSummary = (tunnel: HttpTunnel, entry: LoggedRequest) => ({
  id: String(entry.id),
  tunnel_id: tunnel.id,
  slug: tunnel.name,
  method: entry.method,
  path: entry.path,
  headers: entry.requestHead,
  body_size: entry.requestBytes - (entry.replayHead?.length ?? 0),
  body_snippet: bodyText(entry.requestBody),
  remote_ip: entry.visitor,
  created_at: new Date(entry.at).toISOString(),
  status: entry.status,
  duration_ms: entry.durationMs,
  bytes_in: entry.requestBytes,
  bytes_out: entry.responseBytes,
  replayable: entry.requestWhole
})

/** One logged request, both sides. */
const requestDetail = (tunnel: HttpTunnel, entry: LoggedRequest) => ({
  ...requestSummary(tunnel, entry),
  request_head: entry.requestHead,
  request_body: bodyText(entry.requestBody),
  response_head: entry.responseHead,
  response_body: bodyText(entry.responseBody)
})

/**
 * The inspector's calls on one tunnel (`rest` is the path after /v1/tunnels/ID):
 *
 *   GET  /requests                the last requests, newest first
 *   GET  /requests/N              one of them, both heads and the first KiB of both bodies
 *   POST /requests/N/replay       sends it again through the tunnel (202); 409 when its body
 *                                 was not kept whole (over 1 KiB) or it was an upgrade
 *
 * Shared by the owner's API and the operator's dashboard. Undefined when `rest` is none of them.
 */
const inspect = (context: ApiContext, tunnel: HttpTunnel, rest: string, method: string, response: http.ServerResponse) =>
  Effect.gen(function*() {
    if (rest === "/requests" && method === "GET") return send(response, 200, tunnel.log.entries().map((entry) => requestSummary(tunnel, entry)))
    const one = /^\/requests\/(\d+)(\/replay)?$/.exec(rest)
    if (one === null) return undefined
    const entry = tunnel.log.byId(Number(one[1]))
    if (entry === undefined) return yield* new ApiRefusal({ reason: "no-such-request" })
    if (one[2] === undefined && method === "GET") return send(response, 200, requestDetail(tunnel, entry))
    if (one[2] === undefined || method !== "POST") return undefined
    if (!entry.requestWhole || entry.replayHead === undefined) return yield* new ApiRefusal({ reason: "not-replayable" })
    yield* context.replay(Buffer.concat([entry.replayHead, ...entry.requestBody]))
    return send(response, 202, { replayed: true })
  })

const send = (response: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}) => {
  const text = body === undefined ? "" : JSON.stringify(body)
  response.writeHead(status, {
    ...headers,
    ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
    "Connection": "close",
    "X-NullBore-API": NULLBORE_API_VERSION
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

/**
 * Who is calling: the key's owner, or a 401 (a 429 once the address is locked out). Shared with
 * the control WebSocket endpoint.
 *
 * Only a presented key that is wrong counts as a failure. A locked-out address gets the same 429
 * whatever it presents, so the lockout is no oracle for guesses.
 */
export const authenticate = (context: ApiContext, request: http.IncomingMessage) =>
  Effect.gen(function*() {
    const address = context.clientOf(request)
    const authorization = request.headers.authorization
    const owner = context.keys.ownerOf(authorization)
    if (yield* context.lockout.isLocked(address)) return yield* new ApiRefusal({ reason: "locked-out" })
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
        "Connection": "close",
        "X-NullBore-API": NULLBORE_API_VERSION
      })
      return response.end(method === "HEAD" ? undefined : page)
    }
    if (path === "/health" && (method === "GET" || method === "HEAD")) {
      return send(response, 200, { status: "ok", version: VERSION, api_version: NULLBORE_API_VERSION })
    }
    if (!path.startsWith("/v1/")) return yield* new ApiRefusal({ reason: "no-such-endpoint", detail: path })
    const owner = yield* authenticate(context, request)
    if (path === "/v1/status" && method === "GET") {
      const now = yield* Clock.currentTimeMillis
      const origin = originOf(request)
      const all = yield* listed(tunnels.list(Option.some(owner)), (tunnel) => describeLive(tunnel, origin, context.domain, now), Option.some(owner), origin, context.domain, true)
      return send(response, 200, { tunnels: all })
    }
    yield* limited(context, owner)
    if (path === "/v1/tunnels" && method === "POST") {
      const { name, options } = yield* Effect.flatMap(readJson(request), checkCreateRequest)
      const { created, tunnel } = yield* tunnels.create(owner, name, options)
      return send(response, created ? 201 : 200, describe(tunnel, originOf(request), context.domain))
    }
    if (path === "/v1/tunnels" && method === "GET") {
      const origin = originOf(request)
      return send(response, 200, yield* listed(tunnels.list(Option.some(owner)), (tunnel) => describe(tunnel, origin, context.domain), Option.some(owner), origin, context.domain, false))
    }
    const match = /^\/v1\/tunnels\/([^/]+)(\/.*)?$/.exec(path)
    if (match !== null) {
      const tunnel = tunnels.byId(decodeURIComponent(match[1]!))
      // Another owner's tunnel is as absent as a missing one: ids are not to be probed.
      if (Option.isNone(tunnel) || tunnel.value.owner !== owner) {
        return yield* new ApiRefusal({ reason: "no-such-tunnel" })
      }
      const rest = match[2]
      if (rest === undefined && method === "GET") return send(response, 200, describe(tunnel.value, originOf(request), context.domain))
      if (rest === undefined && method === "DELETE") {
        yield* tunnels.remove(tunnel.value)
        return send(response, 200, { status: "closed" })
      }
      if (rest !== undefined && (yield* inspect(context, tunnel.value, rest, method, response)) !== undefined) return
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
    const method = request.method ?? "GET"
    const inspected = /^\/v1\/tunnels\/([^/]+)(\/requests.*)$/.exec(path)
    if (inspected !== null) {
      const tunnel = tunnels.byId(decodeURIComponent(inspected[1]!))
      if (Option.isNone(tunnel)) {
        // In a cluster, another node's tunnel: its log is kept there, and shown on its dashboard.
        const cluster = Option.getOrElse(yield* Effect.serviceOption(Cluster), () => SOLO)
        const record = yield* Effect.orElseSucceed(cluster.byId(decodeURIComponent(inspected[1]!)), () => Option.none())
        if (Option.isSome(record)) {
          return send(response, 404, { error: `${record.value.name} is held by node ${record.value.addr}: its request log is on that node's dashboard` })
        }
        return yield* new ApiRefusal({ reason: "no-such-tunnel" })
      }
      if ((yield* inspect(context, tunnel.value, inspected[2]!, method, response)) !== undefined) return
      return yield* new ApiRefusal({ reason: "no-such-endpoint", detail: `${method} ${path}` })
    }
    if (method !== "GET") return send(response, 405, { error: "method not allowed" }, { Allow: "GET" })
    if (path === "/v1/status") {
      const now = yield* Clock.currentTimeMillis
      // The TCP tunnels too, here only: they have no owner, so no key's page may list them.
      const tcp = (yield* (yield* TcpTunnelDirectory).list(now)).map((tunnel) => ({ ...tunnel, openedAt: new Date(tunnel.openedAt).toISOString() }))
      const origin = front(request)
      const all = yield* listed(tunnels.list(Option.none()), (tunnel) => describeLive(tunnel, origin, context.domain, now), Option.none(), origin, context.domain, true)
      return send(response, 200, { tunnels: all, tcp })
    }
    if (path !== "/") return send(response, 404, { error: "not found" })
    const page = dashboardPage({ title: "spore tunnels (all)" })
    response.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Length": Buffer.byteLength(page), "Cache-Control": "no-store" })
    response.end(page)
  })
