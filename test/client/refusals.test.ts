/**
 * A server that turns the client away for now: its limits' Error frames (before the challenge, as
 * older Spore servers send them, or as the reply to Hello), or a close before any frame. The
 * client retries those with backoff and reports the server's own text; only a wrong secret, a
 * server that really needs none (silent for the whole 3 s handshake, or a first frame that is not
 * a Challenge) and the other fatal texts end it.
 *
 * The server is scripted, on 127.0.0.1: the current Spore server no longer sends a refusal before
 * its challenge, but older ones do. The TestClock moves only where a test says so (the backoff
 * delays, the handshake timeout); every refusal and answer happens in real time meanwhile.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as net from "node:net"
import { Chunk, Clock, Duration, Effect, Either, Fiber, Logger, Option, Queue, Redacted, TestClock, TestServices } from "effect"
import * as Client from "../../src/client/client.js"
import type { ClientStatus } from "../../src/client/status.js"
import type { ClientConfig } from "../../src/client/config.js"
import { statusLine } from "../../src/cli/tunnel-flags.js"
import { listen } from "../../src/net/listener.js"
import { makeAuthenticator } from "../../src/protocol/auth.js"
import { encodeServerMessage, ServerMessages } from "../../src/protocol/messages.js"
import { randomUuid } from "../../src/protocol/uuid.js"
import { LimitTexts } from "../../src/errors.js"
import { clientLayer } from "../support/client.js"
import { letIoHappen } from "../support/io.js"
import { clientConfig, LOOPBACK } from "../support/net.js"
import { type WirePeer, wirePeer } from "../support/wire.js"

const SECRET = "s3cret"
const PUBLIC_PORT = 20417
const NO_SECRET_REQUIRED = "expected authentication challenge, but no secret was required"

/** Any real-time wait of a test: on loopback it ends in milliseconds, this only bounds a failure. */
const watchdog = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>) =>
  TestServices.provideWithLive(effect, (waiting) =>
    Effect.timeoutFail(waiting, { duration: Duration.seconds(5), onTimeout: () => new Error(`not within 5 s: ${what}`) }))


/** Repeats `check` in real time until it holds. */
const until = (what: string, check: Effect.Effect<boolean>) =>
  watchdog(what, Effect.gen(function*() {
    while (!(yield* check)) yield* letIoHappen
  }))

const frame = (message: Parameters<typeof encodeServerMessage>[0]) => encodeServerMessage(message)
const errorFrame = (text: string) => frame(ServerMessages.error(text))

/** Ends our side once what we wrote has gone out. */
const end = (socket: net.Socket) => Effect.async<void>((resume) => void socket.end(() => resume(Effect.void)))

/** Stays until the client closes the connection. */
const untilClosed = (socket: net.Socket) =>
  Effect.async<void>((resume) => {
    if (socket.destroyed) return resume(Effect.void)
    socket.once("close", () => resume(Effect.void))
  })

/** What the scripted server does with one connection. */
type Behaviour = (peer: WirePeer) => Effect.Effect<void, Error>

/** A server as bore's: the challenge when it has a secret, then a Hello reply and heartbeats. */
const serveTunnel = (secret: string | undefined): Behaviour => (peer) =>
  Effect.gen(function*() {
    if (secret !== undefined) {
      const challenge = yield* randomUuid
      peer.send(frame(ServerMessages.challenge(challenge)))
      const reply = JSON.parse((yield* peer.next) ?? "null") as { Authenticate?: string } | null
      if (!makeAuthenticator(Redacted.make(secret)).validate(challenge, reply?.Authenticate ?? "")) {
        peer.send(errorFrame("invalid secret"))
        return yield* end(peer.socket)
      }
    }
    const hello = yield* peer.next
    if (hello?.startsWith("{\"Hello\"") !== true) return yield* end(peer.socket)
    peer.send(frame(ServerMessages.hello(PUBLIC_PORT)))
    peer.send(frame(ServerMessages.heartbeat))
    yield* untilClosed(peer.socket)
  })

/**
 * Refuses with `text` where the client reads its first frame: before the challenge when the
 * client has a secret (as an older Spore server did), else as the reply to its Hello; then closes.
 */
const refuseWith = (text: string, clientHasSecret: boolean): Behaviour => (peer) =>
  Effect.gen(function*() {
    if (!clientHasSecret) yield* peer.next
    peer.send(errorFrame(text))
    yield* end(peer.socket)
  })

/** Closes at once, saying nothing (a busy server turning away what might be a data stream). */
const closeAtOnce: Behaviour = (peer) => end(peer.socket)

/** Says nothing for `millis` of the TestClock, then closes (bore's server gives up at 3 s). */
const closeAfter = (millis: number): Behaviour => (peer) => Effect.zipRight(Effect.sleep(Duration.millis(millis)), end(peer.socket))

/** Says nothing, ever. */
const staySilent: Behaviour = (peer) => untilClosed(peer.socket)

/** A scripted server: connection `i` (from 0) gets `script[i]`, later ones `rest`. */
const scriptedServer = (script: ReadonlyArray<Behaviour>, rest: Behaviour) =>
  Effect.gen(function*() {
    let accepted = 0
    const listener = yield* listen({ host: LOOPBACK, port: 0 }, (socket) => {
      const behaviour = script[accepted] ?? rest
      accepted++
      return behaviour(wirePeer(socket)).pipe(Effect.ignore)
    })
    return { port: listener.port, accepted: () => accepted }
  })

/** Runs Client.run (reconnecting) in the background, its reports queued. */
const runClient = (config: ClientConfig) =>
  Effect.gen(function*() {
    const statuses = yield* Queue.unbounded<ClientStatus>()
    const fiber = yield* Effect.forkScoped(
      Effect.either(Client.run(config, (status) => Queue.offer(statuses, status)).pipe(Effect.provide(clientLayer)))
    )
    /** The next report, waited for in real time (the clock stands still). */
    const next = watchdog("the client's next report", Queue.take(statuses))
    return { fiber, next, statuses }
  })

/**
 * Lets the backoff sleep of `delay` run out: once the client's fiber is asleep on the TestClock
 * until exactly then, the clock moves by that much.
 */
const wakeAfter = (delay: Duration.Duration) =>
  Effect.gen(function*() {
    const wakeAt = (yield* Clock.currentTimeMillis) + Duration.toMillis(delay)
    yield* until("the client sleeps out its backoff", Effect.map(TestClock.sleeps(), Chunk.some((at) => Math.abs(at - wakeAt) < 1)))
    yield* TestClock.adjust(Duration.millis(Math.ceil(Duration.toMillis(delay))))
  })

/**
 * Waits until the client waits for its first frame: its connect timeout and its 3 s handshake
 * timeout are queued on the clock (which has not moved since the test began).
 */
const clientAwaitsFirstFrame = until(
  "the client waits for the server's first frame",
  Effect.map(TestClock.sleeps(), (sleeps) => Chunk.size(Chunk.filter(sleeps, (at) => at === 3000)) >= 2)
)

const expectRetried = (status: ClientStatus, reason: string, delay: { readonly min: number; readonly max: number }) => {
  expect(status).toEqual({ _tag: "AttemptFailed", reason })
  return (retry: ClientStatus) => {
    expect(retry._tag).toBe("Retrying")
    const millis = retry._tag === "Retrying" ? Duration.toMillis(retry.delay) : -1
    expect(millis).toBeGreaterThanOrEqual(delay.min)
    expect(millis).toBeLessThanOrEqual(delay.max)
    return retry._tag === "Retrying" ? retry.delay : Duration.zero
  }
}

/** Twice refused (`first`, `second`), retried after ~1 s then ~2 s, then listening. */
const expectRefusedTwiceThenListening = (
  client: Effect.Effect.Success<ReturnType<typeof runClient>>,
  reason: string
) =>
  Effect.gen(function*() {
    const firstDelay = expectRetried(yield* client.next, reason, { min: 750, max: 1250 })(yield* client.next)
    yield* wakeAfter(firstDelay)
    const secondDelay = expectRetried(yield* client.next, reason, { min: 1500, max: 2500 })(yield* client.next)
    yield* wakeAfter(secondDelay)
    expect(yield* client.next).toEqual({ _tag: "Listening", host: LOOPBACK, port: PUBLIC_PORT, resumed: false })
    expect(Option.isNone(yield* Fiber.poll(client.fiber))).toBe(true)
  })

/** Runs the client against `server` until it fails; nothing may be reported on the way. */
const expectFatal = (client: Effect.Effect.Success<ReturnType<typeof runClient>>, tag: string, message: string) =>
  Effect.gen(function*() {
    const result = yield* watchdog("the client gives up", Fiber.join(client.fiber))
    expect(Either.isLeft(result) && (result.left as { _tag: string })._tag).toBe(tag)
    expect(Either.isLeft(result) && (result.left as Error).message).toBe(message)
    expect(yield* Queue.takeAll(client.statuses).pipe(Effect.map(Chunk.toArray))).toEqual([])
  })

describe("refusals the client retries", () => {
  for (const text of Object.values(LimitTexts)) {
    for (const secret of [SECRET, undefined]) {
      const where = secret === undefined ? "as the reply to Hello" : "before the challenge"
      it.scoped(`"${text}" ${where} is retried with backoff, and reported in the server's words`, () =>
        Effect.gen(function*() {
          const refuse = refuseWith(text, secret !== undefined)
          const server = yield* scriptedServer([refuse, refuse], serveTunnel(secret))
          const client = yield* runClient(clientConfig(server.port, 9, secret === undefined ? {} : { secret }))
          yield* expectRefusedTwiceThenListening(client, text)
          expect(server.accepted()).toBe(3)
        }))
    }
  }

  it("the status line is the server's text", () => {
    expect(statusLine({ _tag: "AttemptFailed", reason: LimitTexts.handshakes })).toBe(
      "could not reach the server: server is busy, try again later"
    )
  })

  it.scoped("a close before the challenge, at once, is retried", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer([closeAtOnce, closeAtOnce], serveTunnel(SECRET))
      const client = yield* runClient(clientConfig(server.port, 9, { secret: SECRET }))
      yield* expectRefusedTwiceThenListening(client, "the server closed the connection before its challenge")
    }))

  it.scoped("a close 2.4 s into the silence (before bore's 3 s timeout could explain it) is retried", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer([closeAfter(2400)], serveTunnel(SECRET))
      const client = yield* runClient(clientConfig(server.port, 9, { secret: SECRET }))
      yield* clientAwaitsFirstFrame
      yield* TestClock.adjust("2400 millis")
      const delay = expectRetried(yield* client.next, "the server closed the connection before its challenge", { min: 750, max: 1250 })(
        yield* client.next
      )
      yield* wakeAfter(delay)
      expect((yield* client.next)._tag).toBe("Listening")
    }))

  it.scoped("without a secret, a close before the Hello reply is retried", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer([closeAtOnce, closeAtOnce], serveTunnel(undefined))
      const client = yield* runClient(clientConfig(server.port, 9))
      yield* expectRefusedTwiceThenListening(client, "unexpected EOF")
    }))

  it.scoped("a visitor whose data stream is refused is dropped with the server's text; the tunnel carries on", () =>
    Effect.gen(function*() {
      const logs: Array<string> = []
      const visitor = "6f1d7a52-8c2e-4b1a-9f3d-2e5c7b8a9d01"
      let control: net.Socket | undefined
      const server = yield* scriptedServer([
        (peer) =>
          Effect.gen(function*() {
            control = peer.socket
            const challenge = yield* randomUuid
            peer.send(frame(ServerMessages.challenge(challenge)))
            yield* peer.next
            yield* peer.next
            peer.send(frame(ServerMessages.hello(PUBLIC_PORT)))
            peer.send(frame(ServerMessages.connection(visitor as never)))
            yield* untilClosed(peer.socket)
          }),
        refuseWith(LimitTexts.handshakes, true)
      ], staySilent)
      const logger = Logger.make(({ message }) => logs.push(Array.isArray(message) ? message.join(" ") : String(message)))
      const statuses = yield* Queue.unbounded<ClientStatus>()
      yield* Effect.forkScoped(
        Client.run(clientConfig(server.port, 9, { secret: SECRET }), (status) => Queue.offer(statuses, status)).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
          Effect.provide(clientLayer)
        )
      )
      expect((yield* watchdog("listening", Queue.take(statuses)))._tag).toBe("Listening")
      yield* until("the visitor is dropped", Effect.sync(() => logs.some((line) => line.includes(`visitor ${visitor} dropped`))))
      expect(logs).toContain(`visitor ${visitor} dropped: server error: server is busy, try again later`)
      expect(server.accepted()).toBe(2)
      expect(yield* Queue.takeAll(statuses).pipe(Effect.map(Chunk.toArray))).toEqual([])
      expect(control?.destroyed).toBe(false)
    }))
})

describe("what the client does not retry", () => {
  it.scoped("a server silent for the whole 3 s handshake needed no secret (fatal)", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer([], staySilent)
      const client = yield* runClient(clientConfig(server.port, 9, { secret: SECRET }))
      yield* clientAwaitsFirstFrame
      yield* TestClock.adjust("2999 millis")
      yield* letIoHappen
      expect(Option.isNone(yield* Fiber.poll(client.fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      yield* expectFatal(client, "AuthenticationError", NO_SECRET_REQUIRED)
      expect(server.accepted()).toBe(1)
    }))

  for (const millis of [2600, 3000]) {
    it.scoped(`a server that closes after ${millis} ms of silence (bore's server without a secret, at its 3 s timeout) is fatal`, () =>
      Effect.gen(function*() {
        const server = yield* scriptedServer([], closeAfter(millis))
        const client = yield* runClient(clientConfig(server.port, 9, { secret: SECRET }))
        yield* clientAwaitsFirstFrame
        yield* TestClock.adjust(Duration.millis(millis))
        yield* expectFatal(client, "AuthenticationError", NO_SECRET_REQUIRED)
        expect(server.accepted()).toBe(1)
      }))
  }

  it.scoped("a Hello where the challenge should be means the server needs no secret (fatal)", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer([], (peer) => Effect.zipRight(Effect.sync(() => peer.send("{\"Hello\":1}")), untilClosed(peer.socket)))
      const client = yield* runClient(clientConfig(server.port, 9, { secret: SECRET }))
      yield* expectFatal(client, "AuthenticationError", NO_SECRET_REQUIRED)
    }))

  it.scoped("\"invalid secret\" in reply to the answer is fatal", () =>
    Effect.gen(function*() {
      const server = yield* scriptedServer([], serveTunnel("another secret"))
      const client = yield* runClient(clientConfig(server.port, 9, { secret: SECRET }))
      yield* expectFatal(client, "ServerRejected", "server error: invalid secret")
      expect(server.accepted()).toBe(1)
    }))

  for (const text of ["invalid secret", "server requires secret, but no secret was provided", "permission denied"]) {
    it.scoped(`"${text}" before the challenge is fatal`, () =>
      Effect.gen(function*() {
        const server = yield* scriptedServer([], refuseWith(text, true))
        const client = yield* runClient(clientConfig(server.port, 9, { secret: SECRET }))
        yield* expectFatal(client, "ServerRejected", `server error: ${text}`)
        expect(server.accepted()).toBe(1)
      }))
  }
})
