/**
 * Spore client and Spore server together on 127.0.0.1, moving real bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as net from "node:net"
import { Deferred, Effect, Either } from "effect"
import { listen } from "../../src/net/listener.js"
import { runTunnel } from "../support/client.js"
import {
  clientConfig,
  dial,
  echoService,
  freePort,
  LOOPBACK,
  randomPayload,
  readAll,
  roundTrip,
  sha256,
  startServer,
  startTunnel
} from "../support/net.js"

const MiB = 1 << 20

const readFirstByte = (socket: net.Socket) =>
  Effect.async<Buffer>((resume) => {
    socket.once("data", (chunk: Buffer) => resume(Effect.succeed(chunk)))
  })

/** A tunnel to a fresh echo service through a fresh server; returns the public port. */
const echoTunnel = Effect.gen(function*() {
  const echo = yield* echoService
  const control = yield* startServer()
  return yield* startTunnel(clientConfig(control, echo))
})

/** A local service that handles each connection with `serve`. */
const localService = (serve: (socket: net.Socket) => Effect.Effect<void>) =>
  Effect.map(listen({ host: LOOPBACK, port: 0 }, serve), (listener) => listener.port)

describe("tunnel end to end", () => {
  it.live("carries 64 MiB of random bytes there and back intact", () =>
    Effect.gen(function*() {
      const port = yield* echoTunnel
      const payload = randomPayload(64 * MiB)
      const back = yield* roundTrip(port, payload)
      expect(back.length).toBe(payload.length)
      expect(sha256(back)).toBe(sha256(payload))
    }).pipe(Effect.scoped))

  it.live("serves 200 concurrent connections, each with its own bytes", () =>
    Effect.gen(function*() {
      const port = yield* echoTunnel
      const results = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => randomPayload(16 * 1024 + i)),
        (payload) => Effect.map(roundTrip(port, payload), (back) => sha256(back) === sha256(payload)),
        { concurrency: "unbounded" }
      )
      expect(results.filter((ok) => !ok)).toHaveLength(0)
      expect(results).toHaveLength(200)
    }).pipe(Effect.scoped))

  it.live("a visitor that shuts down its write side still receives the whole reply", () =>
    Effect.gen(function*() {
      const reply = randomPayload(4 * MiB)
      // Reads the whole request (until the visitor's FIN), then answers and closes.
      const service = yield* localService((socket) =>
        Effect.flatMap(Effect.orDie(readAll(socket)), (request) =>
          Effect.async<void>((resume) => {
            socket.end(Buffer.concat([Buffer.from(`${request.length}:`), reply]), () => resume(Effect.void))
          })))
      const control = yield* startServer()
      const port = yield* startTunnel(clientConfig(control, service))
      const request = randomPayload(MiB)
      const back = yield* roundTrip(port, request)
      expect(back.subarray(0, 8).toString()).toBe(`${MiB}:`)
      expect(sha256(back.subarray(8))).toBe(sha256(reply))
    }).pipe(Effect.scoped))

  it.live("a service that ends its side first still receives everything the visitor sends after", () =>
    Effect.gen(function*() {
      const received = yield* Deferred.make<Buffer, Error>()
      // Sends a banner, shuts down its write side, then keeps reading until the visitor's FIN.
      const service = yield* localService((socket) => {
        socket.end("banner")
        return Deferred.complete(received, readAll(socket))
      })
      const control = yield* startServer()
      const port = yield* startTunnel(clientConfig(control, service))
      const visitor = yield* dial(port)
      const banner = yield* readAll(visitor)
      expect(banner.toString()).toBe("banner")
      const upload = randomPayload(4 * MiB)
      visitor.end(upload)
      expect(sha256(yield* Deferred.await(received))).toBe(sha256(upload))
    }).pipe(Effect.scoped))

  it.live("refuses ports outside the range and ports in use with bore's texts", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const control = yield* startServer({ minPort: 31000, maxPort: 31999 })
      const outside = yield* Effect.either(startTunnel(clientConfig(control, echo, { port: 30999 })))
      expect(Either.isLeft(outside) && outside.left.message).toBe("server error: client port number not in allowed range")

      const taken = yield* startTunnel(clientConfig(control, echo, { port: 0 }))
      const again = yield* Effect.either(startTunnel(clientConfig(control, echo, { port: taken })))
      expect(Either.isLeft(again) && again.left.message).toBe("server error: port already in use")

      // The first tunnel is unharmed.
      const payload = randomPayload(1000)
      expect(sha256(yield* roundTrip(taken, payload))).toBe(sha256(payload))
    }).pipe(Effect.scoped))

  it.live("--bind-tunnels puts the public ports on their own address, apart from the control port", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      // Another loopback address: the whole 127.0.0.0/8 is local.
      const control = yield* startServer({ bindTunnels: "127.0.0.2" })
      const port = yield* startTunnel(clientConfig(control, echo))
      const visitor = yield* dial(port, "127.0.0.2")
      visitor.write("x")
      expect((yield* readFirstByte(visitor)).toString()).toBe("x")
      const wrongAddress = yield* Effect.either(dial(port, LOOPBACK))
      expect(Either.isLeft(wrongAddress) && (wrongAddress.left as NodeJS.ErrnoException).code).toBe("ECONNREFUSED")
    }).pipe(Effect.scoped))

  it.live("gives up with bore's text when no port of the range is free", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const blocker = yield* listen({ host: LOOPBACK, port: 0 }, () => Effect.void)
      const control = yield* startServer({ minPort: blocker.port, maxPort: blocker.port })
      const result = yield* Effect.either(startTunnel(clientConfig(control, echo)))
      expect(Either.isLeft(result) && result.left.message).toBe("server error: failed to find an available port")
    }).pipe(Effect.scoped))

  it.live("when the local service is down the visitor sees a close and the tunnel keeps serving", () =>
    Effect.gen(function*() {
      // Find a port where nothing listens, then open the tunnel to it.
      const vacated = yield* freePort
      const control = yield* startServer()
      const tunnel = yield* runTunnel(clientConfig(control, vacated))

      const refused = yield* roundTrip(tunnel.port, Buffer.from("nobody home\n"))
      expect(refused.length).toBe(0)

      // Bring the service up on that port: the same tunnel now serves.
      yield* listen({ host: LOOPBACK, port: vacated }, (socket) =>
        Effect.async<void>((resume) => {
          socket.pipe(socket)
          socket.once("close", () => resume(Effect.void))
        }))
      const payload = randomPayload(64 * 1024)
      expect(sha256(yield* roundTrip(tunnel.port, payload))).toBe(sha256(payload))
      expect(tunnel.running.unsafePoll()).toBeNull()
    }).pipe(Effect.scoped))
})
