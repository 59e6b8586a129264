/**
 * Spore against the real Rust bore (0.5.2 and 0.6.0, `../shared/bore/`), both ways round: a
 * `bore local` client through `spore server`, and `spore local` through `bore server`, with and
 * without a secret, and with the wrong one.
 *
 * bore's control port is fixed at 7835, so each case runs all its processes (server, client, the
 * echo service and the visitors) inside one private network namespace of its own, which needs
 * root. The visitors never half-close: bore 0.5.2's server would drop the reply.
 */
import { describe, expect, it } from "@effect/vitest"
import { randomInt } from "node:crypto"
import { Duration, Effect } from "effect"
import {
  BORE_VERSIONS,
  type BoreVersion,
  runBore,
  startBore,
  startEcho,
  visitEcho,
  type VisitorResult
} from "../support/bore.js"
import { type Host, makeLoopbackHost } from "../support/netns.js"
import { runSpore, type Running, startSpore } from "../support/process.js"
import { TEST_CERTIFICATE, tlsFixture } from "../support/tls.js"

const MiB = 1 << 20
const SECRET = "a shared secret for the real bore"
const WRONG_SECRET = "not the secret"
const LOOPBACK = "127.0.0.1"
const RANGE = ["--min-port", "20000", "--max-port", "20100"] as const
/** Visitors of each tunnel at once, each with 1-4 MiB of its own random bytes. */
const VISITORS = 4
/** Starting a process, opening a tunnel. */
const STARTUP_LIMIT = Duration.seconds(10)
/** All visitors of a case, there and back. */
const TRANSFER_LIMIT_MS = 15_000
/** No process of a case lives longer than this. */
const LIFETIME_MS = 30_000
const CASE_TIMEOUT_MS = 40_000

const within = (limit: Duration.Duration, what: () => string) => <A>(self: Effect.Effect<A, Error>) =>
  Effect.timeoutFail(self, {
    duration: limit,
    onTimeout: () => new Error(`not within ${Duration.toSeconds(limit)} s: ${what()}`)
  })

/** Every process's output, for failure messages. */
const logs = (processes: Record<string, Running>) =>
  Object.entries(processes).map(([name, running]) => `--- ${name}:\n${running.stderr()}`).join("\n")

const waitFor = (processes: Record<string, Running>, name: string, pattern: RegExp) =>
  processes[name]!.waitFor(pattern).pipe(within(STARTUP_LIMIT, () => `${name} printing ${pattern}\n${logs(processes)}`))

const secretFlag = (secret: string | undefined) => (secret === undefined ? [] : ["--secret", secret])

const sporeServer = (host: Host, secret: string | undefined) =>
  Effect.gen(function*() {
    // The secret through the environment here, through --secret for the clients: both are read.
    const server = yield* startSpore(
      ["server", "--bind-addr", LOOPBACK, "--control-port", "7835", ...RANGE],
      secret === undefined ? {} : { SPORE_SECRET: secret },
      { prefix: host.exec, lifetimeMs: LIFETIME_MS }
    )
    yield* waitFor({ "spore server": server }, "spore server", /server listening on/)
    return server
  })

const boreServer = (host: Host, version: BoreVersion, secret: string | undefined) =>
  Effect.gen(function*() {
    // 0.5.2 always binds 0.0.0.0: inside the namespace that is only its loopback.
    const bind = version === "0.5.2" ? [] : ["--bind-addr", LOOPBACK]
    const server = yield* startBore(version, ["server", ...RANGE, ...bind, ...secretFlag(secret)], {
      prefix: host.exec,
      lifetimeMs: LIFETIME_MS
    })
    yield* waitFor({ [`bore ${version} server`]: server }, `bore ${version} server`, /server listening/)
    return server
  })

const localArgs = (localPort: number, secret: string | undefined) => [
  "local",
  String(localPort),
  "--local-host",
  LOOPBACK,
  "--to",
  LOOPBACK,
  ...secretFlag(secret)
]

/** A client's public port, from its `listening at HOST:PORT`. */
const publicPort = (processes: Record<string, Running>, client: string) =>
  Effect.map(waitFor(processes, client, /listening at [\d.]+:(\d+)/), (match) => Number(match[1]))

const randomSizes = (count: number) => Array.from({ length: count }, () => randomInt(MiB, 4 * MiB + 1))

/** Every visitor got its own bytes back, all of them, in order. */
const expectEchoes = (results: ReadonlyArray<VisitorResult>, sizes: ReadonlyArray<number>, processLogs: string) => {
  const wrong = results.filter((r) => r.error !== null || r.received !== r.size || r.receivedSha256 !== r.sentSha256)
  expect(wrong, `visitors whose bytes did not come back intact:\n${JSON.stringify(wrong, null, 1)}\n${processLogs}`)
    .toEqual([])
  expect(results.map((r) => r.size), processLogs).toEqual(sizes)
}

/** VISITORS visitors through the tunnel at `port` to the echo service, at once. */
const echoThrough = (host: Host, port: number, processes: Record<string, Running>, count = VISITORS) =>
  Effect.gen(function*() {
    const sizes = randomSizes(count)
    const results = yield* visitEcho(host, port, sizes, TRANSFER_LIMIT_MS)
    expectEchoes(results, sizes, logs(processes))
  })

/** `bore local` through `spore server`. */
const boreClientCase = (version: BoreVersion, secret: string | undefined) =>
  Effect.gen(function*() {
    const host = yield* makeLoopbackHost
    const echo = yield* startEcho(host, LIFETIME_MS)
    const server = yield* sporeServer(host, secret)
    const client = yield* startBore(version, localArgs(echo.port, secret), { prefix: host.exec, lifetimeMs: LIFETIME_MS })
    const processes = { "spore server": server, [`bore ${version} local`]: client, echo: echo.process }
    const port = yield* publicPort(processes, `bore ${version} local`)
    yield* waitFor(processes, "spore server", new RegExp(`tunnel open on port ${port}\\b`))
    yield* echoThrough(host, port, processes)
  })

/** `spore local` through `bore server`. */
const sporeClientCase = (version: BoreVersion, secret: string | undefined) =>
  Effect.gen(function*() {
    const host = yield* makeLoopbackHost
    const echo = yield* startEcho(host, LIFETIME_MS)
    const server = yield* boreServer(host, version, secret)
    const client = yield* startSpore(localArgs(echo.port, secret), {}, { prefix: host.exec, lifetimeMs: LIFETIME_MS })
    const processes = { [`bore ${version} server`]: server, "spore local": client, echo: echo.process }
    const port = yield* publicPort(processes, "spore local")
    yield* waitFor(processes, `bore ${version} server`, new RegExp(`new client .*port=${port}\\b`))
    yield* echoThrough(host, port, processes)
    // The warm pool, on by default, is never asked of a bore server: it saw the control
    // connection and one data stream per visitor, and nothing it did not know.
    const seen = server.stderr()
    expect((seen.match(/incoming connection/g) ?? []).length, seen).toBe(1 + VISITORS)
    expect(seen).not.toMatch(/exited with error|unexpected/)
  })

const stillRunning = (running: Running) => running.child.exitCode === null && running.child.signalCode === null

for (const version of BORE_VERSIONS) {
  describe(`real bore ${version}`, () => {
    for (const secret of [undefined, SECRET]) {
      const label = secret === undefined ? "without a secret" : "with a secret"

      it.live(`bore local → spore server, ${label}: ${VISITORS} visitors at once get their random bytes back`, () =>
        boreClientCase(version, secret).pipe(Effect.scoped), CASE_TIMEOUT_MS)

      it.live(`spore local → bore server, ${label}: ${VISITORS} visitors at once get their random bytes back`, () =>
        sporeClientCase(version, secret).pipe(Effect.scoped), CASE_TIMEOUT_MS)
    }

    it.live("bore local with the wrong secret → spore server: bore exits saying invalid secret, the server stays up", () =>
      Effect.gen(function*() {
        const host = yield* makeLoopbackHost
        const echo = yield* startEcho(host, LIFETIME_MS)
        const server = yield* sporeServer(host, SECRET)
        const wrong = yield* runBore(version, localArgs(echo.port, WRONG_SECRET), {
          prefix: host.exec,
          lifetimeMs: Duration.toMillis(STARTUP_LIMIT)
        })
        const context = `bore ${version} local (exit ${wrong.code}):\n${wrong.stderr}\n${logs({ "spore server": server })}`
        expect(wrong.stderr, context).toMatch(/invalid secret/)
        expect(wrong.code, context).toBe(1)
        expect(stillRunning(server), `the server exited\n${context}`).toBe(true)

        // The right secret still opens a tunnel that carries bytes.
        const client = yield* startBore(version, localArgs(echo.port, SECRET), { prefix: host.exec, lifetimeMs: LIFETIME_MS })
        const processes = { "spore server": server, [`bore ${version} local`]: client, echo: echo.process }
        const port = yield* publicPort(processes, `bore ${version} local`)
        yield* echoThrough(host, port, processes, 1)
      }).pipe(Effect.scoped), CASE_TIMEOUT_MS)

    it.live("spore local with the wrong secret → bore server: spore exits 1 saying invalid secret", () =>
      Effect.gen(function*() {
        const host = yield* makeLoopbackHost
        const echo = yield* startEcho(host, LIFETIME_MS)
        const server = yield* boreServer(host, version, SECRET)
        const wrong = yield* runSpore(localArgs(echo.port, WRONG_SECRET), {}, {
          prefix: host.exec,
          lifetimeMs: Duration.toMillis(STARTUP_LIMIT)
        })
        const context = `spore local (exit ${wrong.code}):\n${wrong.stderr}\n${logs({ [`bore ${version} server`]: server })}`
        expect(wrong.stderr, context).toMatch(/invalid secret/)
        expect(wrong.code, context).toBe(1)
        expect(stillRunning(server), `the bore server exited\n${context}`).toBe(true)

        // The right secret still opens a tunnel that carries bytes.
        const client = yield* startSpore(localArgs(echo.port, SECRET), {}, { prefix: host.exec, lifetimeMs: LIFETIME_MS })
        const processes = { [`bore ${version} server`]: server, "spore local": client, echo: echo.process }
        const port = yield* publicPort(processes, "spore local")
        yield* echoThrough(host, port, processes, 1)
      }).pipe(Effect.scoped), CASE_TIMEOUT_MS)
  })
}

const TLS_SERVER_ARGS = ["--tls-cert", TEST_CERTIFICATE.certFile, "--tls-key", TEST_CERTIFICATE.keyFile]

describe("real bore 0.6.0 beside TLS", () => {
  it.live("one spore server: bore local in plaintext on 7835 and spore local --tls on 7836, at once, with a secret", () =>
    Effect.gen(function*() {
      const host = yield* makeLoopbackHost
      const echo = yield* startEcho(host, LIFETIME_MS)
      const server = yield* startSpore(
        ["server", "--bind-addr", LOOPBACK, ...RANGE, ...TLS_SERVER_ARGS, "--secret", SECRET],
        {},
        { prefix: host.exec, lifetimeMs: LIFETIME_MS }
      )
      yield* waitFor({ "spore server": server }, "spore server", /with TLS on 127\.0\.0\.1:7836/)
      const bore = yield* startBore("0.6.0", localArgs(echo.port, SECRET), { prefix: host.exec, lifetimeMs: LIFETIME_MS })
      const spore = yield* startSpore([...localArgs(echo.port, SECRET), "--tls", "--tls-ca", tlsFixture("ca.pem")], {}, {
        prefix: host.exec,
        lifetimeMs: LIFETIME_MS
      })
      const processes = { "spore server": server, "bore 0.6.0 local": bore, "spore local --tls": spore, echo: echo.process }
      const borePort = yield* publicPort(processes, "bore 0.6.0 local")
      const sporePort = yield* publicPort(processes, "spore local --tls")
      yield* echoThrough(host, borePort, processes)
      yield* echoThrough(host, sporePort, processes)
    }).pipe(Effect.scoped), CASE_TIMEOUT_MS)

  it.live("--require-tls: bore local is told to use TLS and exits 1, spore local --tls still connects", () =>
    Effect.gen(function*() {
      const host = yield* makeLoopbackHost
      const echo = yield* startEcho(host, LIFETIME_MS)
      const server = yield* startSpore(
        ["server", "--bind-addr", LOOPBACK, ...RANGE, ...TLS_SERVER_ARGS, "--require-tls"],
        {},
        { prefix: host.exec, lifetimeMs: LIFETIME_MS }
      )
      yield* waitFor({ "spore server": server }, "spore server", /refusing plaintext/)
      const bore = yield* runBore("0.6.0", localArgs(echo.port, undefined), { prefix: host.exec, lifetimeMs: Duration.toMillis(STARTUP_LIMIT) })
      const context = `bore local (exit ${bore.code}):\n${bore.stderr}\n${logs({ "spore server": server })}`
      expect(bore.stderr, context).toMatch(/this server accepts TLS connections only: connect with --tls to port 7836/)
      expect(bore.code, context).toBe(1)
      const spore = yield* startSpore([...localArgs(echo.port, undefined), "--tls", "--tls-ca", tlsFixture("ca.pem")], {}, {
        prefix: host.exec,
        lifetimeMs: LIFETIME_MS
      })
      const processes = { "spore server": server, "spore local --tls": spore, echo: echo.process }
      yield* echoThrough(host, yield* publicPort(processes, "spore local --tls"), processes, 1)
    }).pipe(Effect.scoped), CASE_TIMEOUT_MS)
})
