/**
 * The server's limits, each driven to its edge by hand-written peers: what the peer over the
 * limit is told, that everyone else is still served, and that a freed slot is given again.
 */
import { describe, expect, it } from "@effect/vitest"
import type * as net from "node:net"
import { randomUUID } from "node:crypto"
import { Effect, Either, Logger, Redacted, TestClock } from "effect"
import { makeAuthenticator } from "../../src/protocol/auth.js"
import type { Uuid } from "../../src/protocol/uuid.js"
import { makeVisitorFilter, parseCidr } from "../../src/visitors/visitor-filter.js"
import { LimitTexts } from "../../src/errors.js"
import type { ServerLimits } from "../../src/limits/limits.js"
import { closed, dial, readExactly, startServer } from "../support/net.js"
import { type WirePeer, wirePeer } from "../support/wire.js"

const settle = Effect.repeatN(Effect.yieldNow(), 20)

/** A server with some limits changed, whose log lines are collected in `logs`. */
const serverWith = (limits: Partial<ServerLimits>, options: { secret?: string; bindTunnels?: string } = {}) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const logger = Logger.make(({ message }) => logs.push(Array.isArray(message) ? message.join(" ") : String(message)))
    const control = yield* startServer({ ...options, limits }).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
    return { control, logs }
  })

const errorFrame = (text: string) => JSON.stringify({ Error: text })

const SECRET = "s3cret"
const WRONG_ANSWER = "00".repeat(32)

/** Connects from `from` and reads the server's Challenge; `answer` is the right reply to it. */
const challenged = (control: number, from: string) =>
  Effect.gen(function*() {
    const peer = wirePeer(yield* dial(control, "127.0.0.1", from))
    const frame = (yield* peer.next) ?? ""
    const challenge = /^\{"Challenge":"([0-9a-f-]{36})"\}$/.exec(frame)?.[1]
    expect(challenge, frame).toBeDefined()
    const answer = makeAuthenticator(Redacted.make(SECRET)).answer(challenge as Uuid)
    return { ...peer, answer, challengeBytes: frame.length + 1 }
  })

/** Opens a tunnel with the right secret from `from`: the peer, the reply to Hello and the port. */
const openTunnelWithSecret = (control: number, from: string) =>
  Effect.gen(function*() {
    const peer = yield* challenged(control, from)
    peer.send(`{"Authenticate":"${peer.answer}"}`)
    peer.send("{\"Hello\":0}")
    const hello = (yield* peer.next) ?? ""
    return { peer, hello, port: Number(/^\{"Hello":(\d+)\}$/.exec(hello)?.[1]) }
  })

/** Opens a tunnel by hand from `from`; returns the peer and the public port. */
const openTunnel = (control: number, from = "127.0.0.1") =>
  Effect.gen(function*() {
    const peer = wirePeer(yield* dial(control, "127.0.0.1", from))
    peer.send("{\"Hello\":0}")
    const hello = (yield* peer.next) ?? ""
    return { peer, hello, port: Number(/^\{"Hello":(\d+)\}$/.exec(hello)?.[1]) }
  })

const connectionId = (peer: WirePeer) =>
  Effect.map(peer.nextNonHeartbeat, (frame) => JSON.parse(frame ?? "{}").Connection as string)

/** A short real pause, so loopback I/O can happen between tries (it times nothing). */
const realPause = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2)))

/** Opens tunnels from `from` until one is granted (the server frees a slot once it sees a close). */
const helloOnceFreed = (control: number, from: string) =>
  Effect.gen(function*() {
    let hello = ""
    for (let attempt = 0; attempt < 50 && !hello.startsWith("{\"Hello\""); attempt++) {
      yield* realPause
      hello = (yield* openTunnel(control, from)).hello
    }
    return hello
  })

/**
 * Whether the server closes `socket` without the test clock moving, so not by any timeout. The
 * real-time bound only keeps a failing test from hanging.
 */
const closedAtOnce = (socket: net.Socket) =>
  Effect.raceFirst(
    Effect.as(closed(socket), true),
    Effect.as(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2000))), false)
  )


describe("server limits", () => {
  it.scoped("--max-handshakes: a full pool closes the oldest handshake of the address holding most, silently, and serves the newcomer", () =>
    Effect.gen(function*() {
      const { control, logs } = yield* serverWith({ maxHandshakes: 3 })
      const { peer, port } = yield* openTunnel(control, "127.0.0.2")
      // Three silent sockets from one address fill the pool.
      const silent = [yield* dial(control, "127.0.0.1", "127.0.0.9"), yield* dial(control, "127.0.0.1", "127.0.0.9"), yield* dial(control, "127.0.0.1", "127.0.0.9")]
      yield* settle
      yield* realPause
      // A data stream from the tunnel's address takes the place of the oldest silent one.
      yield* dial(port)
      const id = yield* connectionId(peer)
      const data = wirePeer(yield* dial(control, "127.0.0.1", "127.0.0.2"))
      data.send(`{"Accept":"${id}"}`)
      expect(yield* closedAtOnce(silent[0]!)).toBe(true)
      expect(silent[0]!.bytesRead).toBe(0)
      // Newcomers from an address of their own fill the pool again, and then the heaviest address
      // (127.0.0.9, two) pays, not the newcomers' (one).
      const others = [yield* dial(control, "127.0.0.1", "127.0.0.8")]
      yield* settle
      yield* realPause
      others.push(yield* dial(control, "127.0.0.1", "127.0.0.8"))
      expect(yield* closedAtOnce(silent[1]!)).toBe(true)
      expect(silent[1]!.bytesRead).toBe(0)
      expect(silent[2]!.destroyed).toBe(false)
      expect(others.every((socket) => !socket.destroyed)).toBe(true)
      expect(logs.some((line) => /closed a handshake from 127\.0\.0\.9 to make room for one from 127\.0\.0\.2: 3 handshakes in progress \(--max-handshakes\)/.test(line))).toBe(true)
      // And a new tunnel opens while the pool is full.
      expect((yield* openTunnel(control, "127.0.0.3")).hello).toMatch(/^\{"Hello":\d+\}$/)
    }))

  it.scoped("--max-conns-per-ip: a second tunnel from one address is refused, other addresses are not", () =>
    Effect.gen(function*() {
      const { control, logs } = yield* serverWith({ maxConnsPerIp: 1 })
      const first = yield* openTunnel(control, "127.0.0.2")
      expect(first.hello).toMatch(/^\{"Hello":\d+\}$/)
      const second = yield* openTunnel(control, "127.0.0.2")
      expect(second.hello).toBe(errorFrame(LimitTexts.connsPerIp))
      expect(yield* second.peer.next).toBeUndefined()
      expect(logs.some((line) => /refused 127\.0\.0\.2: 1 tunnel connections already open/.test(line))).toBe(true)
      expect((yield* openTunnel(control, "127.0.0.3")).hello).toMatch(/^\{"Hello":\d+\}$/)

      // Data streams from the same address are not control connections: a visitor still flows.
      const visitor = yield* dial(first.port)
      const id = yield* connectionId(first.peer)
      const data = yield* dial(control, "127.0.0.1", "127.0.0.2")
      data.write(`{"Accept":"${id}"}\0hello`)
      const got = yield* Effect.async<string>((resume) => {
        visitor.once("data", (chunk) => resume(Effect.succeed(chunk.toString())))
      })
      expect(got).toBe("hello")

      // Once the first tunnel closes, its address may open another.
      first.peer.socket.destroy()
      yield* closed(first.peer.socket)
      expect(yield* helloOnceFreed(control, "127.0.0.2")).toMatch(/^\{"Hello":\d+\}$/)
    }))

  it.scoped("--max-tunnels: a tunnel beyond it is refused until one closes", () =>
    Effect.gen(function*() {
      const { control, logs } = yield* serverWith({ maxTunnels: 1 })
      const first = yield* openTunnel(control)
      expect(first.hello).toMatch(/^\{"Hello":\d+\}$/)
      const second = yield* openTunnel(control, "127.0.0.2")
      expect(second.hello).toBe(errorFrame(LimitTexts.tunnels))
      expect(logs.some((line) => /1 tunnels already open \(--max-tunnels\)/.test(line))).toBe(true)
      first.peer.socket.destroy()
      expect(yield* helloOnceFreed(control, "127.0.0.2")).toMatch(/^\{"Hello":\d+\}$/)
    }))

  it.scoped("--max-pending: a visitor beyond it is closed at once and never announced", () =>
    Effect.gen(function*() {
      const { control, logs } = yield* serverWith({ maxPending: 2 })
      const { peer, port } = yield* openTunnel(control)
      const waiting = [yield* dial(port), yield* dial(port)]
      const ids = [yield* connectionId(peer), yield* connectionId(peer)]
      expect(new Set(ids).size).toBe(2)
      const third = yield* dial(port)
      expect(yield* closedAtOnce(third)).toBe(true)
      expect(logs.some((line) => /closed: 2 visitors already waiting \(--max-pending\)/.test(line))).toBe(true)
      // Only heartbeats follow: the third was never announced.
      yield* TestClock.adjust("500 millis")
      expect(yield* peer.next).toBe("\"Heartbeat\"")
      // Claiming one makes room for a new visitor.
      const data = yield* dial(control)
      data.write(`{"Accept":"${ids[0]}"}\0claimed`)
      // The claim is done once its payload reaches one of the waiting visitors.
      yield* Effect.raceAll(waiting.map((socket) =>
        Effect.async<void>((resume) => {
          socket.once("data", () => resume(Effect.void))
        })))
      yield* dial(port)
      expect(yield* connectionId(peer)).toMatch(/^[0-9a-f-]{36}$/)
    }))

  it.scoped("--max-conns-per-tunnel: waiting and forwarded visitors together are bounded", () =>
    Effect.gen(function*() {
      const { control, logs } = yield* serverWith({ maxConnsPerTunnel: 2 })
      const { peer, port } = yield* openTunnel(control)
      const forwarded = yield* dial(port)
      const data = yield* dial(control)
      data.write(`{"Accept":"${yield* connectionId(peer)}"}\0`)
      yield* dial(port)
      yield* connectionId(peer)
      const third = yield* dial(port)
      expect(yield* closedAtOnce(third)).toBe(true)
      expect(logs.some((line) => /2 visitors already connected \(--max-conns-per-tunnel\)/.test(line))).toBe(true)
      // The forwarded visitor leaves: a new one is served.
      forwarded.destroy()
      data.destroy()
      yield* closed(data)
      let announced = false
      for (let attempt = 0; attempt < 50 && !announced; attempt++) {
        yield* realPause
        const next = yield* dial(port)
        // Until the server has seen the forwarded visitor leave (later under load), a newcomer is
        // still refused: closed at once, and nothing announced to wait for.
        const refused = yield* Effect.raceFirst(
          Effect.as(closed(next), true),
          Effect.as(Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1000))), false)
        )
        if (refused) continue
        yield* TestClock.adjust("500 millis")
        const frame = yield* peer.nextNonHeartbeat
        announced = frame?.startsWith("{\"Connection\"") === true
        if (!announced) next.destroy()
      }
      expect(announced).toBe(true)
    }))

  it.scoped("repeated wrong secrets lock out that address's new tunnels for a minute, not its open tunnel's data streams, nor other addresses", () =>
    Effect.gen(function*() {
      const { control, logs } = yield* serverWith({}, { secret: SECRET })
      // The address already has a tunnel open, with the right secret.
      const tunnel = yield* openTunnelWithSecret(control, "127.0.0.5")
      expect(tunnel.hello).toMatch(/^\{"Hello":\d+\}$/)
      for (let attempt = 0; attempt < 5; attempt++) {
        const peer = yield* challenged(control, "127.0.0.5")
        peer.send(`{"Authenticate":"${WRONG_ANSWER}"}`)
        expect(yield* peer.next).toBe(errorFrame("invalid secret"))
      }
      expect(logs.some((line) => /127\.0\.0\.5 locked out for a minute/.test(line))).toBe(true)
      // A new tunnel is refused after the challenge, with the right answer as with a wrong one.
      const right = yield* openTunnelWithSecret(control, "127.0.0.5")
      expect(right.hello).toBe(errorFrame(LimitTexts.authLockout))
      const wrong = yield* challenged(control, "127.0.0.5")
      wrong.send(`{"Authenticate":"${WRONG_ANSWER}"}`)
      expect(yield* wrong.next).toBe(errorFrame(LimitTexts.authLockout))
      // The open tunnel still serves its visitors: its data streams prove themselves.
      const visitor = yield* dial(tunnel.port)
      const id = yield* connectionId(tunnel.peer)
      const data = yield* challenged(control, "127.0.0.5")
      data.socket.write(`{"Authenticate":"${data.answer}"}\0{"Accept":"${id}"}\0hello`)
      expect((yield* readExactly(visitor, 5)).toString()).toBe("hello")
      // Another address is served as usual.
      expect((yield* openTunnelWithSecret(control, "127.0.0.6")).hello).toMatch(/^\{"Hello":\d+\}$/)
      // A minute later the address may open tunnels again.
      yield* TestClock.adjust("61 seconds")
      expect((yield* openTunnelWithSecret(control, "127.0.0.5")).hello).toMatch(/^\{"Hello":\d+\}$/)
    }))

  it.scoped("connections that close or fall silent during the challenge never lock an address out", () =>
    Effect.gen(function*() {
      const { control } = yield* serverWith({}, { secret: SECRET })
      // 20 bare connect-and-close (a health check, a port scan).
      for (let attempt = 0; attempt < 20; attempt++) {
        const peer = yield* challenged(control, "127.0.0.7")
        peer.socket.end()
        yield* closed(peer.socket)
      }
      // 10 that say nothing until the handshake times out.
      const silent = yield* Effect.forEach(Array.from({ length: 10 }), () => challenged(control, "127.0.0.7"))
      yield* TestClock.adjust("3 seconds")
      for (const peer of silent) expect(yield* peer.next).toBe(errorFrame("timed out waiting for initial message"))
      expect((yield* openTunnelWithSecret(control, "127.0.0.7")).hello).toMatch(/^\{"Hello":\d+\}$/)
    }))

  it.scoped("a wrong answer with an Accept behind it (a data stream) is closed without one byte; alone, it is told invalid secret", () =>
    Effect.gen(function*() {
      const { control } = yield* serverWith({}, { secret: SECRET })
      const data = yield* challenged(control, "127.0.0.4")
      data.socket.write(`{"Authenticate":"${WRONG_ANSWER}"}\0{"Accept":"${randomUUID()}"}\0`)
      expect(yield* data.next).toBeUndefined()
      // Only the challenge was ever sent.
      expect(data.socket.bytesRead).toBe(data.challengeBytes)
      const alone = yield* challenged(control, "127.0.0.4")
      alone.send(`{"Authenticate":"${WRONG_ANSWER}"}`)
      expect(yield* alone.next).toBe(errorFrame("invalid secret"))
    }))

  it.scoped("on a dual-stack tunnel port, IPv6 rules match IPv6 visitors and IPv4 rules match mapped IPv4 visitors", () =>
    Effect.gen(function*() {
      const { control } = yield* serverWith({
        visitors: makeVisitorFilter(
          [Either.getOrThrow(parseCidr("127.0.0.0/8")), Either.getOrThrow(parseCidr("::1"))],
          [Either.getOrThrow(parseCidr("::1/128"))]
        )
      }, { bindTunnels: "::" })
      const { peer, port } = yield* openTunnel(control)
      // ::1 is allowed and denied: the deny wins.
      const denied = yield* dial(port, "::1")
      expect(yield* closedAtOnce(denied)).toBe(true)
      // An IPv4 visitor reaches an IPv6 listener as ::ffff:127.0.0.1, and 127.0.0.0/8 allows it.
      const mapped = yield* dial(port, "127.0.0.1")
      expect(yield* connectionId(peer)).toMatch(/^[0-9a-f-]{36}$/)
      expect(mapped.destroyed).toBe(false)
    }))

  it.scoped("--deny-visitor and --allow-visitor: refused visitors are closed before any Connection", () =>
    Effect.gen(function*() {
      const parse = (text: string) => {
        const parsed = parseCidr(text)
        if (parsed._tag === "Left") throw new Error(parsed.left)
        return parsed.right
      }
      const { control, logs } = yield* serverWith({
        visitors: makeVisitorFilter([parse("127.0.0.0/29")], [parse("127.0.0.4/32")])
      })
      const { peer, port } = yield* openTunnel(control)
      const denied = yield* dial(port, "127.0.0.1", "127.0.0.4")
      expect(yield* closedAtOnce(denied)).toBe(true)
      const notAllowed = yield* dial(port, "127.0.0.1", "127.0.0.9")
      expect(yield* closedAtOnce(notAllowed)).toBe(true)
      expect(logs.some((line) => /visitor 127\.0\.0\.4:\d+ of port \d+ closed: its address is not allowed/.test(line))).toBe(true)
      const allowed = yield* dial(port, "127.0.0.1", "127.0.0.2")
      expect(yield* connectionId(peer)).toMatch(/^[0-9a-f-]{36}$/)
      expect(allowed.destroyed).toBe(false)
    }))
})
