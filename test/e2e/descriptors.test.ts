/**
 * Running out of file descriptors: the real server, started with a descriptor limit of 64, is
 * flooded with silent connections until accept() fails with EMFILE. It must not crash or spin,
 * must say so once, and must serve again by itself once the silent connections have timed out.
 * The kernel and the handshake timeout run in real time here (another process); every wait is
 * bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import type * as net from "node:net"
import { Effect } from "effect"
import { dial, freePort, LOOPBACK } from "../support/net.js"
import { startSpore, within } from "../support/process.js"
import { wirePeer } from "../support/wire.js"

const DESCRIPTOR_LIMIT = 64
const SILENT_CONNECTIONS = 100

/** CPU time (user + system) the process has used, in seconds. */
const cpuSeconds = (pid: number) => {
  // Fields after the command name, which is in parentheses; utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/** Dials, and keeps the socket even if the server closes it at once (as it does when out of descriptors). */
const dialQuietly = (port: number) =>
  dial(port).pipe(Effect.tap((socket: net.Socket) => Effect.sync(() => socket.on("error", () => {}))), Effect.either)

describe("out of file descriptors", () => {
  it.live("the server neither crashes nor spins, logs the episode once, and serves again by itself", () =>
    Effect.gen(function*() {
      const controlPort = yield* freePort
      const server = yield* startSpore(
        ["server", "--bind-addr", LOOPBACK, "--control-port", String(controlPort), "--min-port", "33000", "--max-port", "33100", "--max-handshakes", "1000"],
        {},
        { prefix: ["prlimit", `--nofile=${DESCRIPTOR_LIMIT}`, "--"] }
      )
      yield* within("server start", 15, server.waitFor(/server listening/))
      const pid = server.child.pid!

      for (let n = 0; n < SILENT_CONNECTIONS; n++) yield* dialQuietly(controlPort)
      yield* within("the EMFILE warning", 15, server.waitFor(/out of file descriptors \(EMFILE\)/))

      // While the descriptors are used up and connections keep coming, the process stays idle.
      const before = cpuSeconds(pid)
      const started = Date.now()
      for (let round = 0; round < 10; round++) {
        for (let n = 0; n < 10; n++) yield* dialQuietly(controlPort)
        yield* Effect.sleep("100 millis")
      }
      const busy = (cpuSeconds(pid) - before) / ((Date.now() - started) / 1000)
      expect(busy).toBeLessThan(0.5)
      expect(server.child.exitCode).toBeNull()

      // The silent connections time out after 3 s; the server then has descriptors again.
      yield* within("recovery", 15, server.waitFor(/file descriptors available again after/))
      const peer = wirePeer(yield* dial(controlPort))
      peer.send("{\"Hello\":0}")
      const hello = yield* peer.next
      expect(hello).toMatch(/^\{"Hello":33\d{3}\}$/)
      yield* dial(Number(/\d+/.exec(hello!)![0]))
      expect(yield* peer.nextNonHeartbeat).toMatch(/^\{"Connection":"[0-9a-f-]{36}"\}$/)
      expect(server.stderr().match(/out of file descriptors/g)).toHaveLength(1)
    }).pipe(Effect.scoped))
})
