/**
 * Debian's `redis-server` for the cluster's tests, on a free port of 127.0.0.1, in memory only
 * (no RDB, no AOF: a restart starts empty, the worst case a node must heal from). It can be
 * stopped and started again on the same port.
 *
 * scripts/test-setup.sh installs it; tests skip with `describe.skipIf(!hasRedis())`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import * as net from "node:net"
import { Effect, type Scope } from "effect"
import { freePort } from "./net.js"

const REDIS = "/usr/bin/redis-server"
/** Run under it when present, so that Redis dies with the test process however that ends. */
const SETPRIV = "/usr/bin/setpriv"
const HOST = "127.0.0.1"
const START_TIMEOUT_MS = 10_000
const POLL_INTERVAL_MS = 25

export const hasRedis = () => existsSync(REDIS)

export interface RedisServer {
  readonly port: number
  readonly url: string
  /** Kills it (SIGKILL: nothing is saved, nothing said to its clients). */
  readonly stop: Effect.Effect<void>
  /** Starts it again on the same port, empty. */
  readonly start: Effect.Effect<void, Error>
  /** What it printed, for a failing test's log. */
  readonly logs: () => string
}

/** Sends PING and reads the answer: whether Redis serves on `port` now. */
const pings = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: HOST, port })
    let answer = ""
    socket.setTimeout(500, () => socket.destroy())
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1")
      if (answer.includes("\r\n")) {
        socket.destroy()
        resolve(answer.startsWith("+PONG"))
      }
    })
    socket.once("error", () => resolve(false))
    socket.once("close", () => resolve(false))
  })

/** A Redis of its own for the rest of the scope. */
export const startRedis: Effect.Effect<RedisServer, Error, Scope.Scope> = Effect.gen(function*() {
  const port = yield* freePort
  let child: ChildProcess | undefined
  let closed: Promise<void> = Promise.resolve()
  let output = ""
  const spawnIt = () => {
    const args = ["--bind", HOST, "--port", String(port), "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    const [command, commandArgs] = existsSync(SETPRIV) ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", REDIS, ...args]] : [REDIS, args]
    const started = spawn(command, commandArgs, { stdio: ["ignore", "pipe", "pipe"] })
    started.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
    started.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
    closed = new Promise((resolve) => {
      started.once("close", () => resolve())
      started.once("error", () => resolve())
    })
    child = started
  }
  const start = Effect.gen(function*() {
    spawnIt()
    const deadline = Date.now() + START_TIMEOUT_MS
    while (!(yield* Effect.promise(() => pings(port)))) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`redis-server did not answer on ${port} within ${START_TIMEOUT_MS} ms:\n${output}`))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS)))
    }
  })
  const stop = Effect.promise(async () => {
    child?.kill("SIGKILL")
    await closed
  })
  yield* Effect.acquireRelease(start, () => stop)
  return { port, url: `redis://${HOST}:${port}`, stop, start, logs: () => output }
})
