/**
 * NullBore's own server and client (Go binaries in ../shared/nullbore/, see its README), started
 * on 127.0.0.1 for the interop tests: each in a temporary directory of its own (the client writes
 * a config file under its HOME, the server two SQLite files), killed with the scope (and with this
 * process, through setpriv's death signal, when it is there).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, type Scope } from "effect"
import { freePort, LOOPBACK } from "./net.js"
import { waitForOutput, within } from "./process.js"

const DIR = fileURLToPath(new URL("../../../shared/nullbore/", import.meta.url))
export const NULLBORE_SERVER = join(DIR, "nullbore-server")
export const NULLBORE_CLIENT = join(DIR, "nullbore-client")
const SETPRIV = "/usr/bin/setpriv"

/** A key as NullBore's static keys look: nbk_<client id>_<secret> (also long enough for Spore). */
export const NULLBORE_KEY = "nbk_interop_0123456789abcdef"

export const hasNullbore = () => existsSync(NULLBORE_SERVER) && existsSync(NULLBORE_CLIENT)

export interface NullboreProcess {
  readonly child: ChildProcess
  /** stdout and stderr so far, interleaved. */
  readonly output: () => string
  readonly waitFor: (pattern: RegExp) => Effect.Effect<RegExpMatchArray, Error>
  /** Resolves with the exit code once it has exited. */
  readonly exited: Effect.Effect<number | null>
}

const run = (file: string, args: ReadonlyArray<string>, env: Record<string, string>): Effect.Effect<NullboreProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const [command, commandArgs] = existsSync(SETPRIV)
        ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", file, ...args]]
        : [file, [...args]]
      const child = spawn(command, commandArgs, { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] })
      let output = ""
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
      const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)))
      return {
        child,
        output: () => output,
        waitFor: waitForOutput(child, () => output, [child.stdout, child.stderr], file, "its output"),
        exited: Effect.promise(() => exited)
      }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

/** NullBore's server on a free port of 127.0.0.1, with NULLBORE_KEY; ready once /health answers. */
export const startNullboreServer = Effect.gen(function*() {
  const port = yield* freePort
  const dir = mkdtempSync(join(tmpdir(), "spore-nullbore-server-"))
  const server = yield* run(NULLBORE_SERVER, [
    "--host", LOOPBACK, "--port", String(port), "--api-keys", NULLBORE_KEY,
    "--db", join(dir, "nb.db"), "--events-db", join(dir, "ev.db")
  ], { NULLBORE_LOG_FORMAT: "text" })
  const url = `http://${LOOPBACK}:${port}`
  yield* within("nullbore-server's /health", 10, Effect.promise(async () => {
    for (let attempt = 0; attempt < 400; attempt++) {
      const healthy = await fetch(`${url}/health`).then((response) => response.ok, () => false)
      if (healthy) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }))
  return { ...server, port, url }
})

/**
 * `nullbore-client open --port LOCAL_PORT --ttl TTL` against `server`, once it prints its tunnel
 * (`✓ URL → localhost:PORT`): the public URL it was given.
 */
export const startNullboreClient = (server: string, localPort: number, options: { readonly ttl?: string; readonly key?: string } = {}) =>
  Effect.gen(function*() {
    const home = mkdtempSync(join(tmpdir(), "spore-nullbore-client-"))
    const client = yield* run(NULLBORE_CLIENT, ["open", "--port", String(localPort), "--ttl", options.ttl ?? "1h", "--debug"], {
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      NULLBORE_SERVER: server,
      NULLBORE_API_KEY: options.key ?? NULLBORE_KEY
    })
    const line = yield* within("nullbore-client's tunnel", 15, client.waitFor(/✓ (\S+) → localhost:\d+/))
    return { ...client, url: line[1]! }
  })
