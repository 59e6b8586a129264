/**
 * One visitor connection to a named HTTP tunnel, request by request.
 *
 * Each request's head is rewritten (the `/t/NAME` prefix stripped, X-Forwarded-* added) and
 * sent down the tunnel's data channel with the body after it, untouched; the local app's
 * responses come back raw (they are never parsed). Keep-alive requests to the same tunnel reuse
 * the channel. A request for another tunnel (a browser pools connections per host, and `/t/a/`
 * and `/t/b/` share one) first lets the current channel finish: its local connection is sent
 * EOF, so the app completes its response and closes; then a new channel opens.
 *
 * Each request's client (client-address.ts: the peer, or what a trusted proxy says of it; a
 * proxy may send several clients' requests down one connection) must pass the visitor filter.
 *
 * Every request is logged in its tunnel's request log (request-log.ts) for the inspector: the
 * head and the first KiB of the body as they go down, the response's status, size and first KiB
 * as its framing is read on the way back (response-framing.ts), which changes no byte.
 *
 * A tunnel whose client frames channels NullBore's way (close-ends, ws-channel.ts) gets one request
 * per channel, its head saying `Connection: close`; the channel's close ends the response, and
 * the visitor's connection with it.
 *
 * A request that cannot be served gets an error page and the connection is closed: 403 a client
 * the filter refuses, 404 unknown tunnel, 502 offline tunnel or unreachable local service, 503 too
 * many waiting visitors, 504 no data channel within the pending timeout.
 */
import type * as net from "node:net"
import { Deferred, Effect, Either, Option, Scope } from "effect"
import type { WebSocket } from "ws"
import { type HttpRequestError, VisitorRefused } from "../errors.js"
import type { AuthLockout } from "../limits/auth-lockout.js"
import { type ChannelSender, type ChannelState, type HeldWebSocket, onClosed, openChannel, untilWebSocketClosed } from "../net/ws-channel.js"
import { errorResponse } from "./error-page.js"
import type { RequestClient } from "./client-address.js"
import { givesBasicAuth, rewriteHead, routeOf, type RequestHead } from "./http-request.js"
import { keepInsidePrefix, type ResponseTransform } from "./response-head.js"
import { makeResponseTracker } from "./response-framing.js"
import { FrontMetrics } from "./front-metrics.js"
import type { LoggedRequest } from "./request-log.js"
import { type HttpTunnel, HttpTunnels } from "./http-tunnels.js"
import { validateName } from "./names.js"
import type { RequestReader } from "./request-reader.js"
import { WaitingVisitors } from "../visitors/waiting-visitors.js"

/** Longest wait for a request head, the first one or the next on a keep-alive connection. */
export const REQUEST_HEAD_TIMEOUT_SECONDS = 30

export interface VisitorLimits {
  /** Visitors of one tunnel allowed to wait for a data channel. */
  readonly maxPending: number
  /** Visitors of one tunnel allowed at once, waiting or connected. */
  readonly maxConnsPerTunnel: number
}

/** A data channel carrying this visitor's requests to one tunnel. */
interface OpenChannel {
  readonly tunnel: HttpTunnel
  readonly ws: WebSocket
  readonly state: ChannelState
  /** Set while the relay moves the visitor to another tunnel: the far EOF must not end it. */
  switching: boolean
  /**
   * Set for a channel of one request (path-routed, or a NullBore client): the app's EOF ends the
   * channel, our EOF following it rather than going first (Node's server drops a response whose
   * request was followed by a FIN).
   */
  endsWithApp: boolean
  /** Logs `entry` as the next request down this channel, its response read as it comes back. */
  readonly record: (entry: LoggedRequest, method: string) => void
}

/** `sender`, with every byte sent also shown to `see`. */
const tapped = (sender: ChannelSender, see: (bytes: Uint8Array) => void): ChannelSender => ({
  ...sender,
  send: (bytes) => {
    see(bytes)
    return sender.send(bytes)
  }
})

/** Ends the response side with `bytes` and waits (briefly) for the visitor to close. */
export const respondAndClose = (socket: net.Socket, bytes: Uint8Array): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (socket.destroyed) return resume(Effect.void)
    // Reading on until the visitor closes: closing with unread bytes would reset the
    // connection, and the visitor could lose the page.
    socket.on("data", () => {})
    socket.resume()
    socket.once("close", () => resume(Effect.void))
    socket.end(bytes)
  }).pipe(Effect.timeout("2 seconds"), Effect.ignore)

export const requestRefusal = (error: HttpRequestError) =>
  errorResponse(error.status, "Bad request", error.reason)

export const serveVisitor = (
  socket: net.Socket,
  reader: RequestReader,
  first: { head: RequestHead; raw: Buffer },
  options: {
    readonly domain: string | undefined
    readonly limits: VisitorLimits
    /** Who sent a request on this connection. */
    readonly clientOf: (head: RequestHead) => RequestClient
    /** Whether a client at this address may visit tunnels (`--allow-visitor`, `--deny-visitor`). */
    readonly allows: (address: string) => boolean
    /** How the visitor reached the front (X-Forwarded-Proto): "http" or "https". */
    readonly proto: "http" | "https"
    /** Wrong user and password pairs for tunnels' basic auth, by address. */
    readonly basicAuthLockout: AuthLockout
    /**
     * In a cluster: hands the connection, from this request on (its raw head put back), to the
     * node holding `name`. "unknown": no node does; "unavailable": it cannot be reached now.
     */
    readonly elsewhere?: (name: string, raw: Buffer, client: RequestClient) => Effect.Effect<"forwarded" | "unknown" | "unavailable">
  }
) =>
  Effect.suspend(() => {
    let current: OpenChannel | undefined
    return Effect.gen(function*() {
      const tunnels = yield* HttpTunnels
      const waiting = yield* WaitingVisitors

      const metrics = yield* FrontMetrics
      // The fiber's clock (tests run it on theirs), read in socket callbacks.
      const clock = yield* Effect.clock
      const now = () => clock.unsafeCurrentTimeMillis()

      const openFor = (tunnel: HttpTunnel, keepInside: ResponseTransform | undefined) =>
        Effect.gen(function*() {
          const control = tunnel.control
          if (control === undefined) {
            return yield* Effect.fail(new VisitorRefused({ reason: "offline", tunnel: tunnel.name }))
          }
          const { active, waiting: queued } = tunnel.counts
          if (queued >= options.limits.maxPending || queued + active >= options.limits.maxConnsPerTunnel) {
            return yield* Effect.fail(new VisitorRefused({ reason: "busy", tunnel: tunnel.name }))
          }
          const channel = yield* Deferred.make<HeldWebSocket, "expired" | "closed">()
          const id = yield* waiting.hold({ channel }, tunnel.counts).pipe(Effect.provideService(Scope.Scope, control.scope))
          control.ws.send(JSON.stringify({ type: "connection", id }))
          const held = yield* Deferred.await(channel).pipe(
            // Leaving before the channel came: a late claim finds the Deferred done and closes it.
            Effect.onInterrupt(() => Deferred.fail(channel, "closed")),
            Effect.mapError((reason) =>
              reason === "expired"
                ? new VisitorRefused({ reason: "timeout", tunnel: tunnel.name })
                : new VisitorRefused({ reason: "lost-client", tunnel: tunnel.name })
            )
          )
          const { ws } = held
          // The requests sent down this channel whose responses are still to come, oldest first.
          const awaiting: Array<LoggedRequest> = []
          const tracker = makeResponseTracker({
            head: (status, text) => {
              const entry = awaiting[0]
              if (entry === undefined) return
              const at = now()
              tunnel.log.responseHead(at, entry, status, text)
              metrics.responded(tunnel.name, status, (at - entry.at) / 1000)
            },
            body: (bytes) => awaiting[0] !== undefined && tunnel.log.responseBody(awaiting[0], bytes),
            end: (size) => {
              const entry = awaiting.shift()
              if (entry !== undefined) tunnel.log.responseDone(now(), entry, size)
            }
          })
          const transform: ResponseTransform = {
            push: (chunk) => {
              tracker.push(chunk)
              return keepInside === undefined ? chunk : keepInside.push(chunk)
            },
            flush: () => keepInside?.flush() ?? Buffer.alloc(0)
          }
          const open: OpenChannel = {
            record: (entry, method) => {
              awaiting.push(entry)
              tracker.expect(method)
            },
            tunnel,
            ws,
            switching: false,
            endsWithApp: false,
            state: openChannel(held, socket, () => {
              if (!open.switching && !socket.destroyed) socket.end()
              if (open.endsWithApp) open.state.sender.end()
            }, control.framing, transform)
          }
          onClosed(ws, () => tracker.close())
          tunnel.stats.connections++
          // A visitor that resets its connection ends its channel at once.
          socket.once("close", (hadError) => {
            if (hadError) ws.terminate()
          })
          onClosed(ws, () => {
            tunnel.counts.active--
            tunnel.stats.bytesIn += open.state.sender.sent()
            tunnel.stats.bytesOut += open.state.received()
            const halfClose = open.state.framing === "half-close"
            if (open.switching || (halfClose && open.state.bothEnded())) return
            // Closed with nothing sent back: the client could not reach its local service.
            if (open.state.received() === 0) {
              if (!socket.destroyed) {
                socket.end(errorResponse(502, "Local service unreachable", `The tunnel ${tunnel.name} could not reach its local service.`))
              }
            } else if (halfClose) socket.destroy()
            // NullBore's client ends a response by closing: what came is all of it.
            else socket.end()
          })
          return open
        })

      /** Sends EOF down the channel and waits until it has closed (the response is complete). */
      const finish = (open: OpenChannel, switching: boolean) =>
        Effect.suspend(() => {
          open.switching = switching
          open.state.sender.end()
          return untilWebSocketClosed(open.ws)
        })

      let request = first
      while (true) {
        const client = options.clientOf(request.head)
        if (!options.allows(client.address)) {
          if (current !== undefined) yield* finish(current, true)
          current = undefined
          yield* Effect.logDebug(`visitor refused by the visitor filter`).pipe(Effect.annotateLogs({ visitor: client.address }))
          return yield* respondAndClose(socket, errorResponse(403, "Forbidden", "Visitors from your address are not served here."))
        }
        const route = routeOf(request.head, options.domain)
        if (route._tag === "Redirect") {
          if (current !== undefined) yield* finish(current, true)
          current = undefined
          return yield* respondAndClose(socket, errorResponse(route.status, "Moved", `This page is at ${route.location}.`, [`Location: ${route.location}`]))
        }
        // The front hands over only requests for tunnels; a later one for the front itself (the
        // API on a reused connection) is refused like an unknown tunnel.
        const name = route._tag === "Tunnel" ? Either.getOrUndefined(validateName(route.name)) : undefined
        const tunnel = name === undefined ? Option.none<HttpTunnel>() : tunnels.byName(name)
        if (current !== undefined && (Option.isNone(tunnel) || tunnel.value !== current.tunnel)) {
          yield* finish(current, true)
          current = undefined
        }
        if (Option.isNone(tunnel) && name !== undefined && options.elsewhere !== undefined) {
          const outcome = yield* options.elsewhere(name, request.raw, client)
          if (outcome === "forwarded") return
          if (outcome === "unavailable") {
            // The holder is down or moving (its client reconnecting through another node): soon back.
            return yield* respondAndClose(
              socket,
              errorResponse(503, "Tunnel unavailable", `The tunnel ${name} is moving between servers: try again in a few seconds.`, ["Retry-After: 5"])
            )
          }
        }
        if (Option.isNone(tunnel) || route._tag !== "Tunnel") {
          return yield* respondAndClose(
            socket,
            errorResponse(404, "No such tunnel", route._tag === "Tunnel" ? `There is no tunnel named ${route.name}.` : "Nothing is served here.")
          )
        }
        const basicAuth = tunnel.value.meta.basicAuth
        if (Option.isSome(basicAuth)) {
          // Locked out: the same 429 whatever is presented, so a right guess is not told apart.
          const locked = yield* options.basicAuthLockout.isLocked(client.address)
          const refusal = locked ? "locked" : givesBasicAuth(request.head, basicAuth.value) ? undefined : "wrong"
          if (refusal !== undefined) {
            if (current !== undefined) yield* finish(current, true)
            current = undefined
            // Only a credential presented and wrong is a guess; the browser's first, bare try is not.
            const presented = request.head.headers.some(([name]) => name.toLowerCase() === "authorization")
            const nowLocked = refusal === "wrong" && presented && (yield* options.basicAuthLockout.recordFailure(client.address))
            yield* Effect.logDebug(`visitor of ${tunnel.value.name} without the tunnel's basic auth${nowLocked ? "; address locked out for a minute" : ""}`)
            return yield* respondAndClose(
              socket,
              refusal === "locked"
                ? errorResponse(429, "Too many wrong passwords", "Too many wrong passwords from your address: try again in a minute.", ["Retry-After: 60"])
                : errorResponse(401, "Unauthorized", `The tunnel ${tunnel.value.name} asks for a user and password.`, [
                  `WWW-Authenticate: Basic realm="${tunnel.value.name}", charset="UTF-8"`
                ])
            )
          }
        }
        yield* tunnels.touch(tunnel.value)
        // A path-routed response must be read to be kept inside its prefix: its channel is its own.
        const keepInside = route.prefix === undefined ? undefined : keepInsidePrefix(route.prefix, request.head.host)
        if (current !== undefined && keepInside !== undefined) {
          yield* finish(current, true)
          current = undefined
        }
        if (current === undefined) {
          const opened = yield* Effect.either(openFor(tunnel.value, keepInside))
          if (Either.isLeft(opened)) {
            const refused = opened.left
            return yield* respondAndClose(socket, errorResponse(refused.status, refused.title, refused.message))
          }
          current = opened.right
        }
        const channel = current
        const entry = tunnel.value.log.begin(now(), request.raw, request.head, client.address)
        channel.record(entry, request.head.method)
        const oneRequest = channel.state.framing === "close-ends" || route.prefix !== undefined
        channel.state.sender.send(rewriteHead(request.head, {
          target: route.target,
          forwardedFor: client.address,
          before: client.before,
          proto: options.proto,
          connectionClose: oneRequest,
          prefix: route.prefix,
          host: Option.getOrUndefined(tunnel.value.meta.hostHeader),
          dropAuthorization: Option.isSome(basicAuth)
        }))
        if (request.head.upgrade) {
          // From here on the connection belongs to whatever protocol the app switches to.
          tunnel.value.log.requestDone(entry, false)
          reader.pipeRest(channel.state.sender)
          return yield* untilWebSocketClosed(channel.ws)
        }
        const body = yield* Effect.either(reader.pipeBody(request.head, tapped(channel.state.sender, (bytes) => tunnel.value.log.requestBody(entry, bytes))))
        tunnel.value.log.requestDone(entry, Either.isRight(body) && body.right !== "visitor-ended")
        if (Either.isLeft(body)) {
          // Part of a malformed body has gone to the app already: nothing sound can follow.
          yield* Effect.logDebug(`visitor of ${channel.tunnel.name} sent a malformed body: ${body.left.reason}`)
          channel.ws.terminate()
          return socket.destroy()
        }
        if (body.right === "visitor-ended") return yield* finish(channel, false)
        if (oneRequest) {
          channel.endsWithApp = true
          // The app's EOF may have come already (it answered before the body was through).
          if (channel.state.farEnded()) channel.state.sender.end()
          return yield* untilWebSocketClosed(channel.ws)
        }
        const next = yield* Effect.either(reader.readHead.pipe(Effect.timeoutOption(`${REQUEST_HEAD_TIMEOUT_SECONDS} seconds`)))
        if (Either.isLeft(next)) {
          // The responses so far are let through first; the refusal comes after them.
          yield* finish(channel, true)
          return yield* respondAndClose(socket, requestRefusal(next.left))
        }
        // Closed, silent too long, or the app already ended the connection: the response may still
        // be streaming back, so the channel ends only once it is through.
        if (Option.isNone(next.right) || Option.isNone(next.right.value) || channel.state.farEnded()) {
          return yield* finish(channel, false)
        }
        request = next.right.value.value
      }
    }).pipe(
      // Whatever ends the visitor (the server closing, say) ends its channel too; after a normal
      // end the channel is closed already and this does nothing.
      Effect.ensuring(Effect.sync(() => current?.ws.terminate())),
      Effect.annotateLogs({ visitor: options.clientOf(first.head).address })
    )
  })
