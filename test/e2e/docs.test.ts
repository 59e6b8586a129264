/**
 * The systemd units and the example tunnel file in docs/ work as written: their ExecStart lines
 * start the real executable (with only the addresses moved to 127.0.0.1 and free ports).
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Effect, Either } from "effect"
import { parseTunnelFile } from "../../src/cli/tunnel-file.js"
import { freePort, LOOPBACK } from "../support/net.js"
import { startSpore, within } from "../support/process.js"

const docs = (name: string) => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url))

/** The arguments of a unit's ExecStart after `spore.js`, continuation lines joined. */
const execStartArgs = (unit: string) => {
  const text = readFileSync(docs(unit), "utf8").replace(/\\\n\s*/g, " ")
  const line = /^ExecStart=(.*)$/m.exec(text)?.[1] ?? ""
  return line.split(/\s+/).filter((word) => word !== "").slice(2)
}

describe("docs/", () => {
  it("the example tunnel file is valid", () => {
    const parsed = parseTunnelFile("tunnels.example.json", readFileSync(docs("tunnels.example.json"), "utf8"))
    expect(Either.isRight(parsed) && parsed.right.tunnels.length).toBe(3)
  })

  it.live("the units' command lines start a server and a client that reach each other", () =>
    Effect.gen(function*() {
      const serverArgs = execStartArgs("spore-server.service")
      expect(serverArgs.slice(0, 3)).toEqual(["--log-level", "info", "server"])
      const controlPort = yield* freePort
      const metricsPort = yield* freePort
      const server = yield* startSpore(
        [...serverArgs.map((arg) => arg === "127.0.0.1:9100" ? `${LOOPBACK}:${metricsPort}` : arg),
          "--bind-addr", LOOPBACK, "--control-port", String(controlPort)],
        { SPORE_SECRET: "unit-test-secret" }
      )
      yield* within("the server", 15, server.waitFor(/"message":"server listening on 127\.0\.0\.1:\d+, tunnel ports 20000-21000, secret required"/))

      const localArgs = execStartArgs("spore-local.service")
      expect(localArgs[0]).toBe("local")
      const client = yield* startSpore(
        [...localArgs.map((arg) => arg === "/etc/spore/tunnels.json" ? docs("tunnels.example.json") : arg === "127.0.0.1:9101" ? "127.0.0.1:0" : arg),
          "--to", LOOPBACK, "--control-port", String(controlPort)],
        { SPORE_SECRET: "unit-test-secret" }
      )
      // All three tunnels of the example file open (one asks for port 20080).
      yield* within("the tunnels", 15, client.waitFor(/listening at 127\.0\.0\.1:20080/))
      for (const local of ["localhost:3000", "127.0.0.1:8080", "db.internal:5432"]) {
        yield* within(local, 15, client.waitFor(new RegExp(`"message":"listening at 127\\.0\\.0\\.1:\\d+","tunnel":"${local.replace(/\./g, "\\.")}"`)))
      }
    }).pipe(Effect.scoped))
})
