/**
 * The npm package as a user gets it: `npm pack` of this checkout (its dist/ as `npm ci` built it),
 * installed into an empty folder from the tarball (the registry gives the two native add-ons, the
 * rest is bundled), holds what a user needs and no more, and its `spore` runs: `--version`, and
 * a server and a client of the installed package moving bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { echoService, freePort, LOOPBACK, randomPayload, roundTrip, sha256 } from "../support/net.js"
import { runSpore, startSpore, within } from "../support/process.js"

const ROOT = fileURLToPath(new URL("../..", import.meta.url))
const { name, version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string; version: string }

describe("the npm package", () => {
  it.scopedLive("packs bin, the bundle, the licence and the README only; installed from the tarball into an empty folder, its spore tunnels bytes", () =>
    Effect.gen(function*() {
      const work = mkdtempSync(join(tmpdir(), "spore-package-"))
      // No scripts: the bundle is already built, and rebuilding it here would rewrite the file
      // that the other tests' processes are starting from.
      const packed = JSON.parse(execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", work], { cwd: ROOT, encoding: "utf8" })) as
        Array<{ filename: string; files: Array<{ path: string }>; size: number }>
      expect(packed[0]!.files.map((file) => file.path).sort()).toEqual(["LICENSE", "README.md", "bin/spore.js", "dist/THIRD-PARTY-LICENSES.txt", "dist/spore.mjs", "package.json"])
      const folder = join(work, "empty")
      execFileSync("mkdir", [folder])
      execFileSync("npm", ["install", "--no-audit", "--no-fund", "--no-save", join(work, packed[0]!.filename)], { cwd: folder, stdio: "ignore", timeout: 120_000 })
      const installed = readdirSync(join(folder, "node_modules")).filter((entry) => !entry.startsWith("."))
      expect(installed.sort()).toEqual(["bufferutil", "node-addon-api", "node-gyp-build", "sockopt", name].sort())
      const bin = join(folder, "node_modules", name, "bin", "spore.js")

      const shown = yield* runSpore(["--version"], {}, { bin })
      expect(shown.stdout.trim()).toBe(version)

      const echo = yield* echoService
      const controlPort = String(yield* freePort)
      const server = yield* startSpore(["server", "--bind-addr", LOOPBACK, "--control-port", controlPort, "--min-port", "37000", "--max-port", "37100"], {}, { bin })
      yield* within("the installed server", 15, server.waitFor(/server listening/))
      const client = yield* startSpore(["local", String(echo), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", controlPort], {}, { bin })
      const port = Number((yield* within("the installed client", 15, client.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
      const payload = randomPayload(1024 * 1024)
      expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
    }), 150_000)
})
