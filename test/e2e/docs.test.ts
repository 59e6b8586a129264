/**
 * The systemd units and the example tunnel file in docs/ work as written: their ExecStart lines
 * start the real executable (with only the addresses moved to 127.0.0.1 and free ports).
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
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

  it.live("the http unit's command line brings its tunnel online with the settings of its environment file", () =>
    Effect.gen(function*() {
      const keys = join(mkdtempSync(join(tmpdir(), "spore-docs-")), "api-keys")
      writeFileSync(keys, "docs-test-key-0123456789\n")
      const server = yield* startSpore([
        "server", "--bind-addr", LOOPBACK, "--control-port", "0", "--min-port", "20000", "--max-port", "21000",
        "--http-addr", `${LOOPBACK}:0`, "--api-keys", keys
      ])
      const front = (yield* within("the http front", 15, server.waitFor(/http front listening on 127\.0\.0\.1:(\d+)/)))[1]!
      const args = execStartArgs("spore-http.service")
      expect(args.slice(0, 2)).toEqual(["http", "3000"])
      const client = yield* startSpore(args, { SPORE_HTTP_SERVER: `http://${LOOPBACK}:${front}`, SPORE_TOKEN: "docs-test-key-0123456789" })
      yield* within("the tunnel", 15, client.waitFor(new RegExp(`"message":"myapp is online at http://127\\.0\\.0\\.1:${front}/t/myapp/"`)))
    }).pipe(Effect.scoped))
})
