/**
 * Liveness of the control connection: the client's 8 s heartbeat timeout, and the TCP options
 * (keepalive, TCP_USER_TIMEOUT) read back with getsockopt from live control sockets on both sides.
 */
import { makeWarmPool } from "../../src/server/warm-pool.js"
import { describe, expect, it } from "@effect/vitest"
import type * as net from "node:net"
import { Duration, Effect, Either, Fiber, Option, Queue, Ref, TestClock } from "effect"
import * as Client from "../../src/client/client.js"
import { requestTunnel } from "../../src/client/handshake.js"
import { listen } from "../../src/net/listener.js"
import { makeFramedSocket } from "../../src/net/framed-socket.js"
import { getTcpOption, TcpOption } from "../../src/net/tuning.js"
import * as PendingRegistry from "../../src/visitors/pending-registry.js"
import { type Arrival, serveControlSession } from "../../src/server/control-session.js"
import { runTunnel } from "../support/client.js"
import { clientConfig, LOOPBACK, socketPair } from "../support/net.js"

/** A fake server that answers every Hello and then says nothing at all. */
const mutedServer = Effect.map(
  listen({ host: LOOPBACK, port: 0 }, (socket) =>
    Effect.async<void>((resume) => {
      socket.once("data", () => socket.write("{\"Hello\":20001}\0"))
      socket.once("close", () => resume(Effect.void))
    })),
  (listener) => listener.port
)

const expectControlTuning = (socket: net.Socket) => {
  expect(getTcpOption(socket, TcpOption.KEEPIDLE)).toBe(30)
  expect(getTcpOption(socket, TcpOption.KEEPINTVL)).toBe(10)
  expect(getTcpOption(socket, TcpOption.KEEPCNT)).toBe(3)
  expect(getTcpOption(socket, TcpOption.USER_TIMEOUT)).toBe(10_000)
}

describe("control connection liveness", () => {
  it.scoped("a client gives up on a server that sends nothing for exactly 8 s", () =>
    Effect.gen(function*() {
      expect(Duration.toMillis(Client.HEARTBEAT_TIMEOUT)).toBe(8000)
      const server = yield* mutedServer
      const { running } = yield* runTunnel(clientConfig(server, 9))
      yield* TestClock.adjust("7999 millis")
      expect(running.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const result = yield* Effect.either(Fiber.join(running))
      expect(Either.isLeft(result) && result.left.message).toBe(
        "lost the control connection to the server: no heartbeat from the server for 8s"
      )
    }))

  it.scoped("the client's control socket has keepalive 30 s/10 s/3 and TCP_USER_TIMEOUT 10 s", () =>
    Effect.gen(function*() {
      const server = yield* mutedServer
      const handshake = yield* requestTunnel(clientConfig(server, 9), Option.none(), { port: 0, leaseToken: Option.none() })
      expectControlTuning(handshake.control.socket)
    }))

  it.scoped("the server's control socket gets the same options once a tunnel is served on it", () =>
    Effect.gen(function*() {
      const { near: serverSide, far: clientSide } = yield* socketPair
      const tunnel = {
        port: 20001,
        arrivals: yield* Queue.unbounded<Arrival>(),
        waiting: new Map(),
        token: "0".repeat(32),
        leased: yield* Ref.make(false),
        announcesAddresses: yield* Ref.make(false),
        pool: makeWarmPool({ idleChanged: () => {} })
      }
      yield* Effect.fork(serveControlSession(tunnel, makeFramedSocket(serverSide)).pipe(Effect.provide(PendingRegistry.layer())))
      // The Hello reply arrives once serving has begun, and tuning comes before it.
      yield* Effect.async<void>((resume) => {
        clientSide.once("data", () => resume(Effect.void))
      })
      expectControlTuning(serverSide)
      // The other end of the pair, which nothing tuned, still has the kernel's default: the
      // values read above were set, not found.
      expect(getTcpOption(clientSide, TcpOption.USER_TIMEOUT)).toBe(0)
    }))
})
