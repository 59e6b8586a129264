/**
 * The WebSocket endpoints of the HTTP front:
 *
 *   GET /ws/control?tunnel_id=ID   the tunnel's client (Bearer key of its owner). The server sends
 *                                  `{"type":"connection","id":"<uuid>"}` per visitor and pings every
 *                                  PING_INTERVAL; a client that answers no ping for two intervals
 *                                  (60 s) is dropped. A client that sends `X-Spore-Framing:
 *                                  half-close` gets it back and Spore's framing on its data
 *                                  channels; any other (NullBore's) gets NullBore's (ws-channel.ts).
 *   GET /ws/data?id=UUID           a data channel for visitor UUID. No key: the id, a random UUID
 *                                  only the control connection learns, is the capability (NullBore's
 *                                  client dials it with no headers). Any credential sent is ignored,
 *                                  so a wrong one is no guess and counts towards no lockout. An id
 *                                  no visitor is waiting for is refused before the upgrade (404).
 *
 * Refusals happen before the upgrade, as plain HTTP responses with a JSON error.
 */
import type * as http from "node:http"
import { STATUS_CODES } from "node:http"
import type * as stream from "node:stream"
import { Deferred, Duration, Effect, Option } from "effect"
import type { WebSocketServer } from "ws"
import { FRAMING_HEADER, type Framing, framingOf, type HeldWebSocket, holdMessages } from "../net/ws-channel.js"
import { ApiRefusal } from "../errors.js"
import { parseUuid, type Uuid } from "../protocol/uuid.js"
import { type ApiContext, authenticate } from "./api.js"
import { type HttpTunnel, HttpTunnels } from "./http-tunnels.js"
import { WaitingVisitors } from "../visitors/waiting-visitors.js"

/** How often the server pings a control connection. */
export const PING_INTERVAL = Duration.seconds(30)

/** Unanswered pings after which a control connection is dropped (2 × 30 s = 60 s). */
export const MAX_UNANSWERED_PINGS = 2

/** Answers an upgrade request with an HTTP error instead, and closes. */
const refuse = (socket: stream.Duplex, error: ApiRefusal) =>
  Effect.sync(() => {
    const body = JSON.stringify({ error: error.message })
    socket.end(
      `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? "Error"}\r\n` +
        (error.status === 401 ? "WWW-Authenticate: Bearer\r\n" : "") +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    )
  })

/** Completes the WebSocket handshake; fails if the socket goes away first. */
const upgrade = (wss: WebSocketServer, request: http.IncomingMessage, socket: stream.Duplex, head: Buffer) =>
  Effect.async<HeldWebSocket, ApiRefusal>((resume) => {
    const onClose = () => resume(Effect.fail(new ApiRefusal({ reason: "closed-in-handshake" })))
    socket.once("close", onClose)
    wss.handleUpgrade(request, socket, head, (ws) => {
      socket.off("close", onClose)
      resume(Effect.succeed(holdMessages(ws)))
    })
  })

/**
 * Makes the server's 101 answer a control connection's FRAMING_HEADER with the same, so its
 * client knows it got half-close (a NullBore server would not answer it).
 */
export const answerFraming = (wss: WebSocketServer) =>
  wss.on("headers", (headers: Array<string>, request: http.IncomingMessage) => {
    if (framingOf(request.headers[FRAMING_HEADER.toLowerCase()]) === "half-close") headers.push(`${FRAMING_HEADER}: half-close`)
  })

/** A tunnel's control connection, from upgrade to close. */
const serveControlSocket = (tunnel: HttpTunnel, { ws }: HeldWebSocket, framing: Framing, peer: string) =>
  Effect.scoped(Effect.gen(function*() {
    const tunnels = yield* HttpTunnels
    yield* tunnels.attach(tunnel, ws, framing, peer)
    // The server's scope closing (shutdown) ends the connection too.
    yield* Effect.addFinalizer(() => Effect.sync(() => ws.terminate()))
    const log = (message: string) => Effect.logInfo(message).pipe(Effect.annotateLogs({ tunnel: tunnel.name }))
    yield* log(`http tunnel ${tunnel.name} online`)
    let unanswered = 0
    ws.on("pong", () => {
      unanswered = 0
    })
    // The client has nothing to say on this channel; what it sends is ignored.
    ws.on("message", () => {})
    ws.on("error", () => {})
    const pinger = Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(PING_INTERVAL)
        if (unanswered >= MAX_UNANSWERED_PINGS) {
          yield* log(`http tunnel ${tunnel.name}: no pong for ${Duration.format(Duration.times(PING_INTERVAL, unanswered))}; dropped`)
          return ws.terminate()
        }
        unanswered++
        ws.ping()
      }
    })
    yield* Effect.forkScoped(pinger)
    const code = yield* Effect.async<number>((resume) => {
      if (ws.readyState === ws.CLOSED) return resume(Effect.succeed(1006))
      ws.once("close", (closeCode: number) => resume(Effect.succeed(closeCode)))
    })
    yield* log(`http tunnel ${tunnel.name} offline (control connection closed, code ${code})`)
  }))

/** A data channel: hands the WebSocket to the visitor waiting for it. */
const serveData = (id: Uuid, held: HeldWebSocket) =>
  Effect.gen(function*() {
    const waiting = yield* WaitingVisitors
    // Waiting a moment ago, but it may have left (or been claimed) during the upgrade.
    const claimed = yield* waiting.claim(id)
    if (Option.isNone(claimed)) return held.ws.close(4404, "unknown or expired visitor id")
    const taken = yield* Deferred.succeed(claimed.value.visitor.channel, held)
    if (!taken) {
      // The visitor left while its channel was on the way.
      claimed.value.counts.active--
      held.ws.close(4410, "the visitor has gone")
    }
  })

/** Serves one upgrade request on the front. */
export const handleUpgrade = (
  context: ApiContext,
  wss: WebSocketServer,
  request: http.IncomingMessage,
  socket: stream.Duplex,
  head: Buffer
) =>
  Effect.gen(function*() {
    const tunnels = yield* HttpTunnels
    const url = new URL(request.url ?? "/", "http://front")
    if (url.pathname !== "/ws/control" && url.pathname !== "/ws/data") {
      return yield* new ApiRefusal({ reason: "no-such-endpoint", detail: url.pathname })
    }
    if (url.pathname === "/ws/data") {
      const waiting = yield* WaitingVisitors
      const id = parseUuid(url.searchParams.get("id") ?? "")
      if (id === undefined || !(yield* waiting.isWaiting(id))) return yield* new ApiRefusal({ reason: "no-such-visitor" })
      return yield* serveData(id, yield* upgrade(wss, request, socket, head))
    }
    const owner = yield* authenticate(context, request)
    const tunnel = tunnels.byId(url.searchParams.get("tunnel_id") ?? "")
    if (Option.isNone(tunnel) || tunnel.value.owner !== owner) {
      return yield* new ApiRefusal({ reason: "no-such-tunnel" })
    }
    const framing = framingOf(request.headers[FRAMING_HEADER.toLowerCase()])
    yield* serveControlSocket(tunnel.value, yield* upgrade(wss, request, socket, head), framing, context.clientOf(request))
  }).pipe(Effect.catchTag("ApiRefusal", (error) => refuse(socket, error)))
