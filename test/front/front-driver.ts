/**
 * Drives the server's HTTP front in one process, for the relay's tests: the front started on
 * 127.0.0.1 port 0, its API, WebSockets to it and a hand-written `spore http` client. Every
 * helper that connects may take `from`, a source address of 127.0.0.0/8, to act as another peer.
 */
import { expect } from "@effect/vitest"
import type * as net from "node:net"
import { Deferred, Effect, Either, Option } from "effect"
import { WebSocket } from "ws"
import { parseApiKeys } from "../../src/front/api-keys.js"
import { callApi, type TunnelView } from "../support/http.js"
import { dial, LOOPBACK, readAll, startRunningServer, type TestServerOptions } from "../support/net.js"

export const KEY = "key-one-0123456789abcdef"
export const OTHER_KEY = "key-two-0123456789abcdef"
export const keys = Either.getOrThrow(parseApiKeys(`# test keys\n${KEY}\n\n${OTHER_KEY}\n`))
/** Lets real I/O (accepts, upgrades, frames in flight) happen before the clock moves. */
export const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 150)))

/** A server with the HTTP front (more settings in `options`); returns the front's port. */
export const startFront = (domain?: string, options: Omit<TestServerOptions, "http"> & { http?: Omit<NonNullable<TestServerOptions["http"]>, "keys"> } = {}) =>
  Effect.map(
    startRunningServer({ ...options, http: { keys, domain: Option.fromNullable(domain), ...options.http } }),
    (server) => Option.getOrThrow(server.http).port
  )

/** The API with KEY unless told otherwise (`key: null`: no key at all); an empty body reads as {}. */
export const api = (port: number, method: string, path: string, options: { key?: string | null; body?: unknown } = {}) =>
  Effect.map(
    callApi(port, method, path, { key: options.key === undefined ? KEY : options.key ?? undefined, body: options.body }),
    (answer) => ({ ...answer, body: answer.body ?? {} })
  )

/** Creates tunnel `name` with KEY, which must succeed; the tunnel as the API describes it. */
export const create = (port: number, name: string) =>
  Effect.map(api(port, "POST", "/v1/tunnels", { body: { name } }), (answer) => {
    expect(answer.status).toBe(201)
    return answer.body as TunnelView
  })

/** KEY's tunnels as the status page sees them. */
export const status = (port: number) => Effect.map(api(port, "GET", "/v1/status"), (answer) => answer.body.tunnels ?? [])

/** Sends raw bytes as a visitor (from `from`) and reads everything until the server closes. */
export const visit = (port: number, request: string | Buffer, from?: string) =>
  Effect.scoped(Effect.gen(function*() {
    const socket = yield* dial(port, LOOPBACK, from)
    socket.write(request)
    return (yield* readAll(socket)).toString("latin1")
  }))

/** A WebSocket to the front, open or refused with a status; it collects what it receives from the start. */
export const openWs = (port: number, path: string, options: { key?: string; autoPong?: boolean; from?: string } = {}) =>
  Effect.acquireRelease(
    Effect.async<WebSocket & { received: Received }, Error>((resume) => {
      const ws = new WebSocket(`ws://${LOOPBACK}:${port}${path}`, {
        headers: { Authorization: `Bearer ${options.key ?? KEY}` },
        autoPong: options.autoPong ?? true,
        ...(options.from === undefined ? {} : { localAddress: options.from })
      })
      const withReceived = Object.assign(ws, { received: collect(ws) })
      ws.once("open", () => resume(Effect.succeed(withReceived)))
      ws.once("unexpected-response", (_, response) => {
        ws.on("error", () => {})
        ws.terminate()
        resume(Effect.fail(new Error(`refused ${response.statusCode}`)))
      })
      ws.once("error", (error) => resume(Effect.fail(error)))
    }),
    (ws) => Effect.sync(() => ws.terminate())
  )

/** A hand-written `spore http` client: its control connection and the visitor ids it hears of. */
export const fakeClient = (port: number, tunnelId: string, options: { autoPong?: boolean } = {}) =>
  Effect.gen(function*() {
    const ws = yield* openWs(port, `/ws/control?tunnel_id=${tunnelId}`, options)
    let seen = 0
    // Each visitor announced, in order: `{"type":"connection","id":...}` text messages.
    const nextVisitor = Effect.gen(function*() {
      while (ws.received.texts.length <= seen) yield* Effect.promise(() => new Promise((resolve) => ws.once("message", resolve)))
      return JSON.parse(ws.received.texts[seen++]!).id as string
    })
    return { ws, nextVisitor }
  })

export interface Received {
  /** The binary messages so far, as text. */
  readonly text: () => string
  /** Text messages (control messages). */
  readonly texts: Array<string>
  /** Resolves on the far side's EOF (an empty binary message). */
  readonly ended: Effect.Effect<void>
  /** Resolves with the close code once the WebSocket has closed. */
  readonly closed: Effect.Effect<number>
}

/** Collects what a WebSocket receives; an empty binary message is the far side's EOF. */
export const collect = (ws: WebSocket): Received => {
  const chunks: Array<Buffer> = []
  const texts: Array<string> = []
  const ended = Effect.runSync(Deferred.make<void>())
  const closed = Effect.runSync(Deferred.make<number>())
  ws.once("close", (code: number) => Effect.runSync(Deferred.succeed(closed, code)))
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (!isBinary) texts.push(data.toString("utf8"))
    else if (data.length === 0) Effect.runSync(Deferred.succeed(ended, undefined))
    else chunks.push(data)
  })
  return { text: () => Buffer.concat(chunks).toString("latin1"), texts, ended: Deferred.await(ended), closed: Deferred.await(closed) }
}

/** Waits until `socket` has received `text` (or closed). */
export const readUntil = (socket: net.Socket, text: string) =>
  Effect.async<string>((resume) => {
    let seen = ""
    const onData = (chunk: Buffer) => {
      seen += chunk.toString("latin1")
      if (seen.includes(text)) {
        socket.off("data", onData)
        resume(Effect.succeed(seen))
      }
    }
    socket.on("data", onData)
    socket.once("close", () => resume(Effect.succeed(seen)))
  })


/** The status code of an HTTP answer in raw bytes (0 if there is none). */
export const statusOf = (answer: string) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1] ?? 0)

/**
 * One raw API call `GET /v1/tunnels` from `from`: with `key` as its Bearer token, `forwardedFor` as
 * its X-Forwarded-For and `prefix` (a PROXY header) before it, if given. Its status code.
 */
export const apiFrom = (
  port: number,
  from: string,
  options: { key?: string; forwardedFor?: string; prefix?: Buffer; authorization?: string } = {}
) =>
  Effect.map(
    visit(
      port,
      Buffer.concat([
        options.prefix ?? Buffer.alloc(0),
        Buffer.from(
          "GET /v1/tunnels HTTP/1.1\r\nHost: front\r\n" +
            (options.key === undefined ? "" : `Authorization: Bearer ${options.key}\r\n`) +
            (options.authorization === undefined ? "" : `Authorization: ${options.authorization}\r\n`) +
            (options.forwardedFor === undefined ? "" : `X-Forwarded-For: ${options.forwardedFor}\r\n`) +
            "\r\n",
          "latin1"
        )
      ]),
      from
    ),
    statusOf
  )

/** A raw WebSocket upgrade request for `path` with `key`: the whole answer, for refusals. */
export const upgradeFrom = (port: number, from: string, path: string, key: string) =>
  visit(
    port,
    `GET ${path} HTTP/1.1\r\nHost: front\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${key}\r\n\r\n`,
    from
  )
