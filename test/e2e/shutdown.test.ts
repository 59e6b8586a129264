/**
 * Graceful shutdown of the real executables: on SIGTERM (or SIGINT) a server or client stops
 * accepting at once, lets a transfer in flight finish, and exits 0; past `--drain-seconds` it
 * closes what is left; a second signal stops it at once. Signals and the drain run in real time
 * here (other processes); every wait is bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { Effect } from "effect"
import { freePort, hashingService, LOOPBACK } from "../support/net.js"
import { type Running, startSpore, within } from "../support/process.js"


/** Whether a new connection to `port` is refused. */
const refused = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect({ host: LOOPBACK, port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(false))
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed(error.code === "ECONNREFUSED")))
  })

const eventually = (what: string, condition: () => boolean) =>
  within(what, 15, Effect.gen(function*() {
    while (!condition()) yield* Effect.sleep("20 millis")
  }))

/** A server and a client tunnelling to the hashing service; `drainSeconds` for both. */
const tunnel = (drainSeconds: number) =>
  Effect.gen(function*() {
    const service = yield* hashingService
    const controlPort = yield* freePort
    const drain = ["--drain-seconds", String(drainSeconds)]
    const server = yield* startSpore(["server", "--bind-addr", LOOPBACK, "--control-port", String(controlPort), "--min-port", "35000", "--max-port", "35100", ...drain])
    yield* within("server start", 15, server.waitFor(/server listening/))
    const client = yield* startSpore(["local", String(service.port), "--local-host", LOOPBACK,
      "--to", LOOPBACK, "--control-port", String(controlPort), ...drain])
    const port = Number((yield* within("tunnel", 15, client.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
    return { service, controlPort, server, client, port }
  })

/** A visitor that has sent the first half of its payload and holds the rest until told. */
const visitorHalfway = (port: number, received: () => number) =>
  Effect.gen(function*() {
    const payload = randomBytes(8 * 1024 * 1024)
    const half = payload.length / 2
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => net.connect({ host: LOOPBACK, port, allowHalfOpen: true })),
      (socket) => Effect.sync(() => socket.destroy())
    )
    let reply = ""
    let ended = false
    socket.on("data", (chunk: Buffer) => (reply += chunk.toString()))
    socket.on("end", () => (ended = true))
    socket.on("error", () => {})
    socket.write(payload.subarray(0, half))
    yield* eventually("the first half reached the service", () => received() >= half)
    const finish = Effect.gen(function*() {
      socket.end(payload.subarray(half))
      yield* eventually("the reply", () => ended)
      return reply === `${payload.length} ${createHash("sha256").update(payload).digest("hex")}`
    })
    return { socket, finish }
  })

const exitOf = (process: Running, seconds: number) => within("exit", seconds, process.exited)

describe("graceful shutdown", () => {
  it.live("server: SIGTERM stops accepting, the transfer in flight finishes intact, then it exits 0", () =>
    Effect.gen(function*() {
      const { service, controlPort, server, port } = yield* tunnel(10)
      const visitor = yield* visitorHalfway(port, service.received)
      server.child.kill("SIGTERM")
      yield* within("the drain", 10, server.waitFor(/shutting down: waiting up to 10s for 1 open connection/))
      expect(yield* refused(controlPort)).toBe(true)
      expect(yield* refused(port)).toBe(true)
      expect(yield* visitor.finish).toBe(true)
      const exit = yield* exitOf(server, 10)
      expect(exit.code).toBe(0)
      expect(exit.stderr).not.toMatch(/closing \d+ connection/)
    }).pipe(Effect.scoped))

  it.live("client: SIGINT drops the tunnel, the transfer in flight finishes intact, then it exits 0", () =>
    Effect.gen(function*() {
      const { service, client, port } = yield* tunnel(10)
      const visitor = yield* visitorHalfway(port, service.received)
      client.child.kill("SIGINT")
      yield* within("the drain", 10, client.waitFor(/shutting down: waiting up to 10s for 1 open connection/))
      expect(yield* visitor.finish).toBe(true)
      expect((yield* exitOf(client, 10)).code).toBe(0)
    }).pipe(Effect.scoped))

  it.live("past --drain-seconds what is still open is closed, and the exit is still 0", () =>
    Effect.gen(function*() {
      const { service, server, port } = yield* tunnel(1)
      const visitor = yield* visitorHalfway(port, service.received)
      server.child.kill("SIGTERM")
      const exit = yield* exitOf(server, 10)
      expect(exit.code).toBe(0)
      expect(exit.stderr).toMatch(/shutting down: closing 1 connection\(s\) still open/)
      // The server ended or reset the visitor's connection (its write side is the visitor's own).
      yield* eventually("the visitor's close", () => visitor.socket.readableEnded || visitor.socket.destroyed)
    }).pipe(Effect.scoped))

  it.live("a second signal stops at once", () =>
    Effect.gen(function*() {
      const { service, server, port } = yield* tunnel(60)
      yield* visitorHalfway(port, service.received)
      server.child.kill("SIGTERM")
      yield* within("the drain", 10, server.waitFor(/shutting down: waiting up to 1m/))
      server.child.kill("SIGTERM")
      const exit = yield* exitOf(server, 5)
      expect(exit.code).toBe(1)
      expect(exit.stderr).toMatch(/second signal: stopping at once/)
    }).pipe(Effect.scoped))
})
