/**
 * Reconnection through a fault-injecting proxy between a Spore client and a Spore server: the
 * control connection is cut or black-holed, and the client must come back on the same public
 * port without losing a byte of connections already open. Every wait and backoff runs on the
 * TestClock, advanced in small steps while real I/O on 127.0.0.1 happens in between.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as net from "node:net"
import { Clock, Duration, Effect, Either, Fiber, Option, Queue, TestClock } from "effect"
import * as Client from "../../src/client/client.js"
import type { ClientStatus } from "../../src/client/status.js"
import type { ClientConfig } from "../../src/client/config.js"
import { listen } from "../../src/net/listener.js"
import { faultProxy } from "../support/fault-proxy.js"
import { eventually, letIoHappen } from "../support/io.js"
import { clientLayer } from "../support/client.js"
import { clientConfig, echoService, LOOPBACK, randomPayload, roundTrip, sha256, startServer, startTunnel } from "../support/net.js"
import { wirePeer } from "../support/wire.js"

const STEP = Duration.millis(100)

/** Runs the client in the background, collecting what it reports. */
const runClient = (config: ClientConfig) =>
  Effect.gen(function*() {
    const statuses = yield* Queue.unbounded<ClientStatus>()
    const seen: Array<ClientStatus> = []
    const fiber = yield* Effect.forkScoped(Client.run(config, (status) => Queue.offer(statuses, status)).pipe(Effect.provide(clientLayer)))
    /** Steps the clock until the client reports a status that matches (at most `limit` of virtual time). */
    const waitFor = <S extends ClientStatus>(
      match: (status: ClientStatus) => status is S,
      limit: Duration.DurationInput = "120 seconds"
    ) =>
      Effect.gen(function*() {
        for (let elapsed = 0; elapsed <= Duration.toMillis(limit); elapsed += Duration.toMillis(STEP)) {
          yield* letIoHappen
          let next = yield* Queue.poll(statuses)
          while (Option.isSome(next)) {
            seen.push(next.value)
            if (match(next.value)) return next.value
            next = yield* Queue.poll(statuses)
          }
          yield* TestClock.adjust(STEP)
        }
        return yield* Effect.dieMessage(`no matching status within ${Duration.format(limit)}; saw ${JSON.stringify(seen)}`)
      })
    return { fiber, waitFor, seen }
  })

const isListening = (status: ClientStatus): status is Extract<ClientStatus, { _tag: "Listening" }> =>
  status._tag === "Listening"
const isLost = (status: ClientStatus): status is Extract<ClientStatus, { _tag: "Lost" }> => status._tag === "Lost"
const isAttemptFailed = (status: ClientStatus): status is Extract<ClientStatus, { _tag: "AttemptFailed" }> =>
  status._tag === "AttemptFailed"

/** A tunnel from a client behind a fault proxy to an echo service, once the client holds its lease. */
const proxiedTunnel = (options: { leaseSeconds?: number } = {}) =>
  Effect.gen(function*() {
    const echo = yield* echoService
    const controlPort = yield* startServer(options)
    const proxy = yield* faultProxy(controlPort)
    const client = yield* runClient(clientConfig(proxy.port, echo))
    const first = yield* client.waitFor(isListening)
    // The lease token travels right after the Hello; a resume needs the client to have it.
    yield* eventually(() => proxy.connections()[0]?.fromServer.includes("\"Lease\"") ?? false, "the lease reached the client")
    return { echo, controlPort, proxy, client, port: first.port }
  })

const isControl = (connection: { readonly index: number }) => connection.index === 0

describe("reconnection", () => {
  it.scoped("after a cut, the client resumes the same port and serves a visitor who came meanwhile", () =>
    Effect.gen(function*() {
      const { proxy, client, port } = yield* proxiedTunnel()
      yield* proxy.cut(isControl)
      const lost = yield* client.waitFor(isLost)
      expect(lost.reason).toMatch(/closed it|ECONNRESET|socket/)
      // A visitor arrives while the client is away: the server holds it for the tunnel.
      const payload = randomPayload(256 * 1024)
      const visit = yield* Effect.fork(roundTrip(port, payload))
      const back = yield* client.waitFor(isListening)
      expect(back).toEqual({ _tag: "Listening", host: "127.0.0.1", port, resumed: true })
      // Even the first reconnection waits out a backoff delay.
      const retry = client.seen.find((status) => status._tag === "Retrying")
      expect(retry?._tag === "Retrying" && Duration.toMillis(retry.delay)).toBeGreaterThanOrEqual(750)
      expect(retry?._tag === "Retrying" && Duration.toMillis(retry.delay)).toBeLessThanOrEqual(1250)
      expect(sha256(yield* Fiber.join(visit))).toBe(sha256(payload))
    }))

  it.scoped("a tunnel resumed and lost again before its new Lease frame arrives still resumes", () =>
    Effect.gen(function*() {
      const { proxy, client, port } = yield* proxiedTunnel()
      // Slow the network (1 s each way: the resume's round trip stays under the 3 s handshake
      // timeout) so the offer and the Lease after the first resume take 2 s to go round.
      yield* proxy.delay(Duration.seconds(1))
      yield* proxy.cut(isControl)
      yield* client.waitFor(isLost)
      expect(yield* client.waitFor(isListening)).toEqual({ _tag: "Listening", host: "127.0.0.1", port, resumed: true })
      // Lost again at once: the client still holds the token the resume proved good.
      yield* proxy.restore
      yield* proxy.cut((connection) => connection.index > 0)
      yield* client.waitFor(isLost)
      const back = yield* client.waitFor(isListening)
      expect(back).toEqual({ _tag: "Listening", host: "127.0.0.1", port, resumed: true })
      expect(client.seen.filter(isAttemptFailed)).toEqual([])
    }))

  it.scoped("a black-holed control connection is noticed at 8 s, and the client resumes when the network is back", () =>
    Effect.gen(function*() {
      const { proxy, client, port } = yield* proxiedTunnel()
      yield* proxy.blackHole
      const start = yield* Clock.currentTimeMillis
      const lost = yield* client.waitFor(isLost)
      const noticedAfter = (yield* Clock.currentTimeMillis) - start
      expect(lost.reason).toBe("no heartbeat from the server for 8s")
      // The 8 s run from the last heartbeat received, at most one clock step before the black hole.
      expect(noticedAfter).toBeGreaterThanOrEqual(8000 - Duration.toMillis(STEP))
      expect(noticedAfter).toBeLessThanOrEqual(8000 + Duration.toMillis(STEP))
      // Attempts while the network is still dead time out and are retried.
      yield* client.waitFor(isAttemptFailed)
      yield* proxy.restore
      const back = yield* client.waitFor(isListening)
      expect(back.port).toBe(port)
      expect(back.resumed).toBe(true)
    }))

  it.scoped("a visitor announced on a black-holed control connection is announced again after the resume, and served", () =>
    Effect.gen(function*() {
      const { proxy, client, port } = yield* proxiedTunnel()
      // Only the control connection dies (no FIN, no RST); new connections get through.
      yield* proxy.silence(isControl)
      const start = yield* Clock.currentTimeMillis
      yield* Effect.forEach(Array.from({ length: 30 }), () => Effect.zipRight(letIoHappen, TestClock.adjust(STEP)), { discard: true })
      // 3 s into the black hole a visitor arrives: the server announces it on the dead connection.
      const payload = randomPayload(64 * 1024)
      const visit = yield* Effect.fork(roundTrip(port, payload))
      const lost = yield* client.waitFor(isLost)
      expect(lost.reason).toBe("no heartbeat from the server for 8s")
      const back = yield* client.waitFor(isListening)
      expect(back).toEqual({ _tag: "Listening", host: "127.0.0.1", port, resumed: true })
      // Back well within the visitor's 10 s: it is served, byte for byte.
      expect((yield* Clock.currentTimeMillis) - start).toBeLessThan(12_000)
      expect(sha256(yield* Fiber.join(visit))).toBe(sha256(payload))
    }))

  it.scoped("a long transfer spanning a control reconnect arrives intact", () =>
    Effect.gen(function*() {
      const { proxy, client, port } = yield* proxiedTunnel()
      const payload = randomPayload(32 * 1024 * 1024)
      const transfer = yield* Effect.fork(roundTrip(port, payload))
      // Once the data stream exists (the second connection through the proxy), cut the control.
      yield* eventually(() => proxy.connections().length >= 2, "the data stream opened")
      yield* proxy.cut(isControl)
      yield* client.waitFor(isLost)
      const back = yield* client.waitFor(isListening)
      expect(back.resumed).toBe(true)
      const echoed = yield* Fiber.join(transfer)
      expect(echoed.length).toBe(payload.length)
      expect(sha256(echoed)).toBe(sha256(payload))
    }))

  it.scoped("the port stays reserved for the lease only: then Resume fails and Hello takes the port back", () =>
    Effect.gen(function*() {
      const { echo, controlPort, proxy, client, port } = yield* proxiedTunnel({ leaseSeconds: 5 })
      // Keep the client away: cut its control connection and swallow its attempts.
      yield* proxy.blackHole
      yield* proxy.cut()
      yield* client.waitFor(isLost)
      // During the lease nobody else gets the port.
      const taken = yield* Effect.either(Effect.scoped(startTunnel(clientConfig(controlPort, echo, { port }))))
      expect(Either.isLeft(taken) && taken.left.message).toBe("server error: port already in use")
      // Let the lease run out while the client keeps failing, then let it through.
      yield* TestClock.adjust("6 seconds")
      yield* proxy.restore
      const back = yield* client.waitFor(isListening)
      expect(back).toEqual({ _tag: "Listening", host: "127.0.0.1", port, resumed: false })
    }))

  it.scoped("a slow network (3 s per chunk) is not mistaken for a dead one", () =>
    Effect.gen(function*() {
      const { proxy, client, port } = yield* proxiedTunnel()
      yield* proxy.delay(Duration.seconds(3))
      const payload = randomPayload(64 * 1024)
      const visit = yield* Effect.fork(roundTrip(port, payload))
      // 30 s of virtual time: heartbeats arrive late but steadily, so nothing is reported lost.
      yield* client.waitFor((status): status is ClientStatus => status._tag === "Lost", "30 seconds").pipe(
        Effect.exit,
        Effect.map((exit) => expect(exit._tag).toBe("Failure"))
      )
      expect(client.seen.filter((status) => status._tag !== "Listening")).toEqual([])
      expect(sha256(yield* Fiber.join(visit))).toBe(sha256(payload))
    }))

  it.scoped("against a bore server (no lease), the client asks for its old port and retries while it is in use", () =>
    Effect.gen(function*() {
      // A scripted bore server: the first Hello gets port 20417; the next one finds the port
      // still held (bore frees it only when a heartbeat write fails); the one after gets it.
      const hellos: Array<string> = []
      const replies = ["{\"Hello\":20417}", "{\"Error\":\"port already in use\"}", "{\"Hello\":20417}"]
      const controls: Array<net.Socket> = []
      const server = yield* listen({ host: LOOPBACK, port: 0 }, (socket) =>
        Effect.gen(function*() {
          const peer = wirePeer(socket)
          const hello = yield* peer.next
          hellos.push(hello ?? "")
          const reply = replies[hellos.length - 1] ?? "{\"Error\":\"no more\"}"
          peer.send(reply)
          if (reply.startsWith("{\"Error\"")) return
          controls.push(socket)
          peer.send("\"Heartbeat\"")
          // Like bore, never read again; stay until the client goes.
          yield* Effect.async<void>((resume) => {
            socket.once("close", () => resume(Effect.void))
          })
        }).pipe(Effect.orDie))
      const client = yield* runClient(clientConfig(server.port, 9))
      expect((yield* client.waitFor(isListening)).port).toBe(20417)
      // The server goes away (bore's heartbeats stop too); the client notices at 8 s at the latest.
      controls[0]!.destroy()
      yield* client.waitFor(isLost)
      const failed = yield* client.waitFor(isAttemptFailed)
      expect(failed.reason).toBe("port already in use")
      const back = yield* client.waitFor(isListening)
      expect(back).toEqual({ _tag: "Listening", host: "127.0.0.1", port: 20417, resumed: false })
      // No Resume was ever sent to a server that gave no lease: Hello(0), then Hello(20417) twice.
      expect(hellos).toEqual(["{\"Hello\":0}", "{\"Hello\":20417}", "{\"Hello\":20417}"])
    }))

  it.scoped("authentication failures are fatal and never retried", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const controlPort = yield* startServer({ secret: "s3cret" })
      const statuses: Array<ClientStatus> = []
      const result = yield* Effect.either(Effect.scoped(
        Client.run(clientConfig(controlPort, echo, { secret: "wrong" }), (status) => Effect.sync(() => statuses.push(status))).pipe(
          Effect.provide(clientLayer)
        )
      ))
      expect(Either.isLeft(result) && (result.left as Error).message).toBe("server error: invalid secret")
      expect(statuses).toEqual([])
    }))
})
