/**
 * Admission under attack, counted from the honest side. The server and the clients are the real
 * executable with a secret (so every data stream needs a challenge round trip); the attackers
 * and the visitors are plain sockets of this process, from many source addresses.
 *
 * - A flood of half-open handshakes (connect, then silence) from 50 addresses, 3,000 at once and
 *   then 300 more a second, while an honest tunnel serves 500 visitors one by one and a second
 *   honest client opens a tunnel: nearly all visitors are served, each within a second; then the
 *   server's descriptors and handshakes come back to their baseline. Once with the default pool
 *   (larger than the flood) and once with a pool of 1,000 (the flood overflows it, so the pool
 *   has to choose whom to close).
 * - A burst of 300 visitors while idle sockets from 50 addresses keep a small pool full: the
 *   client opening 300 data streams at once holds the most handshakes, and still the idle
 *   sockets are the ones closed.
 * - A burst of 1,000 visitors at once at one tunnel, with default flags: every one is served.
 *
 * Timing is real here (real processes); every wait is bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { readdirSync } from "node:fs"
import * as net from "node:net"
import { Effect, Fiber } from "effect"
import { echoService, freePort, LOOPBACK } from "../support/net.js"
import { type Running, startSpore, within } from "../support/process.js"
import { sampleOf, scrape } from "../support/prometheus.js"

const SECRET = "admission-test-secret"
const ATTACK_ADDRESSES = 50
const INITIAL_FLOOD = 3000
const REFILL_PER_SECOND = 300
const HONEST_VISITORS = 500
/** A visitor counts as served if its bytes came back within this of its arrival. */
const SERVED_WITHIN_MS = 1000
/** A visitor that gets nothing back gives up after this. */
const VISITOR_GIVE_UP_MS = 5000

const openDescriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length

const attackerAddress = (n: number) => `127.50.0.${1 + (n % ATTACK_ADDRESSES)}`

/**
 * Half-open handshakes: each connects and says nothing until the server closes it. Opened by
 * plain callbacks (thousands at once), all destroyed by `stop`.
 */
const makeFlood = (controlPort: number) => {
  const sockets = new Set<net.Socket>()
  let opened = 0
  let refill: NodeJS.Timeout | undefined
  const open = () => {
    const socket = net.connect({ host: LOOPBACK, port: controlPort, localAddress: attackerAddress(opened++) })
    sockets.add(socket)
    socket.on("error", () => {})
    socket.on("close", () => sockets.delete(socket))
  }
  return {
    /** Opens `count` at once, in batches so that the listen backlog is not the test. */
    burst: (count: number) =>
      Effect.gen(function*() {
        for (let n = 0; n < count; n++) {
          open()
          if (n % 500 === 499) yield* Effect.sleep("20 millis")
        }
      }),
    /** Opens REFILL_PER_SECOND more a second until stopped (3 every 10 ms). */
    startRefill: Effect.sync(() => {
      refill = setInterval(() => {
        for (let n = 0; n < REFILL_PER_SECOND / 100; n++) open()
      }, 10)
    }),
    opened: () => opened,
    stop: Effect.sync(() => {
      clearInterval(refill)
      for (const socket of sockets) socket.destroy()
    })
  }
}

/** One visitor: connects, sends 64 random bytes, and reports how long until they all came back (undefined: never). */
const visit = (port: number, giveUpMs = VISITOR_GIVE_UP_MS) =>
  Effect.async<number | undefined>((resume) => {
    const payload = randomBytes(64)
    const started = performance.now()
    let received = Buffer.alloc(0)
    const socket = net.connect({ host: LOOPBACK, port })
    const finish = (result: number | undefined) => {
      clearTimeout(giveUp)
      socket.destroy()
      resume(Effect.succeed(result))
    }
    const giveUp = setTimeout(() => finish(undefined), giveUpMs)
    socket.on("error", () => finish(undefined))
    socket.on("close", () => finish(undefined))
    socket.once("connect", () => socket.write(payload))
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length >= payload.length) finish(received.equals(payload) ? performance.now() - started : undefined)
    })
    return Effect.sync(() => finish(undefined))
  })

const startServer = (controlPort: number, metricsPort: number, extra: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const server = yield* startSpore(
      ["server", "--bind-addr", LOOPBACK, "--control-port", String(controlPort), "--min-port", "35000", "--max-port", "35100",
        "--metrics-addr", `${LOOPBACK}:${metricsPort}`, ...extra],
      { SPORE_SECRET: SECRET },
      { lifetimeMs: 120_000 }
    )
    yield* within("server start", 15, server.waitFor(/server listening/))
    return server
  })

const startClient = (controlPort: number, localPort: number) =>
  Effect.gen(function*() {
    const client = yield* startSpore(
      ["local", String(localPort), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", String(controlPort)],
      { SPORE_SECRET: SECRET },
      { lifetimeMs: 120_000 }
    )
    const port = Number((yield* within("tunnel", 20, client.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
    return { client, port }
  })

/** A server (with `extra` flags) and a client tunnelling an echo service; the visitors' port. */
const echoTunnel = (extra: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const echo = yield* echoService
    const controlPort = yield* freePort
    const metricsPort = yield* freePort
    const server = yield* startServer(controlPort, metricsPort, extra)
    const { client, port } = yield* startClient(controlPort, echo)
    return { echo, controlPort, metricsPort, server, client, port }
  })

/** Waits (at most 15 s) until `check` holds for the server, polling; returns whether it did. */
const settlesTo = (check: () => Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let wait = 0; wait < 150; wait++) {
      if (yield* check()) return true
      yield* Effect.sleep("100 millis")
    }
    return false
  })

const logsOf = (processes: Record<string, Running>) =>
  Object.entries(processes).map(([name, running]) => `--- ${name}:\n${running.stderr().slice(-4000)}`).join("\n")

describe("admission under a flood", () => {
  for (const pool of [undefined, 1000]) {
    const named = pool === undefined ? "the default pool" : `a pool of ${pool}`
    it.live(`half-open handshakes from ${ATTACK_ADDRESSES} addresses (${INITIAL_FLOOD}, then ${REFILL_PER_SECOND}/s), ${named}: honest visitors and a new tunnel are served`, () =>
      Effect.gen(function*() {
        const { client, controlPort, echo, metricsPort, port, server } = yield* echoTunnel(pool === undefined ? [] : ["--max-handshakes", String(pool)])
        const pid = server.child.pid!
        // Warm the path, then take the baseline.
        for (let n = 0; n < 20; n++) expect(yield* visit(port)).toBeDefined()
        const baseline = openDescriptors(pid)

        const flood = makeFlood(controlPort)
        yield* Effect.addFinalizer(() => flood.stop)
        yield* flood.burst(INITIAL_FLOOD)
        yield* flood.startRefill
        // A second honest client opens its tunnel during the flood.
        const second = yield* Effect.fork(startClient(controlPort, echo))
        const times: Array<number | undefined> = []
        for (let n = 0; n < HONEST_VISITORS; n++) times.push(yield* visit(port))
        const secondTunnel = yield* Effect.either(Fiber.join(second))
        const attackers = flood.opened()
        yield* flood.stop

        const served = times.filter((time): time is number => time !== undefined && time <= SERVED_WITHIN_MS)
        const sorted = [...served].sort((a, b) => a - b)
        const processes = { server, client }
        const summary = (`flood (${named}): ${attackers} half-open handshakes; ${served.length}/${HONEST_VISITORS} visitors served within ` +
          `${SERVED_WITHIN_MS} ms (p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms); ` +
          `the others: ${times.flatMap((time, n) => time === undefined || time > SERVED_WITHIN_MS ? [`#${n} ${time?.toFixed(0) ?? "never"}`] : []).join(", ")}`)
        expect(served.length, `${summary}\n${logsOf(processes)}`).toBeGreaterThanOrEqual(Math.ceil(HONEST_VISITORS * 0.99))
        expect(secondTunnel._tag, logsOf(processes)).toBe("Right")
        if (pool !== undefined) {
          // The flood did overflow the pool, so it was the pool's choice that spared the honest.
          const metrics = (yield* Effect.promise(() => scrape(metricsPort))).body
          expect(sampleOf(metrics, "spore_handshake_failures_total", { reason: "max-handshakes" })).toBeGreaterThan(0)
        }

        // The second client goes; then handshakes and descriptors come back to the baseline.
        if (secondTunnel._tag === "Right") secondTunnel.right.client.child.kill("SIGKILL")
        expect(yield* settlesTo(() =>
          Effect.map(Effect.promise(() => scrape(metricsPort)), ({ body }) => sampleOf(body, "spore_handshakes_in_progress") === 0))).toBe(true)
        expect(yield* settlesTo(() => Effect.sync(() => openDescriptors(pid) <= baseline)), `descriptors ${openDescriptors(pid)} > ${baseline}`).toBe(true)
        expect(server.child.exitCode).toBeNull()
      }).pipe(Effect.scoped), 120_000)
  }

  it.live("a burst of 300 visitors while idle sockets from 50 addresses keep a pool of 1,000 full: 90% are served (not 10%)", () =>
    Effect.gen(function*() {
      const { client, controlPort, metricsPort, port, server } = yield* echoTunnel(["--max-handshakes", "1000"])
      const flood = makeFlood(controlPort)
      yield* Effect.addFinalizer(() => flood.stop)
      yield* flood.burst(1500)
      yield* flood.startRefill
      // Long enough for the first idle sockets to be stale, well before they time out (3 s).
      yield* Effect.sleep("1200 millis")
      // The client opens 300 data streams at once from one address: it holds more handshakes
      // than any attacking address, and still the idle sockets are the ones to go.
      const times = yield* Effect.all(Array.from({ length: 300 }, () => visit(port, 15_000)), { concurrency: "unbounded" })
      yield* flood.stop
      const metrics = (yield* Effect.promise(() => scrape(metricsPort))).body
      expect(sampleOf(metrics, "spore_handshake_failures_total", { reason: "max-handshakes" })).toBeGreaterThan(0)
      // Closing the heaviest address's handshakes alone would close the client's own: 21-35 of 300
      // were served so; the stale idle sockets go first instead: 298-300 alone, 290 with the whole
      // suite running beside it (a lagging client's handshakes grow stale too, see the README).
      const served = times.filter((time) => time !== undefined).length
      expect(served, `${served} of 300 served\n${logsOf({ server, client })}`).toBeGreaterThanOrEqual(270)
    }).pipe(Effect.scoped), 60_000)

  it.live("a burst of 1,000 visitors at once at one tunnel, with default flags: every one is served", () =>
    Effect.gen(function*() {
      const { client, port, server } = yield* echoTunnel([])
      const times = yield* Effect.all(Array.from({ length: 1000 }, () => visit(port, 15_000)), { concurrency: "unbounded" })
      const served = times.filter((time) => time !== undefined).length
      expect(served, logsOf({ server, client })).toBe(1000)
    }).pipe(Effect.scoped), 60_000)
})
