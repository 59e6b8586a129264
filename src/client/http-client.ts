/**
 * `spore http`: a named HTTP tunnel to a local web app, over the server's HTTP front.
 *
 * It creates the tunnel over the API, holds the control WebSocket open, and for each announced
 * visitor connects to the local app and opens a data channel. When the control connection is
 * lost it comes back with the same backoff as `spore local`: first to the same tunnel id, and if
 * the server no longer knows it (a restart), by creating the tunnel again under the same name,
 * random names included. Visitors already connected keep flowing meanwhile.
 *
 * It speaks NullBore's API, so a NullBore server serves it too: the create request carries
 * `local_port` (and `ttl`, `auth_user`/`auth_pass` when asked), the answer's `slug` and
 * `public_url` stand for Spore's `name` and `url`, channels are framed as the server answers the
 * control connection's FRAMING_HEADER (ws-channel.ts), and a control connection the server closes
 * with 1000 means the tunnel's ttl is over: the client ends rather than come back.
 */
import * as http from "node:http"
import * as https from "node:https"
import type * as tls from "node:tls"
import { Clock, Duration, Effect, FiberSet, Option, Redacted, type Scope } from "effect"
import { WebSocket } from "ws"
import { ControlConnectionLost, HttpApiError, TlsVerifyError, TunnelExpired } from "../errors.js"
import { explainVerifyError, isCertificateRejection } from "../net/tls.js"
import { Drain, tracked } from "../net/drain.js"
import { connect } from "../net/socket.js"
import { parseUuid, type Uuid } from "../protocol/uuid.js"
import { ClientMetrics, type ClientMetricsShape, registerTunnel, tunnelLabel } from "./client-metrics.js"
import { isRetryable, reconnecting } from "./reconnect.js"
import { silenceWatchdog } from "./silence-watchdog.js"
import type { HttpClientStatus } from "./status.js"
import {
  EXPIRED_CLOSE_CODE,
  FRAMING_HEADER,
  type Framing,
  framingOf,
  type HeldWebSocket,
  holdMessages,
  MAX_MESSAGE_BYTES,
  MAX_SERVER_MESSAGE_BYTES,
  spliceChannel
} from "../net/ws-channel.js"

/**
 * The server pings every 30 s; this long without a ping (or any message) means the control
 * connection is dead even if TCP has not noticed.
 */
export const PING_TIMEOUT = Duration.seconds(75)

export interface HttpClientConfig {
  /** The server's HTTP front, `http://host:port` or `https://host`. */
  readonly server: URL
  /**
   * Every server given (`--to A,B,C`: the nodes of a cluster), `server` first: a failed attempt
   * to reach one moves on to the next.
   */
  readonly servers?: ReadonlyArray<URL>
  /**
   * How an https server is checked: the CAs to trust (the system's, or `--tls-ca`) and the name
   * its certificate must have (`--tls-servername`; default: the URL's host).
   */
  readonly tls: {
    readonly context: tls.SecureContext
    readonly servername: Option.Option<string>
  }
  readonly token: Redacted.Redacted<string>
  /** The name to ask for; the server picks one when none. */
  readonly name: Option.Option<string>
  /** The tunnel's lifetime, a Go duration ("1h"), if it is to end by itself. */
  readonly ttl: Option.Option<string>
  /** What visitors must give (HTTP basic auth), checked by the server's front. */
  readonly basicAuth: Option.Option<{ readonly user: string; readonly password: string }>
  /** The Host the app is to be sent instead of the visitor's (`--host-header`), set by Spore's front. */
  readonly hostHeader: Option.Option<string>
  readonly localHost: string
  readonly localPort: number
  readonly reconnect: boolean
  readonly maxReconnectDelay: Duration.Duration
  /** On shutdown, how long forwarded visitors may take to finish. */
  readonly drain: Duration.Duration
}

/** A tunnel as the API describes it. */
interface TunnelInfo {
  readonly id: string
  readonly name: string
  readonly url: string
}

const authorization = (config: HttpClientConfig) => ({ Authorization: `Bearer ${Redacted.value(config.token)}` })

const endpoint = (config: HttpClientConfig, path: string, websocket: boolean) => {
  const url = new URL(path, config.server)
  if (websocket) url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  return url
}

/** What https connections to the server are given: its CAs and the name to check. */
const tlsOptions = (config: HttpClientConfig) => ({
  secureContext: config.tls.context,
  ...Option.match(config.tls.servername, { onNone: () => ({}), onSome: (servername) => ({ servername }) })
})

/** A redirect to https (a front with --https-addr) is the user's URL to fix, said so. */
const redirectReason = (status: number, location: string | undefined) =>
  location?.startsWith("https:") === true
    ? `the server serves its API over https only: use --to https://${new URL(location).host}`
    : `the server answered ${status} (a redirect to ${location ?? "nowhere"})`

/**
 * A failed connection: a certificate that does not pass is a TlsVerifyError (fatal, as for
 * `spore local --tls`: no retry mends it), anything else an unreachable server (retried).
 */
const unreachable = (config: HttpClientConfig, error: unknown) => {
  const code = causeOf(error)
  return isCertificateRejection(code)
    ? new TlsVerifyError({ host: config.server.host, reason: explainVerifyError(code) })
    : new HttpApiError({ status: 0, reason: `cannot reach ${config.server.origin}: ${code}` })
}

/** One JSON request to the API, answered by its status and parsed body (node's http, for --tls-ca). */
const requestJson = (config: HttpClientConfig, method: string, path: string, body: unknown) =>
  Effect.async<{ status: number; body: Record<string, unknown> }, HttpApiError | TlsVerifyError>((resume) => {
    const url = endpoint(config, path, false)
    const text = JSON.stringify(body)
    const options = {
      method,
      headers: { ...authorization(config), "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) },
      ...(url.protocol === "https:" ? tlsOptions(config) : {})
    }
    const request = (url.protocol === "https:" ? https : http).request(url, options, (response) => {
      const status = response.statusCode ?? 0
      if (status >= 300 && status < 400) {
        response.resume()
        return resume(Effect.fail(new HttpApiError({ status, reason: redirectReason(status, response.headers.location) })))
      }
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.once("error", (error) => resume(Effect.fail(new HttpApiError({ status, reason: `the answer was cut: ${causeOf(error)}` }))))
      response.once("end", () => {
        try {
          resume(Effect.succeed({ status, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> }))
        } catch {
          resume(Effect.fail(new HttpApiError({ status, reason: `the server answered ${status} without JSON` })))
        }
      })
    })
    request.once("error", (error) => resume(Effect.fail(unreachable(config, error))))
    request.end(text)
    return Effect.sync(() => request.destroy())
  }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new HttpApiError({ status: 0, reason: "the API did not answer in 10 s" }) }))

/** The create request: NullBore's fields, which Spore's front takes too. */
const createBody = (config: HttpClientConfig, name: Option.Option<string>) => ({
  local_port: config.localPort,
  source: "spore",
  ...Option.match(name, { onNone: () => ({}), onSome: (name) => ({ name }) }),
  ...Option.match(config.ttl, { onNone: () => ({}), onSome: (ttl) => ({ ttl }) }),
  ...Option.match(config.basicAuth, { onNone: () => ({}), onSome: ({ password, user }) => ({ auth_user: user, auth_pass: password }) }),
  ...Option.match(config.hostHeader, { onNone: () => ({}), onSome: (host) => ({ host_header: host }) })
})

/** POST /v1/tunnels: a new tunnel, or the one of that name we already own. */
const createTunnel = (config: HttpClientConfig, name: Option.Option<string>) =>
  Effect.gen(function*() {
    const { body, status } = yield* requestJson(config, "POST", "/v1/tunnels", createBody(config, name))
    if (status < 200 || status >= 300) {
      return yield* new HttpApiError({ status, reason: String(body.error ?? `the server answered ${status}`) })
    }
    // Spore's fields, else NullBore's (whose public_url may be a path without the server's host).
    const tunnelName = typeof body.name === "string" ? body.name : body.slug
    const url = typeof body.url === "string" ? body.url : body.public_url
    if (typeof body.id !== "string" || typeof tunnelName !== "string") {
      return yield* new HttpApiError({ status: 502, reason: "the server's answer lacks the tunnel's id or name" })
    }
    // A server that does not know the field ignores it: better no tunnel than one that does not do what was asked.
    if (Option.isSome(config.hostHeader) && body.host_header !== config.hostHeader.value) {
      return yield* new HttpApiError({
        status: 400,
        reason: `the server's tunnel does not rewrite Host to ${config.hostHeader.value} (a NullBore server has no --host-header; ` +
          `or a tunnel of this name was created without it)`
      })
    }
    const whole = typeof url === "string" && /^https?:\/\//.test(url)
      ? url
      : new URL(typeof url === "string" && url !== "" ? url : `/t/${tunnelName}`, config.server).href
    return { id: body.id, name: tunnelName, url: whole } satisfies TunnelInfo
  })

/** The code of a failed connection (ECONNREFUSED, a TLS check's code such as CERT_HAS_EXPIRED), else its message. */
const causeOf = (error: unknown) => {
  const failure = error as { code?: string; message?: string; cause?: { code?: string; message?: string } }
  return failure.code ?? failure.cause?.code ?? failure.message ?? String(error)
}

/** A refused upgrade's reason: the `error` of its JSON body, else its status. */
const refusalReason = (status: number, body: string) => {
  try {
    const error = (JSON.parse(body) as { error?: unknown }).error
    if (typeof error === "string" && error !== "") return error
  } catch {
    // Not JSON: the status says it.
  }
  return `refused with ${status}`
}

/** The first 4 KiB of a response's body, once it has ended (or failed, or closed). */
const readBody = (response: NodeJS.ReadableStream) =>
  Effect.async<string>((resume) => {
    let body = ""
    let ended = false
    const done = () => {
      if (!ended) resume(Effect.succeed(body))
      ended = true
    }
    response.setEncoding("utf8")
    response.on("data", (chunk: string) => {
      if (body.length < 4096) body += chunk
    })
    response.once("end", done)
    response.once("error", done)
    response.once("close", done)
  })

/** An open WebSocket, and how the server said its channels are framed (only a control connection asks). */
interface OpenedWebSocket {
  readonly held: HeldWebSocket
  readonly framing: Framing
}

/**
 * Opens a WebSocket; an HTTP refusal fails with its status (404: the server forgot the tunnel).
 * The control connection carries the key and asks for half-close; a data channel carries nothing
 * (its id is its credential) and takes messages as large as a NullBore server sends.
 */
const openWebSocket = (url: URL, config: HttpClientConfig, kind: "control" | "data") =>
  Effect.async<OpenedWebSocket, HttpApiError | TlsVerifyError>((resume) => {
    const ws = new WebSocket(url, {
      headers: kind === "control" ? { ...authorization(config), [FRAMING_HEADER]: "half-close" } : {},
      maxPayload: kind === "control" ? MAX_MESSAGE_BYTES : MAX_SERVER_MESSAGE_BYTES,
      handshakeTimeout: 10_000,
      ...(url.protocol === "wss:" ? tlsOptions(config) : {})
    })
    // Held from the start: the server may send before the caller is ready to listen.
    const held = holdMessages(ws)
    let framing: Framing = "close-ends"
    ws.once("upgrade", (response) => {
      framing = framingOf(response.headers[FRAMING_HEADER.toLowerCase()])
    })
    ws.once("open", () => {
      ws.removeAllListeners("error")
      ws.on("error", () => {})
      resume(Effect.succeed({ held, framing }))
    })
    ws.once("unexpected-response", (_request, response) => {
      ws.on("error", () => {})
      // The refusal's JSON error is the server's own words for the status line; a body that
      // does not come within a second is done without.
      const status = response.statusCode ?? 0
      if (status >= 300 && status < 400) {
        ws.terminate()
        return resume(Effect.fail(new HttpApiError({ status, reason: redirectReason(status, response.headers.location) })))
      }
      resume(readBody(response).pipe(
        Effect.timeoutTo({ duration: "1 second", onSuccess: (body) => body, onTimeout: () => "" }),
        Effect.flatMap((body) => Effect.fail(new HttpApiError({ status, reason: refusalReason(status, body) }))),
        Effect.ensuring(Effect.sync(() => ws.terminate()))
      ))
    })
    ws.once("error", (error) => resume(Effect.fail(unreachable(config, error))))
    return Effect.sync(() => ws.terminate())
  })

/** What ended a data channel badly, in words (ws's own text for a message over maxPayload is terse). */
const channelFailure = (error: Error & { code?: string }) =>
  error.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH"
    ? `the server sent a message over ${MAX_SERVER_MESSAGE_BYTES / 1024 / 1024} MiB`
    : error.message

/** Serves one visitor: connects to the local app and opens its data channel, spliced until both are done. */
const serveVisitorChannel = (config: HttpClientConfig, id: Uuid, framing: Framing, metrics: ClientMetricsShape) =>
  Effect.gen(function*() {
    const labels = tunnelLabel(config)
    // Both at once: a new visitor waits for one round trip less.
    const [local, { held }] = yield* Effect.all([
      Effect.either(connect(config.localHost, config.localPort)),
      openWebSocket(endpoint(config, `/ws/data?id=${id}`, true), config, "data")
    ], { concurrency: 2 })
    if (local._tag === "Left") {
      // Closing the channel unused tells the server to show the visitor a 502.
      held.ws.close(4502, "local service unreachable")
      metrics.visitorsFailed.inc(labels)
      return yield* Effect.logWarning(`visitor ${id}: cannot reach ${config.localHost}:${config.localPort}: ${local.left.reason}`)
    }
    let failure: string | undefined
    held.ws.on("error", (error: Error) => (failure ??= channelFailure(error)))
    metrics.visitors.inc(labels)
    metrics.visitorsActive.inc(labels)
    metrics.traffic.track(labels, local.right, "bytesWritten")
    yield* tracked(spliceChannel(local.right, held, framing)).pipe(Effect.ensuring(Effect.sync(() => metrics.visitorsActive.dec(labels))))
    if (failure !== undefined) {
      metrics.visitorsFailed.inc(labels)
      yield* Effect.logWarning(`visitor ${id} dropped: ${failure}`)
    }
  }).pipe(
    Effect.catchAll((error) => Effect.zipRight(Effect.sync(() => metrics.visitorsFailed.inc(tunnelLabel(config))), Effect.logWarning(`visitor ${id} dropped: ${error.message}`))),
    Effect.scoped
  )

/** Serves the control connection until it is lost (a failure: the tunnel is offline). */
const serveControl = <R>(
  { takeMessages, ws }: HeldWebSocket,
  onVisitor: (id: Uuid) => Effect.Effect<unknown, never, R>
): Effect.Effect<never, ControlConnectionLost | TunnelExpired, R> =>
  Effect.gen(function*() {
    const run = yield* FiberSet.makeRuntime<R>()
    // When the server was last heard from (a ping or any message), on the Effect clock.
    let lastHeard = yield* Clock.currentTimeMillis
    const hear = () => run(Effect.map(Clock.currentTimeMillis, (now) => (lastHeard = Math.max(lastHeard, now))))
    ws.on("ping", hear)
    takeMessages((data, isBinary) => {
      hear()
      if (isBinary) return
      let message: { type?: unknown; id?: unknown }
      try {
        message = JSON.parse(data.toString("utf8"))
      } catch {
        return run(Effect.logWarning("the server sent a control message that is not JSON; ignored"))
      }
      const id = typeof message.id === "string" ? parseUuid(message.id) : undefined
      if (message.type === "connection" && id !== undefined) run(onVisitor(id))
    })
    const closed = Effect.async<never, ControlConnectionLost | TunnelExpired>((resume) => {
      if (ws.readyState === ws.CLOSED) return resume(Effect.fail(new ControlConnectionLost({ reason: "the server closed it" })))
      ws.once("close", (code: number, reason: Buffer) => {
        // 1000 is the server saying the tunnel's time is up (NullBore's meaning, and Spore's).
        if (code === EXPIRED_CLOSE_CODE) return resume(Effect.fail(new TunnelExpired({ reason: reason.toString() })))
        resume(Effect.fail(new ControlConnectionLost({ reason: `the server closed it (${code}${reason.length > 0 ? ` ${reason.toString()}` : ""})` })))
      })
    })
    const watchdog = silenceWatchdog(PING_TIMEOUT, () => lastHeard, () =>
      new ControlConnectionLost({ reason: `no ping from the server for ${Duration.format(PING_TIMEOUT)}` })).pipe(
        Effect.tapError(() => Effect.sync(() => ws.terminate()))
      )
    return yield* Effect.raceFirst(closed, watchdog)
  }).pipe(Effect.ensuring(Effect.sync(() => ws.terminate())), Effect.scoped)

/**
 * Runs the tunnel until it fails for good: a refused key, a name taken by someone else, or any
 * loss with `reconnect` off. Every other failure is retried with backoff.
 */
export const run = (
  config: HttpClientConfig,
  report: (status: HttpClientStatus) => Effect.Effect<void>
): Effect.Effect<never, HttpApiError | TlsVerifyError | ControlConnectionLost | TunnelExpired, Drain | ClientMetrics | Scope.Scope> =>
  Effect.gen(function*() {
    // Visitors belong to the client, not to one control connection.
    const visitors = yield* FiberSet.make<void, never>()
    // Runs before the visitors are interrupted as the scope closes (added after their set).
    const drain = yield* Drain
    yield* Effect.addFinalizer(() => drain.run(config.drain))
    // The server tried now; a failed attempt moves on to the next (one server: it stays).
    const servers = config.servers ?? [config.server]
    let at = 0
    const current = (): HttpClientConfig => ({ ...config, server: servers[at % servers.length]! })
    // Our tunnel, and the server it is on.
    let known = Option.none<TunnelInfo & { readonly at: number }>()
    let online = false

    const controlOf = (tunnel: TunnelInfo) =>
      openWebSocket(endpoint(current(), `/ws/control?tunnel_id=${tunnel.id}`, true), current(), "control")

    /** A new tunnel under the name we had, or else (a name of the server's choosing) under any. */
    const recreate = Effect.gen(function*() {
      if (Option.isNone(known)) return yield* createTunnel(current(), config.name)
      // The name we were given last time, random ones too: that is how a restart keeps URLs (and
      // how a client moved to another node of a cluster takes its name over there).
      const again = yield* Effect.either(createTunnel(current(), Option.some(known.value.name)))
      if (again._tag === "Right") return again.right
      // A NullBore server gives names only to accounts with a namespace (403): a name it picked
      // is then gone for good, and a new one is better than no tunnel.
      if (Option.isSome(config.name) || again.left._tag !== "HttpApiError" || again.left.status !== 403) return yield* again.left
      yield* Effect.logWarning(`the server no longer gives the name ${known.value.name} (${again.left.reason}); asking for a new one`)
      return yield* createTunnel(current(), Option.none())
    })

    /** The control connection of our tunnel: the one we know, else a new one under our name. */
    const establish = Effect.gen(function*() {
      // A tunnel id is its server's: on another server the name is asked for again.
      if (Option.isSome(known) && known.value.at === at) {
        const reopened = yield* Effect.either(controlOf(known.value))
        if (reopened._tag === "Right") return { tunnel: known.value, ...reopened.right }
        if (reopened.left._tag !== "HttpApiError" || reopened.left.status !== 404) return yield* reopened.left
      }
      const tunnel = yield* recreate
      known = Option.some({ ...tunnel, at })
      return { tunnel, ...(yield* controlOf(tunnel)) }
    }).pipe(
      Effect.tapError((error) =>
        Effect.sync(() => {
          if (servers.length > 1 && isRetryable(error)) at = (at + 1) % servers.length
        })
      )
    )

    const metrics = yield* ClientMetrics
    const labels = tunnelLabel(config)
    // Every series from the start, so a scrape shows the tunnel before anything happens.
    yield* registerTunnel({ localHost: config.localHost, localPort: config.localPort })

    const serve = ({ framing, held, tunnel }: OpenedWebSocket & { readonly tunnel: TunnelInfo }) =>
      Effect.gen(function*() {
        yield* report({ _tag: "Online", url: tunnel.url, name: tunnel.name, again: online })
        if (online) metrics.reconnects.inc(labels)
        online = true
        metrics.up.set(labels, 1)
        const lost = yield* Effect.flip(serveControl(held, (id) => FiberSet.run(visitors, serveVisitorChannel(current(), id, framing, metrics)))).pipe(
          Effect.ensuring(Effect.sync(() => {
            metrics.up.set(labels, 0)
            metrics.losses.inc(labels)
          }))
        )
        // An expired tunnel is the end, not a loss to come back from.
        return lost._tag === "TunnelExpired" ? yield* lost : lost
      })
    return yield* reconnecting(config, report, establish, serve)
  })
