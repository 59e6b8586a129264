/**
 * A real server at one of its limits, holding its one tunnel (or its one connection from our
 * address) for a first client: every other client command is told "try again later" in the
 * server's words, keeps running and retrying, and comes online once the first client is gone.
 * `spore local` with and without a secret, `spore kafka-proxy` (its bootstrap tunnel, to a plain
 * TCP service: nothing reaches it before the tunnel is up) and `spore http` (the front answers
 * 429 past `--max-tunnels`). All real processes on 127.0.0.1; every wait is bounded, and a failed
 * wait shows what the processes printed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { callApi, DOMAIN, KEY_A, KEY_B, localApp, startHttpClient, writeKeys } from "../support/http.js"
import { echoService, freePort, LOOPBACK } from "../support/net.js"
import { type Running, startSpore } from "../support/process.js"

const SECRET = "refusals-secret"
/** The waiting clients retry every second at most, so each test takes a few seconds. */
const FAST_RETRY = ["--max-reconnect-delay", "1"]

/** Waits (real time, at most `seconds`) for `pattern` on `process`'s stderr; a failure shows everyone's. */
const expectLine = (
  process: Running,
  pattern: RegExp,
  what: string,
  everyone: Record<string, Running>,
  seconds = 15
) =>
  process.waitFor(pattern).pipe(
    Effect.timeoutFail({
      duration: Duration.seconds(seconds),
      onTimeout: () => new Error(`not within ${seconds} s: ${what}`)
    }),
    Effect.mapError((error) =>
      new Error(
        [error.message, ...Object.entries(everyone).map(([name, running]) => `--- ${name} stderr:\n${running.stderr()}`)].join("\n")
      )
    )
  )

/** How many times `text` appears in what `process` printed. */
const count = (process: Running, text: string) => process.stderr().split(text).length - 1

/** `spore server` on 127.0.0.1 with a control port of its own; returns it and the control port. */
const startServer = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const server = yield* startSpore([
      "server", "--bind-addr", LOOPBACK, "--control-port", "0", "--min-port", "39200", "--max-port", "39299", ...args
    ], env)
    const match = yield* expectLine(server, /server listening on 127\.0\.0\.1:(\d+)/, "the server", { server })
    return { server, controlPort: match[1]! }
  })

/** Kills `process` and waits until it is gone (its sockets closed by the kernel). */
const kill = (process: Running) =>
  Effect.gen(function*() {
    process.child.kill("SIGKILL")
    yield* process.exited
  })

/**
 * `waiting` prints `refusal` at least twice (so it retried) with a backoff line between, and is
 * still running; once `holder` is killed (and `free` has run), it prints `online`.
 */
const expectRetriedUntilFree = (
  { holder, waiting, others }: { holder: Running; waiting: Running; others: Record<string, Running> },
  refusal: string,
  online: RegExp,
  free: Effect.Effect<void, unknown> = Effect.void
) =>
  Effect.gen(function*() {
    const everyone = { ...others, holder, waiting }
    const escaped = refusal.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    yield* expectLine(waiting, new RegExp(`${escaped}[\\s\\S]*reconnecting in \\d\\.\\d s[\\s\\S]*${escaped}`), "two refusals", everyone)
    expect(waiting.child.exitCode).toBeNull()
    expect(waiting.stderr()).not.toMatch(online)
    yield* kill(holder)
    yield* free
    yield* expectLine(waiting, online, "online once the holder is gone", everyone)
    expect(waiting.child.exitCode).toBeNull()
    expect(count(waiting, refusal)).toBeGreaterThanOrEqual(2)
  })

describe("clients retry a server at its limits", () => {
  for (const secret of [undefined, SECRET]) {
    const env: Record<string, string> = secret === undefined ? {} : { SPORE_SECRET: secret }
    const withWhat = secret === undefined ? "without a secret" : "with SPORE_SECRET"

    const limits = [
      // No lease: the killed holder's tunnel closes at once instead of waiting for it 30 s.
      { flags: ["--max-tunnels", "1", "--lease-seconds", "0"], text: "server has too many tunnels, try again later" },
      { flags: ["--max-conns-per-ip", "1"], text: "too many connections from your address" }
    ]
    for (const { flags, text } of limits) {
      it.live(`spore local ${withWhat}: ${flags.slice(0, 2).join(" ")} taken, it retries "${text}" until it is free`, () =>
        Effect.gen(function*() {
          const { server, controlPort } = yield* startServer(flags, env)
          const local = String(yield* freePort)
          const holder = yield* startSpore(["local", local, "--to", LOOPBACK, "--control-port", controlPort], env)
          yield* expectLine(holder, /listening at 127\.0\.0\.1:\d+/, "the holder's tunnel", { server, holder })
          const waiting = yield* startSpore(["local", local, "--to", LOOPBACK, "--control-port", controlPort, ...FAST_RETRY], env)
          yield* expectRetriedUntilFree(
            { holder, waiting, others: { server } },
            `could not reach the server: ${text}`,
            /^listening at 127\.0\.0\.1:\d+$/m
          )
        }).pipe(Effect.scoped))
    }
  }

  it.live("spore kafka-proxy: its bootstrap tunnel retries \"server has too many tunnels\" and opens once the tunnel is free", () =>
    Effect.gen(function*() {
      const { server, controlPort } = yield* startServer(["--max-tunnels", "1", "--lease-seconds", "0", "--secret", SECRET])
      const env = { SPORE_SECRET: SECRET }
      const holder = yield* startSpore(["local", String(yield* freePort), "--to", LOOPBACK, "--control-port", controlPort], env)
      yield* expectLine(holder, /listening at 127\.0\.0\.1:\d+/, "the holder's tunnel", { server, holder })
      const service = yield* echoService
      const waiting = yield* startSpore([
        "kafka-proxy", "--bootstrap-server", `${LOOPBACK}:${service}`, "--to", LOOPBACK, "--control-port", controlPort, ...FAST_RETRY
      ], env)
      yield* expectRetriedUntilFree(
        { holder, waiting, others: { server } },
        "[bootstrap] could not reach the server: server has too many tunnels, try again later",
        new RegExp(`^bootstrap server for Kafka clients: 127\\.0\\.0\\.1:\\d+ \\(the cluster at 127\\.0\\.0\\.1:${service}\\)$`, "m")
      )
    }).pipe(Effect.scoped))

  it.live("spore http: past --max-tunnels the front answers 429; the client retries until the tunnel is free", () =>
    Effect.gen(function*() {
      const app = yield* localApp
      const { server } = yield* startServer([
        "--http-addr", `${LOOPBACK}:0`, "--domain", DOMAIN, "--api-keys", writeKeys(KEY_A, KEY_B), "--max-tunnels", "1"
      ])
      const front = Number((yield* expectLine(server, /http front listening on 127\.0\.0\.1:(\d+)/, "the http front", { server }))[1])
      const first = yield* startHttpClient(front, app.port, { key: KEY_A, name: "first" })
      const waiting = yield* startSpore([
        "http", String(app.port), "--to", `http://${LOOPBACK}:${front}`, "--token", KEY_B, "--local-host", LOOPBACK,
        "--name", "second", ...FAST_RETRY
      ])
      // The first client's tunnel outlives it (its name is kept for 5 minutes); its owner deletes it.
      const deleteFirst = Effect.gen(function*() {
        const status = yield* callApi(front, "GET", "/v1/status", { key: KEY_A })
        const id = status.body?.tunnels?.find((tunnel) => tunnel.name === "first")?.id
        expect(id).toBeDefined()
        expect((yield* callApi(front, "DELETE", `/v1/tunnels/${id}`, { key: KEY_A })).status).toBe(200)
      })
      yield* expectRetriedUntilFree(
        { holder: first.process, waiting, others: { server } },
        "could not reach the server: the server has reached its limit of 1 http tunnels",
        /^second is online at \S+$/m,
        deleteFirst
      )
      // And it serves: a visitor reaches the app through the new tunnel.
      const answer = yield* Effect.promise(() => fetch(`http://${LOOPBACK}:${front}/t/second/hello`).then((r) => r.status))
      expect(answer).toBe(200)
    }).pipe(Effect.scoped))
})
