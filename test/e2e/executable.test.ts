/**
 * The single executable (`npm run build:exe`, scripts/build-exe.mjs): built from this checkout,
 * copied alone into an empty folder with no node_modules anywhere above it, it shows its version
 * and runs a server and a client that tunnel bytes, the native add-ons (setsockopt for the
 * sockets' tuning, --sndbuf here) loaded from the executable itself.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { copyFileSync, mkdtempSync, readFileSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { echoService, freePort, LOOPBACK, randomPayload, roundTrip, sha256 } from "../support/net.js"
import { runSpore, startSpore, within } from "../support/process.js"

const ROOT = fileURLToPath(new URL("../..", import.meta.url))
const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }

describe.skipIf(process.platform !== "linux")("the single executable", () => {
  it.scopedLive("built, alone in an empty folder: --version, and a server and a client of it moving bytes", () =>
    Effect.gen(function*() {
      execFileSync(process.execPath, ["scripts/build-exe.mjs"], { cwd: ROOT, stdio: "ignore", timeout: 120_000 })
      const folder = mkdtempSync(join(tmpdir(), "spore-exe-"))
      const executable = join(folder, "spore")
      copyFileSync(join(ROOT, "dist", "spore-exe"), executable)
      execFileSync("chmod", ["755", executable])
      expect(statSync(executable).size).toBeGreaterThan(50 * 1024 * 1024)

      const shown = yield* runSpore(["--version"], {}, { executable })
      expect(shown.stdout.trim()).toBe(version)
      expect(shown.stderr).toBe("")

      const echo = yield* echoService
      const controlPort = String(yield* freePort)
      const server = yield* startSpore(["server", "--bind-addr", LOOPBACK, "--control-port", controlPort, "--min-port", "37200", "--max-port", "37300",
        "--sndbuf", "262144"], {}, { executable })
      yield* within("the executable's server", 15, server.waitFor(/server listening/))
      const client = yield* startSpore(["local", String(echo), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", controlPort,
        "--sndbuf", "262144"], {}, { executable })
      const port = Number((yield* within("the executable's client", 15, client.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
      const payload = randomPayload(4 * 1024 * 1024)
      expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
      // Nothing was loaded from outside the executable (Node warns when its require is asked to).
      expect(server.stderr() + client.stderr()).not.toMatch(/Warning|Error/)
    }), 150_000)
})
