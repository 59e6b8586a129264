/**
 * The real Rust bore (`../shared/bore/bore-VERSION` beside the project, see its README) and the
 * echo service and visitors that go with it, all run as processes inside a private network
 * namespace: bore's control port is fixed at 7835, so every test that starts one needs a host of
 * its own (test/support/netns.ts `makeLoopbackHost`).
 *
 * The binaries must be there: a missing one fails the test, it never skips it.
 */
import { spawn } from "node:child_process"
import { constants, accessSync, existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Duration, Effect, type Scope } from "effect"
import type { Host } from "./netns.js"
import { type Finished, type Running, waitForOutput } from "./process.js"

export const BORE_VERSIONS = ["0.5.2", "0.6.0"] as const
export type BoreVersion = typeof BORE_VERSIONS[number]

const BORE_DIR = new URL("../../../shared/bore/", import.meta.url)
const ECHO_VISITORS = fileURLToPath(new URL("./echo-visitors.mjs", import.meta.url))
/** No process started here may outlive this, whatever happens. */
const PROCESS_LIMIT_MS = 30_000

/** The path of `bore-VERSION`; throws a message saying where it was looked for if it is missing. */
export const boreBinary = (version: BoreVersion): string => {
  const path = fileURLToPath(new URL(`bore-${version}`, BORE_DIR))
  if (!existsSync(path)) {
    throw new Error(
      `the real bore ${version} is missing: expected ${path} (../shared/bore/bore-${version} beside the project, ` +
        `see ../shared/bore/README.md)`
    )
  }
  try {
    accessSync(path, constants.X_OK)
  } catch {
    throw new Error(`the real bore ${version} at ${path} is not executable`)
  }
  return path
}

/** bore colours its logs even into a pipe. */
export const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "")

export interface CommandOptions {
  /** Words to run the command under, e.g. a namespace's `exec`; they must exec it, not fork. */
  readonly prefix?: readonly [string, ...Array<string>]
  /** How long the process may live before it is killed (PROCESS_LIMIT_MS by default). */
  readonly lifetimeMs?: number
  /** The environment besides PATH (nothing else is inherited: no BORE_SECRET, no RUST_BACKTRACE). */
  readonly env?: Record<string, string>
}

const launch = (file: string, args: ReadonlyArray<string>, options: CommandOptions) => {
  const [command, ...commandArgs] = [...(options.prefix ?? []), file, ...args]
  const child = spawn(command, commandArgs, {
    env: { PATH: process.env.PATH ?? "", ...options.env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const killer = setTimeout(() => child.kill("SIGKILL"), options.lifetimeMs ?? PROCESS_LIMIT_MS)
  let stdout = ""
  // stdout and stderr together, colours removed: bore's logs go to either, depending on version.
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
    output += stripAnsi(chunk.toString())
  })
  child.stderr?.on("data", (chunk: Buffer) => (output += stripAnsi(chunk.toString())))
  child.once("error", (error) => (output += `\n[could not run ${command}: ${error.message}]\n`))
  const done = new Promise<Finished>((resolve) =>
    child.once("close", (code) => {
      clearTimeout(killer)
      resolve({ code, stdout, stderr: output })
    })
  )
  return { child, done, output: () => output }
}

/** Runs a command to completion; `stderr` of the result is stdout and stderr together, uncoloured. */
export const runCommand = (
  file: string,
  args: ReadonlyArray<string>,
  options: CommandOptions = {}
): Effect.Effect<Finished> => Effect.promise(() => launch(file, args, options).done)

/**
 * Starts a command in the background; it is killed when the scope closes. `stderr()` and `waitFor`
 * see stdout and stderr together, uncoloured.
 */
export const startCommand = (
  file: string,
  args: ReadonlyArray<string>,
  options: CommandOptions = {}
): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const { child, done, output } = launch(file, args, options)
      const waitFor = waitForOutput(child, output, [child.stdout, child.stderr], file.split("/").pop() ?? file, "its output")
      return { child, stderr: output, waitFor, exited: Effect.promise(() => done) }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

/** Starts `bore-VERSION ARGS` in the background (fails if the binary is missing). */
export const startBore = (version: BoreVersion, args: ReadonlyArray<string>, options: CommandOptions = {}) =>
  Effect.flatMap(Effect.try({ try: () => boreBinary(version), catch: (error) => error as Error }), (file) =>
    startCommand(file, args, options))

/** Runs `bore-VERSION ARGS` to completion (fails if the binary is missing). */
export const runBore = (version: BoreVersion, args: ReadonlyArray<string>, options: CommandOptions = {}) =>
  Effect.flatMap(Effect.try({ try: () => boreBinary(version), catch: (error) => error as Error }), (file) =>
    runCommand(file, args, options))

/** An echo service on the host's 127.0.0.1, for the scope; returns its port. */
export const startEcho = (host: Host, lifetimeMs?: number) =>
  Effect.gen(function*() {
    const echo = yield* startCommand(process.execPath, [ECHO_VISITORS, "serve"], {
      prefix: host.exec,
      ...(lifetimeMs === undefined ? {} : { lifetimeMs })
    })
    const match = yield* Effect.timeoutFail(echo.waitFor(/echo listening on (\d+)/), {
      duration: Duration.seconds(10),
      onTimeout: () => new Error(`the echo service did not start within 10 s:\n${echo.stderr()}`)
    })
    return { process: echo, port: Number(match[1]) }
  })

export interface VisitorResult {
  readonly size: number
  readonly sentSha256: string
  readonly received: number
  readonly receivedSha256: string
  readonly error: string | null
}

/**
 * One visitor of the host's 127.0.0.1:PORT per size, all at once, each sending that many random
 * bytes and reading the echo back. Fails only if the visitors' report is unreadable; whether the
 * bytes came back is for the caller to judge.
 */
export const visitEcho = (host: Host, port: number, sizes: ReadonlyArray<number>, limitMs: number) =>
  Effect.flatMap(
    runCommand(process.execPath, [ECHO_VISITORS, "visit", String(port), ...sizes.map(String)], {
      prefix: host.exec,
      lifetimeMs: limitMs + 5_000,
      env: { VISIT_LIMIT_MS: String(limitMs) }
    }),
    (finished) =>
      Effect.try({
        try: () => (JSON.parse(finished.stdout.trim()) as { visitors: ReadonlyArray<VisitorResult> }).visitors,
        catch: () =>
          new Error(`the visitors printed no report (exit ${finished.code}):\n${finished.stdout}\n${finished.stderr}`)
      })
  )
