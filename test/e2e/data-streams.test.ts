/**
 * A real Spore client's data streams under the server's limits: whatever the server refuses, not
 * one byte of its own reaches the local service, and limits meant for others (a full handshake
 * pool, a lockout of the client's own address) never cost the tunnel a visitor.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { listen } from "../../src/net/listener.js"
import { faultProxy } from "../support/fault-proxy.js"
import { eventually, letIoHappen } from "../support/io.js"
import { clientConfig, dial, LOOPBACK, randomPayload, roundTrip, sha256, startServer, startTunnel } from "../support/net.js"
import { wirePeer } from "../support/wire.js"

const SECRET = "data-stream-secret"

/** Steps the test clock (20 ms at a time, with real I/O between) until `condition` holds. */
const stepUntil = (condition: () => boolean, what: string) =>
  Effect.gen(function*() {
    for (let step = 0; step < 200; step++) {
      if (condition()) return
      yield* TestClock.adjust("20 millis")
      yield* letIoHappen
    }
    return yield* Effect.dieMessage(`never happened: ${what}`)
  })

/** An echo service that also keeps every byte each connection sent it. */
const recordingEcho = Effect.gen(function*() {
  const received: Array<Array<Buffer>> = []
  const listener = yield* listen({ host: LOOPBACK, port: 0 }, (socket) =>
    Effect.async<void>((resume) => {
      const chunks: Array<Buffer> = []
      received.push(chunks)
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.pipe(socket)
      socket.once("close", () => resume(Effect.void))
      return Effect.sync(() => socket.destroy())
    }))
  return { port: listener.port, received: () => received.map((chunks) => Buffer.concat(chunks)) }
})

/** Opens `count` silent connections to the control port from `from`. */
const silentSockets = (control: number, from: string, count: number) =>
  Effect.forEach(Array.from({ length: count }), () => dial(control, LOOPBACK, from))

describe("data streams and the server's limits", () => {
  it.scoped("with the handshake pool full of silent sockets, a data stream is served, and the local service gets only the visitor's bytes", () =>
    Effect.gen(function*() {
      const echo = yield* recordingEcho
      const control = yield* startServer({ limits: { maxHandshakes: 8 } })
      const port = yield* startTunnel(clientConfig(control, echo.port))
      const silent = yield* silentSockets(control, "127.0.0.9", 8)
      yield* eventually(() => silent.every((socket) => socket.readyState === "open"), "the silent sockets connected")
      for (let visitor = 0; visitor < 5; visitor++) {
        const payload = randomPayload(4096)
        expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
        // Not a byte but the visitor's: no Error frame went down a spliced data stream.
        expect(sha256(echo.received().at(-1)!)).toBe(sha256(payload))
      }
      // Each data stream took the place of one silent socket, closed without a word.
      const closedSilently = silent.filter((socket) => socket.destroyed || socket.readableEnded)
      expect(closedSilently.length).toBeGreaterThanOrEqual(1)
      expect(silent.every((socket) => socket.bytesRead === 0)).toBe(true)
    }))

  it.scoped("a data stream closed to make room in the pool delivers not one byte to the local service", () =>
    Effect.gen(function*() {
      const echo = yield* recordingEcho
      const control = yield* startServer({ secret: SECRET, limits: { maxHandshakes: 1 } })
      const proxy = yield* faultProxy(control)
      const port = yield* startTunnel(clientConfig(proxy.port, echo.port, { secret: SECRET }))
      // Slow the client's network, so that its next data stream waits in its handshake...
      yield* proxy.delay(Duration.millis(200))
      const visitor = yield* dial(port)
      visitor.write("a visitor's request")
      yield* stepUntil(() => (proxy.connections()[1]?.fromServer.length ?? 0) > 0, "the server challenged the data stream")
      // ...and have a newcomer take its slot: the data stream is closed, silently.
      yield* dial(control, LOOPBACK, "127.0.0.9")
      const dataStream = proxy.connections()[1]!
      yield* eventually(() => dataStream.upstream.readableEnded, "the server closed the data stream")
      expect(dataStream.fromServer).toMatch(/^\{"Challenge":"[0-9a-f-]{36}"\}\0$/)
      // Let the proxy deliver what it holds, and the client connect and give up.
      for (let step = 0; step < 20; step++) {
        yield* TestClock.adjust("100 millis")
        yield* letIoHappen
      }
      // The client did connect to its local service (it does so while the data stream opens).
      expect(echo.received()).toHaveLength(1)
      expect(echo.received()[0]).toHaveLength(0)
    }))

  it.scoped("wrong secrets from the tunnel's own address lock it out of new tunnels but do not disturb its open one", () =>
    Effect.gen(function*() {
      const echo = yield* recordingEcho
      const control = yield* startServer({ secret: SECRET })
      const port = yield* startTunnel(clientConfig(control, echo.port, { secret: SECRET }))
      // A misconfigured neighbour behind the same address (the client dials from 127.0.0.1).
      for (let attempt = 0; attempt < 6; attempt++) {
        const peer = wirePeer(yield* dial(control))
        expect(yield* peer.next).toMatch(/^\{"Challenge"/)
        peer.send(`{"Authenticate":"${"00".repeat(32)}"}`)
        yield* peer.next
      }
      const locked = wirePeer(yield* dial(control))
      yield* locked.next
      locked.send(`{"Authenticate":"${"00".repeat(32)}"}`)
      expect(yield* locked.next).toBe(JSON.stringify({ Error: "too many authentication failures, try again later" }))
      // Every visitor of the open tunnel is still served.
      for (let visitor = 0; visitor < 20; visitor++) {
        const payload = randomPayload(1024)
        expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
      }
    }))
})
