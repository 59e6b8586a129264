/**
 * Drives the server's HTTP front in one process, for the relay's tests: the front started on
 * 127.0.0.1 port 0, its API, WebSockets to it and a hand-written `spore http` client. Every
 * helper that connects may take `from`, a source address of 127.0.0.0/8, to act as another peer.
 */
import { expect } from "@effect/vitest"
import * as net from "node:net"
import { Chunk, Clock, Deferred, Duration, Effect, Either, Logger, Option, TestClock } from "effect"
import { WebSocket } from "ws"
import { parseApiKeys } from "../../src/front/api-keys.js"
import { callApi, type TunnelView } from "../support/http.js"
import { eventually, letIoHappen } from "../support/io.js"
import { dial, LOOPBACK, readAll, startRunningServer, type TestServerOptions } from "../support/net.js"

export const KEY = "key-one-0123456789abcdef"
export const OTHER_KEY = "key-two-0123456789abcdef"
export const keys = Either.getOrThrow(parseApiKeys(`# test keys\n${KEY}\n\n${OTHER_KEY}\n`))
type FrontOptions = Omit<TestServerOptions, "http"> & { http?: Omit<NonNullable<TestServerOptions["http"]>, "keys"> }

/** A server with the HTTP front (more settings in `options`); returns the front's port. */
export const startFront = (domain?: string, options: FrontOptions = {}) =>
  Effect.map(
    startRunningServer({ ...options, http: { keys, domain: Option.fromNullable(domain), ...options.http } }),
    (server) => Option.getOrThrow(server.http).port
  )

// ---------------------------------------------------------------------------------------------
// Waiting for the server instead of for time: each wait re-checks what it waits for every few ms
// of real time, at most 1,000 times, and fails naming it. Moving the TestClock runs every fiber
// that is ready first; what these waits cover is real I/O still in flight.
// ---------------------------------------------------------------------------------------------

/** Re-checks `check` in real time until it holds; fails with "never happened: `what`" otherwise. */
export const until = (what: string, check: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let step = 0; step < 1000; step++) {
      if (yield* check) return
      yield* letIoHappen
    }
    return yield* Effect.dieMessage(`never happened: ${what}`)
  })

/** What a server said, line by line. */
export interface ServerLog {
  readonly lines: ReadonlyArray<string>
  /** Waits until a line containing `text` has been logged. */
  readonly logged: (text: string) => Effect.Effect<void>
}

/** `startFront`, keeping what the server logs (it is still printed as usual). */
export const startLoggedFront = (domain?: string, options: FrontOptions = {}) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ message }) => lines.push(Array.isArray(message) ? message.join(" ") : String(message)))
    const port = yield* startFront(domain, options).pipe(Effect.provide(Logger.add(logger)))
    const log: ServerLog = {
      lines,
      logged: (text) => eventually(() => lines.some((line) => line.includes(text)), `the server logs "${text}"`)
    }
    return { port, log }
  })

/**
 * How many timers fall due `after` from now on the TestClock. The TestClock keeps a cancelled
 * timer on its list until its time, so this counts those too.
 */
export const timersDue = (after: Duration.DurationInput) =>
  Effect.gen(function*() {
    const due = (yield* Clock.currentTimeMillis) + Duration.toMillis(after)
    return Chunk.filter(yield* TestClock.sleeps(), (at) => at === due).length
  })

/**
 * Waits until at least `count` timers fall due `after` from now on the TestClock: the server has
 * armed them, so moving the clock that far fires them. Cancelled timers count too (`timersDue`),
 * so counting is only sound while nothing else armed one for that time, or with those counted in.
 */
export const timersArmed = (after: Duration.DurationInput, what: string, count = 1) =>
  until(what, Effect.map(timersDue(after), (due) => due >= count))

/** The front's own ends of the connections it holds open from `peer` (Node's list of live handles). */
export const heldOpen = (port: number, peer: string = LOOPBACK): Array<net.Socket> =>
  (process as unknown as { _getActiveHandles: () => Array<unknown> })._getActiveHandles()
    .filter((handle): handle is net.Socket =>
      handle instanceof net.Socket && !handle.destroyed && handle.localPort === port && handle.remoteAddress === peer)

/**
 * Waits until the front has read everything `ws` has sent so far: a ping of ours comes back as
 * its pong, and the front reads a connection in order. False if the WebSocket closes instead.
 */
export const frontHasRead = (ws: WebSocket) =>
  Effect.async<boolean>((resume) => {
    if (ws.readyState !== WebSocket.OPEN) return resume(Effect.succeed(false))
    const onPong = () => {
      ws.off("close", onClose)
      resume(Effect.succeed(true))
    }
    const onClose = () => {
      ws.off("pong", onPong)
      resume(Effect.succeed(false))
    }
    ws.once("pong", onPong)
    ws.once("close", onClose)
    ws.ping()
  })

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

/**
 * A WebSocket to the front, open or refused with a status; it collects what it receives from the
 * start. It sends KEY (`key: null`: no Authorization at all) and asks for Spore's half-close
 * framing, as `spore http` does, unless `nullbore` (NullBore's client asks for nothing).
 */
export const openWs = (
  port: number,
  path: string,
  options: { key?: string | null; autoPong?: boolean; from?: string; nullbore?: boolean } = {}
) =>
  Effect.acquireRelease(
    Effect.async<WebSocket & { received: Received }, Error>((resume) => {
      const ws = new WebSocket(`ws://${LOOPBACK}:${port}${path}`, {
        headers: {
          ...(options.key === null ? {} : { Authorization: `Bearer ${options.key ?? KEY}` }),
          ...(options.nullbore === true ? {} : { "X-Spore-Framing": "half-close" })
        },
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
export const fakeClient = (port: number, tunnelId: string, options: { autoPong?: boolean; nullbore?: boolean } = {}) =>
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

/** Waits until a WebSocket's binary messages, as text, hold `text` (what a local app has been sent). */
export const hasReceived = (ws: { readonly received: Received }, text: string, what: string) =>
  eventually(() => ws.received.text().includes(text), what)

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
