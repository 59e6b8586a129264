/**
 * Real processes: a server killed outright and started again, and a client that comes back by
 * itself on the same public port.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { echoService, freePort, LOOPBACK, randomPayload, roundTrip, sha256 } from "../support/net.js"
import { startSpore } from "../support/process.js"


describe("server restart", () => {
  it.live("after the server is killed and started again, the client serves on the same public port", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const controlPort = String(yield* freePort)
      const serverArgs = ["server", "--bind-addr", LOOPBACK, "--control-port", controlPort, "--min-port", "32000", "--max-port", "32767"]
      const first = yield* startSpore(serverArgs)
      yield* first.waitFor(/server listening/)
      const client = yield* startSpore(["local", String(echo), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", controlPort])
      const port = Number((yield* client.waitFor(/listening at 127\.0\.0\.1:(\d+)/))[1])
      const before = randomPayload(100_000)
      expect(sha256(yield* roundTrip(port, before))).toBe(sha256(before))

      first.child.kill("SIGKILL")
      yield* client.waitFor(/lost the connection to the server: .+\n/)
      yield* client.waitFor(/reconnecting in \d+\.\d s/)
      const second = yield* startSpore(serverArgs)
      yield* second.waitFor(/server listening/)
      // The new server knows no lease: the client's Resume is refused and it asks for its port.
      const again = Number((yield* client.waitFor(/lost the connection[\s\S]*\nlistening at 127\.0\.0\.1:(\d+)/))[1])
      expect(again).toBe(port)
      const after = randomPayload(100_000)
      expect(sha256(yield* roundTrip(port, after))).toBe(sha256(after))
      expect(client.child.exitCode).toBeNull()
    }).pipe(Effect.scoped))
})
