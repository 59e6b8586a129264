/**
 * The server's behaviour at the frame level, driven by a hand-written peer, with the TestClock
 * standing in for every timeout.
 */
import { describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { Effect, TestClock } from "effect"
import { closed, dial, LOOPBACK, startServer } from "../support/net.js"
import { wirePeer } from "../support/wire.js"

const settle = Effect.repeatN(Effect.yieldNow(), 20)

const canBind = (port: number) =>
  Effect.async<boolean>((resume) => {
    const probe = net.createServer()
    probe.once("error", () => resume(Effect.succeed(false)))
    probe.listen(port, LOOPBACK, () => probe.close(() => resume(Effect.succeed(true))))
  })

const portOf = (hello: string | undefined) => Number(/^\{"Hello":(\d+)\}$/.exec(hello ?? "")?.[1])

/** A server and a tunnel opened on it by a hand-driven control connection. */
const tunnelByHand = Effect.gen(function*() {
  const control = yield* startServer()
  const peer = wirePeer(yield* dial(control))
  peer.send("{\"Hello\":0}")
  const port = portOf(yield* peer.next)
  expect(port).toBeGreaterThan(0)
  return { control, peer, port }
})

describe("server", () => {
  it.scoped("closes a silent connection at exactly 3 s without a word (no secret)", () =>
    Effect.gen(function*() {
      const control = yield* startServer()
      const peer = wirePeer(yield* dial(control))
      yield* TestClock.adjust("2999 millis")
      yield* settle
      expect(peer.socket.readableEnded).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(yield* peer.next).toBeUndefined()
    }))

  it.scoped("with a secret, a silent connection gets bore's timeout error at 3 s", () =>
    Effect.gen(function*() {
      const control = yield* startServer({ secret: "s3cret" })
      const peer = wirePeer(yield* dial(control))
      expect(yield* peer.next).toMatch(/^\{"Challenge":"[0-9a-f-]{36}"\}$/)
      yield* TestClock.adjust("2999 millis")
      yield* settle
      expect(peer.socket.readableEnded).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(yield* peer.next).toBe("{\"Error\":\"timed out waiting for initial message\"}")
      expect(yield* peer.next).toBeUndefined()
    }))

  it.scoped("sends a heartbeat at once after Hello, then every 500 ms, and one after each Connection", () =>
    Effect.gen(function*() {
      const { peer, port } = yield* tunnelByHand
      expect(yield* peer.next).toBe("\"Heartbeat\"")
      for (let beat = 0; beat < 4; beat++) {
        yield* TestClock.adjust("500 millis")
        expect(yield* peer.next).toBe("\"Heartbeat\"")
      }
      yield* dial(port)
      expect(yield* peer.next).toMatch(/^\{"Connection":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"\}$/)
      expect(yield* peer.next).toBe("\"Heartbeat\"")
    }))

  it.scoped("frees the tunnel's port as soon as its client closes the control connection", () =>
    Effect.gen(function*() {
      const { peer, port } = yield* tunnelByHand
      expect(yield* canBind(port)).toBe(false)
      peer.socket.destroy()
      // No clock movement: bore needs failed heartbeat writes to notice; Spore reads the stream.
      let free = false
      for (let attempt = 0; attempt < 200 && !free; attempt++) {
        yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
        free = yield* canBind(port)
      }
      expect(free).toBe(true)
    }))

  it.scoped("closes waiting visitors when their tunnel closes", () =>
    Effect.gen(function*() {
      const { peer, port } = yield* tunnelByHand
      const visitor = yield* dial(port)
      expect(yield* peer.nextNonHeartbeat).toMatch(/^\{"Connection"/)
      peer.socket.destroy()
      yield* closed(visitor)
      expect(visitor.readableEnded || visitor.destroyed).toBe(true)
    }))

  it.scoped("a visitor nobody claims is closed after 10 s; a late Accept gets a silent close", () =>
    Effect.gen(function*() {
      const { control, peer, port } = yield* tunnelByHand
      const visitor = yield* dial(port)
      const connection = yield* peer.nextNonHeartbeat
      const id = JSON.parse(connection ?? "{}").Connection as string
      yield* TestClock.adjust("9999 millis")
      yield* settle
      expect(visitor.readableEnded).toBe(false)
      yield* TestClock.adjust("1 millis")
      yield* closed(visitor)
      const late = wirePeer(yield* dial(control))
      late.send(`{"Accept":"${id}"}`)
      expect(yield* late.next).toBeUndefined()
    }))

  it.scoped("ignores whatever the client sends on the control stream after Hello", () =>
    Effect.gen(function*() {
      const { peer, port } = yield* tunnelByHand
      peer.send("garbage")
      peer.socket.write("x".repeat(10_000))
      yield* TestClock.adjust("500 millis")
      yield* dial(port)
      expect(yield* peer.nextNonHeartbeat).toMatch(/^\{"Connection"/)
    }))
})
