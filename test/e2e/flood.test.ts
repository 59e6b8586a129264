/**
 * A flood on 127.0.0.1, bounded in time: while an honest tunnel carries 256 MiB, 2,000 hostile
 * connections arrive at the control port (silent, garbage, oversized frames, one byte a second,
 * unknown Accept ids, wrong secrets). The honest bytes arrive intact, every hostile connection
 * gets its clear error and is closed within the handshake timeout, the tunnel still serves new
 * visitors, and the server's descriptors and memory come back to where they were.
 *
 * Server and client are the real executable (their RSS and descriptors are read from /proc), so
 * timeouts run in real time here; each wait is bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomFillSync } from "node:crypto"
import { readdirSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as net from "node:net"
import { Effect, Fiber } from "effect"
import { LimitTexts } from "../../src/errors.js"
import { HOSTILE_KINDS, type HostileKind, type HostileOutcome, runHostile } from "../support/hostile.js"
import { freePort, hashingService, LOOPBACK } from "../support/net.js"
import { type Running, startSpore, within } from "../support/process.js"

const GC_ON_SIGNAL = fileURLToPath(new URL("../support/gc-on-signal.cjs", import.meta.url))

const SECRET = "flood-test-secret"
const HONEST_BYTES = 256 * 1024 * 1024
const HOSTILE_CONNECTIONS = 2000
/** Hostile connections are opened in batches, so the listen backlog never overflows. */
const BATCH = 100
/** The server's handshake timeout (bore's 3 s). */
const HANDSHAKE_TIMEOUT_MS = 3000
/**
 * How late a close may be seen here: this process's own event loop is busy moving 256 MiB and
 * thousands of sockets while it timestamps the closes (a whole-suite run on two cores once saw
 * 4.52 s for closes the server made at 3 s, each with its timeout frame).
 */
const OBSERVATION_SLACK_MS = 2000
/**
 * What the server may hold after the flood beyond the baseline, garbage collected: 2,000 leaked
 * connections would hold far more (about 35 KiB each).
 */
const HEAP_SLACK_KIB = 4 * 1024
/**
 * RSS also counts pages V8 and malloc keep for reuse, which vary between rounds (up to ~21 MiB
 * seen when the whole suite runs at once); 2,000 connections kept would be ~80 MiB.
 */
const RSS_SLACK_KIB = 48 * 1024

const openDescriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length

/** Waits (at most 10 s) until the process has at most `target` descriptors open (0: until stable); returns how many. */
const descriptorsBackTo = (pid: number, target: number) =>
  Effect.gen(function*() {
    let open = openDescriptors(pid)
    for (let wait = 0; wait < 100; wait++) {
      yield* Effect.sleep("100 millis")
      const now = openDescriptors(pid)
      if (target > 0 ? now <= target : now === open) return now
      open = now
    }
    return open
  })

const MEMORY_LINE = /memory after gc: heapUsed=(\d+) rss=(\d+)/g

/** Has the server collect its garbage (test/support/gc-on-signal.cjs) and reports what it holds, in KiB. */
const memoryAfterGc = (server: Running) =>
  Effect.gen(function*() {
    const before = [...server.stderr().matchAll(MEMORY_LINE)].length
    server.child.kill("SIGUSR2")
    for (let wait = 0; wait < 100; wait++) {
      const lines = [...server.stderr().matchAll(MEMORY_LINE)]
      if (lines.length > before) {
        const [, heapUsed, rss] = lines.at(-1)!
        return { heapUsed: Number(heapUsed), rss: Number(rss) }
      }
      yield* Effect.sleep("100 millis")
    }
    return yield* Effect.fail(new Error("the server did not report its memory"))
  })


/** Sends `total` random bytes to the tunnel, honouring backpressure; true if the service saw them all, in order. */
const honestTransfer = (port: number, total: number) =>
  Effect.async<boolean, Error>((resume) => {
    const hash = createHash("sha256")
    const chunk = Buffer.alloc(1024 * 1024)
    const socket = net.connect({ host: LOOPBACK, port, allowHalfOpen: true })
    let sent = 0
    let reply = ""
    const pump = () => {
      while (sent < total) {
        randomFillSync(chunk)
        hash.update(chunk)
        sent += chunk.length
        if (!socket.write(Buffer.from(chunk))) return void socket.once("drain", pump)
      }
      socket.end()
    }
    socket.once("connect", pump)
    socket.on("data", (data: Buffer) => (reply += data.toString()))
    socket.once("end", () => resume(Effect.succeed(reply === `${total} ${hash.digest("hex")}`)))
    socket.once("error", (error) => resume(Effect.fail(error)))
    return Effect.sync(() => socket.destroy())
  })

/**
 * Each kind of each wave comes from 50 addresses of its own, so that one kind's lockout never
 * hides another's errors, and the warm-up's lockouts do not carry over.
 */
const sourceAddress = (wave: number, kind: HostileKind, n: number) => `127.${10 + wave}.${HOSTILE_KINDS.indexOf(kind)}.${1 + (n % 50)}`

const flood = (controlPort: number, count: number, wave: number) =>
  Effect.gen(function*() {
    const outcomes: Array<Promise<HostileOutcome>> = []
    for (let n = 0; n < count; n++) {
      const kind = HOSTILE_KINDS[n % HOSTILE_KINDS.length]!
      outcomes.push(runHostile(kind, controlPort, sourceAddress(wave, kind, n), SECRET))
      if (n % BATCH === BATCH - 1) yield* Effect.sleep("50 millis")
    }
    return yield* Effect.promise(() => Promise.all(outcomes))
  })

const errorFrame = (text: string) => JSON.stringify({ Error: text })
const CHALLENGE = /^\{"Challenge":"[0-9a-f-]{36}"\}$/

/** What each kind is told after its Challenge, before the close (bore's texts). */
const expectedReplies: Record<HostileKind, ReadonlyArray<string>> = {
  silent: [errorFrame("timed out waiting for initial message")],
  slow: [errorFrame("timed out waiting for initial message")],
  garbage: [errorFrame("unable to parse message")],
  oversized: [errorFrame("frame error, invalid byte length")],
  // A wrong id after a good handshake: a silent close, as bore does.
  "unknown-accept": [],
  "wrong-secret": [errorFrame("invalid secret")]
}

describe("flood", () => {
  it.live("2,000 hostile connections during a 256 MiB transfer: it arrives intact, they are closed in time, nothing leaks", () =>
    Effect.gen(function*() {
      const service = yield* hashingService
      const controlPort = yield* freePort
      const server = yield* startSpore(
        ["server", "--bind-addr", LOOPBACK, "--control-port", String(controlPort), "--min-port", "34000", "--max-port", "34100",
          // Every hostile connection reaches its own bad-input path instead of being closed to
          // make room in the handshake pool (that has its own tests).
          "--max-handshakes", "4000"],
        { SPORE_SECRET: SECRET, NODE_OPTIONS: `--expose-gc --require ${GC_ON_SIGNAL}` },
        { lifetimeMs: 150_000 }
      )
      yield* within("server start", 15, server.waitFor(/server listening/))
      const client = yield* startSpore(
        ["local", String(service.port), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", String(controlPort)],
        { SPORE_SECRET: SECRET },
        { lifetimeMs: 150_000 }
      )
      const tunnelPort = Number((yield* within("tunnel", 15, client.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
      const pid = server.child.pid!

      // A first round of the same size warms up every path and grows the heap to what such a
      // flood needs; the baseline is taken after it, so a leak shows as growth in the second.
      const warmUp = yield* Effect.fork(honestTransfer(tunnelPort, HONEST_BYTES))
      yield* within("warm-up flood", 60, flood(controlPort, HOSTILE_CONNECTIONS, 1))
      expect(yield* within("warm-up transfer", 60, Fiber.join(warmUp))).toBe(true)
      yield* descriptorsBackTo(pid, 0)
      const baseline = { descriptors: openDescriptors(pid), memory: yield* memoryAfterGc(server) }

      const transfer = yield* Effect.fork(within("honest transfer", 120, honestTransfer(tunnelPort, HONEST_BYTES)))
      const outcomes = yield* within("flood", 60, flood(controlPort, HOSTILE_CONNECTIONS, 0))
      expect(yield* Fiber.join(transfer)).toBe(true)

      expect(outcomes).toHaveLength(HOSTILE_CONNECTIONS)
      const late = outcomes.filter((outcome) => outcome.closedAfterMs === undefined || outcome.closedAfterMs > HANDSHAKE_TIMEOUT_MS + OBSERVATION_SLACK_MS)
      expect(late).toEqual([])
      let lockedOut = 0
      for (const outcome of outcomes) {
        // Past five failures within a minute an address is locked out: it is told so instead.
        if (outcome.kind === "wrong-secret" && outcome.frames[1] === errorFrame(LimitTexts.authLockout)) {
          expect(outcome.frames[0]).toMatch(CHALLENGE)
          expect(outcome.frames).toHaveLength(2)
          lockedOut++
          continue
        }
        expect(outcome.frames[0], outcome.kind).toMatch(CHALLENGE)
        expect(outcome.frames.slice(1), outcome.kind).toEqual(expectedReplies[outcome.kind])
      }
      expect(lockedOut).toBeGreaterThan(0)

      // The tunnel still takes new visitors (each needs a new data connection and handshake).
      expect(yield* within("a visitor after the flood", 30, honestTransfer(tunnelPort, 1024 * 1024))).toBe(true)

      // Descriptors come back to the baseline exactly; once garbage is collected, memory too.
      const descriptors = yield* descriptorsBackTo(pid, baseline.descriptors)
      const memory = yield* memoryAfterGc(server)
      console.log(`flood: server descriptors ${baseline.descriptors} -> ${descriptors}, ` +
        `heap ${baseline.memory.heapUsed} -> ${memory.heapUsed} KiB, RSS ${baseline.memory.rss} -> ${memory.rss} KiB`)
      expect(descriptors).toBeLessThanOrEqual(baseline.descriptors)
      expect(memory.heapUsed - baseline.memory.heapUsed).toBeLessThan(HEAP_SLACK_KIB)
      expect(memory.rss - baseline.memory.rss).toBeLessThan(RSS_SLACK_KIB)
      expect(server.child.exitCode).toBeNull()
    }).pipe(Effect.scoped), 180_000)
})
