/**
 * `spore http`'s client against a hand-written server front (node:http and ws on 127.0.0.1), with
 * the TestClock standing in for its ping timeout and backoff: what it asks for, when it gives up
 * on a silent server, how it comes back (same tunnel, or the same name anew) and what is fatal.
 */
import * as tls from "node:tls"
import { describe, expect, it } from "@effect/vitest"
import * as http from "node:http"
import type * as net from "node:net"
import { Duration, Effect, Fiber, Option, Redacted, TestClock } from "effect"
import { type WebSocket, WebSocketServer } from "ws"
import * as HttpClient from "../../src/client/http-client.js"
import type { HttpClientStatus } from "../../src/client/status.js"
import { clientLayer } from "../support/client.js"
import { LOOPBACK } from "../support/net.js"

const TOKEN = "client-key-0123456789"
const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 150)))

interface FakeFront {
  readonly port: number
  /** Every API call and WebSocket, in order: `POST name`, `control ID`. */
  readonly calls: Array<string>
  /** The open control connections. */
  readonly controls: Array<WebSocket>
  /** Whether the server knows tunnel ids (false: it "restarted" and answers 404). */
  knowsTunnels: boolean
  /** The status POST answers with. */
  createStatus: number
  /** When set, control upgrades are refused with a 429 and this error text. */
  controlRefusal: string | undefined
}

/** A front that creates tunnels and accepts control connections, and never pings. */
const fakeFront = Effect.acquireRelease(
  Effect.async<FakeFront & { server: http.Server }>((resume) => {
    let next = 0
    const front: FakeFront = { port: 0, calls: [], controls: [], knowsTunnels: true, createStatus: 201, controlRefusal: undefined }
    const server = http.createServer((request, response) => {
      let body = ""
      request.on("data", (chunk) => (body += chunk))
      request.on("end", () => {
        const name = JSON.parse(body || "{}").name ?? `random${next}`
        front.calls.push(`POST ${name} ${request.headers.authorization}`)
        if (front.createStatus !== 201) {
          response.writeHead(front.createStatus, { "Content-Type": "application/json" })
          return response.end(JSON.stringify({ error: `the name ${name} is taken` }))
        }
        front.knowsTunnels = true
        response.writeHead(201, { "Content-Type": "application/json" })
        response.end(JSON.stringify({ id: `id-${++next}`, name, url: `http://${name}.spore.test` }))
      })
    })
    const wss = new WebSocketServer({ noServer: true })
    server.on("upgrade", (request, socket, head) => {
      const id = new URL(request.url ?? "/", "http://x").searchParams.get("tunnel_id")
      front.calls.push(`control ${id}`)
      if (front.controlRefusal !== undefined) {
        const body = JSON.stringify({ error: front.controlRefusal })
        socket.end(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
        return
      }
      if (!front.knowsTunnels) {
        socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        return
      }
      wss.handleUpgrade(request, socket, head, (ws) => front.controls.push(ws))
    })
    server.listen(0, LOOPBACK, () => {
      resume(Effect.succeed(Object.assign(front, { port: (server.address() as net.AddressInfo).port, server })))
    })
  }),
  ({ controls, server }) =>
    Effect.sync(() => {
      for (const ws of controls) ws.terminate()
      server.closeAllConnections()
      server.close()
    })
)

const config = (port: number, name?: string): HttpClient.HttpClientConfig => ({
  server: new URL(`http://${LOOPBACK}:${port}`),
  tls: { context: tls.createSecureContext(), servername: Option.none() },
  token: Redacted.make(TOKEN),
  name: Option.fromNullable(name),
  ttl: Option.none(),
  basicAuth: Option.none(),
  hostHeader: Option.none(),
  localHost: LOOPBACK,
  localPort: 9,
  reconnect: true,
  maxReconnectDelay: Duration.seconds(4),
  drain: Duration.zero
})

/** Runs the client in the background, collecting its reports. */
const runClient = (clientConfig: HttpClient.HttpClientConfig) =>
  Effect.gen(function*() {
    const reports: Array<HttpClientStatus> = []
    const fiber = yield* Effect.forkScoped(
      HttpClient.run(clientConfig, (status) => Effect.sync(() => reports.push(status))).pipe(Effect.provide(clientLayer))
    )
    return { reports, fiber }
  })

/** Moves the clock a second at a time (backoff delays are jittered) until `condition` holds. */
const advanceUntil = (condition: () => boolean) =>
  Effect.gen(function*() {
    for (let seconds = 0; seconds < 30 && !condition(); seconds++) {
      yield* TestClock.adjust("1 second")
      yield* settle
    }
    expect(condition(), String(condition)).toBe(true)
  })

const waitUntil = (condition: () => boolean) =>
  Effect.gen(function*() {
    for (let tries = 0; tries < 100 && !condition(); tries++) yield* settle
    expect(condition(), String(condition)).toBe(true)
  })

describe("spore http's client", () => {
  it.scoped("drops a control connection that hears no ping for 75 s, and reconnects to the same tunnel", () =>
    Effect.gen(function*() {
      const front = yield* fakeFront
      const { reports } = yield* runClient(config(front.port, "app"))
      yield* waitUntil(() => front.controls.length === 1)
      expect(front.calls).toEqual([`POST app Bearer ${TOKEN}`, "control id-1"])
      yield* waitUntil(() => reports.length === 1)
      expect(reports[0]).toEqual({ _tag: "Online", url: "http://app.spore.test", name: "app", again: false })
      // Pings keep it: the watchdog only counts silence.
      yield* settle
      yield* TestClock.adjust("60 seconds")
      front.controls[0]!.ping()
      yield* settle
      // 120 s since it started, but only 60 s since the ping.
      yield* TestClock.adjust("60 seconds")
      yield* settle
      expect(reports).toHaveLength(1)
      yield* TestClock.adjust("15 seconds")
      yield* waitUntil(() => reports.length >= 2)
      expect(reports[1]).toEqual({ _tag: "Lost", reason: "no ping from the server for 1m 15s" })
      // The backoff (first delay jittered around 1 s) then the same tunnel id again.
      yield* advanceUntil(() => front.controls.length === 2)
      expect(front.calls.slice(2)).toEqual(["control id-1"])
      yield* waitUntil(() => reports.some((report) => report._tag === "Online" && report.again))
    }))

  it.scoped("after a server restart it creates its tunnel again under the same name, a random one too", () =>
    Effect.gen(function*() {
      const front = yield* fakeFront
      const { reports } = yield* runClient(config(front.port))
      yield* waitUntil(() => front.controls.length === 1)
      expect(front.calls[0]).toBe(`POST random0 Bearer ${TOKEN}`)
      // The "restart": the tunnel is forgotten and the control connection drops.
      front.knowsTunnels = false
      front.controls[0]!.terminate()
      yield* waitUntil(() => reports.some((report) => report._tag === "Lost"))
      yield* advanceUntil(() => front.controls.length === 2)
      // The name the server picked the first time is asked for by name now.
      // Its old id first (now unknown: 404), then the name the server picked the first time.
      expect(front.calls.slice(2)).toEqual(["control id-1", `POST random0 Bearer ${TOKEN}`, "control id-2"])
    }))

  it.scoped("a name taken by someone else ends it; a busy server is retried", () =>
    Effect.gen(function*() {
      const front = yield* fakeFront
      front.createStatus = 429
      const { fiber, reports } = yield* runClient(config(front.port, "app"))
      yield* waitUntil(() => reports.some((report) => report._tag === "Retrying"))
      expect(reports[0]).toEqual({ _tag: "AttemptFailed", reason: "the name app is taken" })
      front.createStatus = 409
      yield* TestClock.adjust("2 seconds")
      const exit = yield* Fiber.await(fiber)
      expect(exit._tag).toBe("Failure")
      expect(String(exit._tag === "Failure" ? exit.cause : "")).toContain("the name app is taken")
    }))

  it.scoped("a refused control connection is retried, and the status line has the server's own words", () =>
    Effect.gen(function*() {
      const front = yield* fakeFront
      front.controlRefusal = "too many authentication failures, try again later"
      const { reports } = yield* runClient(config(front.port, "app"))
      yield* waitUntil(() => reports.some((report) => report._tag === "Retrying"))
      expect(reports[0]).toEqual({ _tag: "AttemptFailed", reason: "too many authentication failures, try again later" })
      front.controlRefusal = undefined
      yield* advanceUntil(() => reports.some((report) => report._tag === "Online"))
    }))
})
