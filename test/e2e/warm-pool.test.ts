/**
 * The warm pool (extension version 3): a Spore client keeps data streams open and idle, and the
 * server hands each new visitor to one at once, announced on the stream itself. Real sockets on
 * 127.0.0.1: a Spore server and client in this process, a fault proxy between them where a test
 * cuts streams, and a hand-written wire peer where a test needs to break the rules itself. The
 * pool's refill backoff runs on the TestClock, moved in small steps while real I/O happens.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option, Queue, TestClock } from "effect"
import * as Client from "../../src/client/client.js"
import type { ClientStatus } from "../../src/client/status.js"
import { ClientMetrics, makeClientMetrics, tunnelLabel } from "../../src/client/client-metrics.js"
import type { ClientConfig } from "../../src/client/config.js"
import { clientLayer } from "../support/client.js"
import { faultProxy } from "../support/fault-proxy.js"
import { letIoHappen } from "../support/io.js"
import {
  clientConfig,
  dial,
  hashingService,
  randomPayload,
  readAll,
  roundTrip,
  sha256,
  startRunningServer
} from "../support/net.js"
import { sampleOf, scrape } from "../support/prometheus.js"
import { wirePeer } from "../support/wire.js"

const SECRET = "pool secret"
const STEP = Duration.millis(100)

/** Steps the clock and lets I/O happen until `check` holds (at most 60 s of virtual time). */
const stepUntil = (what: string, check: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let step = 0; step < 100; step++) {
      if (yield* check) return
      yield* letIoHappen
      yield* TestClock.adjust(STEP)
    }
    return yield* Effect.dieMessage(`never happened: ${what}`)
  })

const serverSample = (metricsPort: number, name: string) =>
  Effect.map(Effect.promise(() => scrape(metricsPort)), ({ body }) => sampleOf(body, name) ?? 0)

/** A server with a secret and metrics, and a client running with its own metrics, in the background. */
const pooledTunnel = (options: { pool: number; through?: (controlPort: number) => Effect.Effect<number, never, never> }) =>
  Effect.gen(function*() {
    const service = yield* hashingService
    const server = yield* startRunningServer({ secret: SECRET, metricsPort: 0 })
    const metricsPort = Option.getOrThrow(server.metricsPort)
    const proxy = yield* faultProxy(server.controlPort)
    const config: ClientConfig = clientConfig(proxy.port, service.port, { secret: SECRET, pool: options.pool })
    const clientMetrics = makeClientMetrics()
    const statuses = yield* Queue.unbounded<ClientStatus>()
    yield* Effect.forkScoped(Client.run(config, (status) => Queue.offer(statuses, status)).pipe(
      Effect.provideService(ClientMetrics, clientMetrics),
      Effect.provide(clientLayer)
    ))
    let port = 0
    yield* stepUntil("the client listening", Effect.gen(function*() {
      const status = yield* Queue.poll(statuses)
      if (Option.isSome(status) && status.value._tag === "Listening") port = status.value.port
      return port !== 0
    }))
    const idle = {
      server: serverSample(metricsPort, "spore_pool_idle"),
      client: Effect.promise(async () => sampleOf(await clientMetrics.registry.render(), "spore_pool_idle", tunnelLabel(config)) ?? 0)
    }
    /** Waits until both sides count `count` idle streams. */
    const idleReaches = (count: number) =>
      stepUntil(`${count} idle pool streams on both sides`, Effect.map(Effect.all([idle.server, idle.client]), ([s, c]) => s === count && c === count))
    return { server, metricsPort, proxy, port, statuses, idleReaches, sample: (name: string) => serverSample(metricsPort, name) }
  })

/** Sends a visitor's payload and checks the service's `<length> <sha256>` answer. */
const hashedVisit = (port: number, size: number) =>
  Effect.gen(function*() {
    const payload = randomPayload(size)
    const answer = (yield* roundTrip(port, payload)).toString()
    expect(answer).toBe(`${size} ${sha256(payload)}`)
  })

describe("the warm pool", () => {
  it.scoped("serves visitors over pooled streams byte for byte, and tops the pool up after each", () =>
    Effect.gen(function*() {
      const tunnel = yield* pooledTunnel({ pool: 2 })
      yield* tunnel.idleReaches(2)
      for (let visit = 0; visit < 3; visit++) {
        yield* hashedVisit(tunnel.port, 1 << 20)
        yield* tunnel.idleReaches(2)
      }
      expect(yield* tunnel.sample("spore_visitors_pooled_total")).toBe(3)
      // None took the plain path: no Accept ever claimed a visitor.
      expect(yield* tunnel.sample("spore_visitor_claim_seconds_count")).toBe(0)
    }))

  it.scoped("falls back to the plain path when a burst empties the pool, and loses no visitor", () =>
    Effect.gen(function*() {
      const tunnel = yield* pooledTunnel({ pool: 2 })
      yield* tunnel.idleReaches(2)
      const VISITORS = 30
      yield* Effect.all(Array.from({ length: VISITORS }, () => hashedVisit(tunnel.port, 64 * 1024)), { concurrency: "unbounded" })
      const pooled = yield* tunnel.sample("spore_visitors_pooled_total")
      const claimed = yield* tunnel.sample("spore_visitor_claim_seconds_count")
      expect(pooled).toBeGreaterThanOrEqual(2)
      expect(claimed).toBeGreaterThanOrEqual(1)
      expect(pooled + claimed).toBe(VISITORS)
      yield* tunnel.idleReaches(2)
    }))

  it.scoped("replaces a pooled stream that the network cuts, and serves the next visitor on it", () =>
    Effect.gen(function*() {
      const tunnel = yield* pooledTunnel({ pool: 2 })
      yield* tunnel.idleReaches(2)
      const before = tunnel.proxy.connections().length
      // Every stream but the control connection (the first).
      yield* tunnel.proxy.cut((connection) => connection.index !== 0)
      yield* stepUntil("two new pool streams", Effect.sync(() => tunnel.proxy.connections().length >= before + 2))
      yield* tunnel.idleReaches(2)
      yield* hashedVisit(tunnel.port, 100_000)
      expect(yield* tunnel.sample("spore_visitors_pooled_total")).toBe(1)
    }))

  it.scoped("closes the pool with its control connection on both sides, and opens a new one after the resume", () =>
    Effect.gen(function*() {
      const tunnel = yield* pooledTunnel({ pool: 3 })
      yield* tunnel.idleReaches(3)
      const poolStreams = tunnel.proxy.connections().filter((connection) => connection.index !== 0)
      yield* tunnel.proxy.cut((connection) => connection.index === 0)
      yield* stepUntil("the pool's streams closed", Effect.sync(() => poolStreams.every((c) => c.downstream.destroyed && c.upstream.destroyed)))
      yield* stepUntil("the client resumed", Effect.gen(function*() {
        const status = yield* Queue.poll(tunnel.statuses)
        return Option.isSome(status) && status.value._tag === "Listening" && status.value.resumed
      }))
      yield* tunnel.idleReaches(3)
      yield* hashedVisit(tunnel.port, 10_000)
      expect(yield* tunnel.sample("spore_visitors_pooled_total")).toBe(1)
    }))

  it.scoped("`--pool 0` opens no pool stream", () =>
    Effect.gen(function*() {
      const tunnel = yield* pooledTunnel({ pool: 0 })
      yield* hashedVisit(tunnel.port, 10_000)
      // The control connection and the one data stream of the visitor.
      expect(tunnel.proxy.connections().length).toBe(2)
      expect(yield* tunnel.sample("spore_visitors_pooled_total")).toBe(0)
    }))
})

/** A hand-written client: a tunnel opened with Hello and an offer of `version`; its lease token. */
const wireTunnel = (controlPort: number, version: number) =>
  Effect.gen(function*() {
    const control = wirePeer(yield* dial(controlPort))
    control.send("{\"Hello\":0}")
    const port = Number(/\d+/.exec((yield* control.next) ?? "")?.[0])
    control.send(`{"Spore":${version}}`)
    const frames: Array<string> = []
    let token: string | undefined
    while (token === undefined) {
      const frame = (yield* control.nextNonHeartbeat) ?? ""
      frames.push(frame)
      token = /"Lease":"([0-9a-f]{32})"/.exec(frame)?.[1]
    }
    return { control, port, token, frames }
  })

/** A pool stream by hand; `closedWith` resolves with what the server sent, once it ended the stream. */
const poolStream = (controlPort: number, token: string) =>
  Effect.map(dial(controlPort), (socket) => {
    const peer = wirePeer(socket)
    const received: Array<Buffer> = []
    const closed = new Promise<Buffer>((resolve) => {
      const done = () => resolve(Buffer.concat(received))
      socket.once("end", done)
      socket.once("close", done)
    })
    const collect = (chunk: Buffer) => received.push(chunk)
    socket.on("data", collect)
    peer.send(`{"Pool":"${token}"}`)
    return {
      ...peer,
      /** Reading frames instead: stops collecting. */
      framed: () => {
        socket.off("data", collect)
        socket.pause()
        return peer
      },
      closedWith: Effect.promise(() => closed)
    }
  })

describe("the warm pool on the wire", () => {
  it.scoped("a pooled stream is handed the next visitor with a Visitor frame, and its bytes follow", () =>
    Effect.gen(function*() {
      const server = yield* startRunningServer({ metricsPort: 0 })
      const metricsPort = Option.getOrThrow(server.metricsPort)
      const tunnel = yield* wireTunnel(server.controlPort, 3)
      expect(tunnel.frames[0]).toBe("{\"Spore\":3}")
      const stream = (yield* poolStream(server.controlPort, tunnel.token)).framed()
      yield* stepUntil("the stream idle in the pool", Effect.map(serverSample(metricsPort, "spore_pool_idle"), (n) => n === 1))
      const visitor = yield* dial(tunnel.port)
      visitor.write("hello")
      const announced = JSON.parse((yield* stream.next) ?? "{}") as { Visitor?: string }
      expect(announced.Visitor).toMatch(new RegExp(`^[0-9a-f-]{36} 127\\.0\\.0\\.1 127\\.0\\.0\\.1 ${visitor.localPort} ${tunnel.port}$`))
      const received = yield* Effect.async<string>((resume) => {
        stream.socket.once("data", (chunk: Buffer) => resume(Effect.succeed(chunk.toString())))
        stream.socket.resume()
      })
      expect(received).toBe("hello")
      const back = readAll(visitor)
      stream.socket.end("world")
      visitor.end()
      expect((yield* back).toString()).toBe("world")
      expect(yield* serverSample(metricsPort, "spore_pool_idle")).toBe(0)
    }))

  it.scoped("a stream that ends or speaks while idle leaves the pool, and the visitor takes the plain path", () =>
    Effect.gen(function*() {
      const server = yield* startRunningServer({ metricsPort: 0 })
      const metricsPort = Option.getOrThrow(server.metricsPort)
      const tunnel = yield* wireTunnel(server.controlPort, 3)
      const ending = yield* poolStream(server.controlPort, tunnel.token)
      const speaking = yield* poolStream(server.controlPort, tunnel.token)
      yield* stepUntil("two idle streams", Effect.map(serverSample(metricsPort, "spore_pool_idle"), (n) => n === 2))
      ending.socket.end()
      speaking.socket.write("unasked bytes")
      yield* stepUntil("no idle stream", Effect.map(serverSample(metricsPort, "spore_pool_idle"), (n) => n === 0))
      const visitor = yield* dial(tunnel.port)
      const announced = (yield* tunnel.control.nextNonHeartbeat) ?? ""
      expect(announced).toMatch(/^\{"Visitor":"[0-9a-f-]{36} /)
      expect(yield* ending.closedWith).toHaveLength(0)
      visitor.destroy()
    }))

  it.scoped("is refused in silence to a version 2 client, for an unknown token, and past the tunnel's limit", () =>
    Effect.gen(function*() {
      const server = yield* startRunningServer({ metricsPort: 0, limits: { maxConnsPerTunnel: 2 } })
      const metricsPort = Option.getOrThrow(server.metricsPort)
      const old = yield* wireTunnel(server.controlPort, 2)
      expect(old.frames[0]).toBe("{\"Spore\":2}")
      const current = yield* wireTunnel(server.controlPort, 3)
      const refused = [
        yield* poolStream(server.controlPort, old.token),
        yield* poolStream(server.controlPort, "0".repeat(32))
      ]
      const taken = [yield* poolStream(server.controlPort, current.token), yield* poolStream(server.controlPort, current.token)]
      const overLimit = yield* poolStream(server.controlPort, current.token)
      for (const peer of [...refused, overLimit]) expect(yield* peer.closedWith).toHaveLength(0)
      yield* stepUntil("two idle streams", Effect.map(serverSample(metricsPort, "spore_pool_idle"), (n) => n === 2))
      expect(taken.every((peer) => !peer.socket.destroyed)).toBe(true)
      const { body } = yield* Effect.promise(() => scrape(metricsPort))
      expect(sampleOf(body, "spore_handshake_failures_total", { reason: "pool-refused" })).toBe(3)
      // The refusals cost the tunnel nothing: its next visitor is handed to the newest stream taken.
      const newest = taken[1]!.framed()
      const visitor = yield* dial(current.port)
      expect((yield* newest.next) ?? "").toMatch(/^\{"Visitor":"[0-9a-f-]{36} 127\.0\.0\.1 /)
      visitor.destroy()
    }))

  it.scoped("closing the tunnel closes its idle streams", () =>
    Effect.gen(function*() {
      const server = yield* startRunningServer({ metricsPort: 0 })
      const metricsPort = Option.getOrThrow(server.metricsPort)
      const tunnel = yield* wireTunnel(server.controlPort, 3)
      const stream = yield* poolStream(server.controlPort, tunnel.token)
      yield* stepUntil("the stream idle", Effect.map(serverSample(metricsPort, "spore_pool_idle"), (n) => n === 1))
      tunnel.control.socket.destroy()
      expect(yield* stream.closedWith).toHaveLength(0)
      expect(yield* serverSample(metricsPort, "spore_pool_idle")).toBe(0)
    }))
})
