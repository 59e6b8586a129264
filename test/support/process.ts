/**
 * Running the real `spore` executable in tests, bounded in time.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Duration, Effect, type Scope } from "effect"

const BIN = fileURLToPath(new URL("../../bin/spore.js", import.meta.url))
/** No test process may outlive this, whatever happens. */
const PROCESS_LIMIT_MS = 30_000

export interface Finished {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface Running {
  readonly child: ChildProcess
  /** Everything the process wrote to stderr so far. */
  readonly stderr: () => string
  /** Waits until a stderr line matches, and returns the match. */
  readonly waitFor: (pattern: RegExp) => Effect.Effect<RegExpMatchArray, Error>
  /** Waits for the process to exit. */
  readonly exited: Effect.Effect<Finished>
}

export interface LaunchOptions {
  /** Words to run node under, e.g. `["ip", "netns", "exec", NAMESPACE]`; they must exec it, not fork. */
  readonly prefix?: readonly [string, ...Array<string>]
  /** How long the process may live before it is killed (PROCESS_LIMIT_MS by default). */
  readonly lifetimeMs?: number
  /** The script to run instead of this checkout's bin/spore.js (an installed package's, say). */
  readonly bin?: string
  /** An executable to run as it is, instead of node with a script (the single executable). */
  readonly executable?: string
}

const launch = (args: ReadonlyArray<string>, env: Record<string, string>, options: LaunchOptions) => {
  const [file, ...fileArgs] = options.executable !== undefined
    ? [options.executable, ...args]
    : [...(options.prefix ?? []), process.execPath, options.bin ?? BIN, ...args]
  const child = spawn(file, fileArgs, {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const killer = setTimeout(() => child.kill("SIGKILL"), options.lifetimeMs ?? PROCESS_LIMIT_MS)
  let stdout = ""
  let stderr = ""
  child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const done = new Promise<Finished>((resolve) =>
    child.once("close", (code) => {
      clearTimeout(killer)
      resolve({ code, stdout, stderr })
    })
  )
  return { child, done, stderr: () => stderr }
}

/** Runs `spore ARGS` to completion. */
export const runSpore = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  options: LaunchOptions = {}
): Effect.Effect<Finished> => Effect.promise(() => launch(args, env, options).done)

/**
 * Waits until what `output()` holds so far (fed by `streams`) matches `pattern`; fails once the
 * process exits without printing it, showing what it printed.
 */
export const waitForOutput = (
  child: ChildProcess,
  output: () => string,
  streams: ReadonlyArray<NodeJS.ReadableStream | null>,
  name: string,
  what: string
) =>
(pattern: RegExp) =>
  Effect.async<RegExpMatchArray, Error>((resume) => {
    const check = () => {
      const match = pattern.exec(output())
      if (match !== null) {
        stop()
        resume(Effect.succeed(match))
      }
    }
    const onClose = () => {
      stop()
      check()
      resume(Effect.fail(new Error(`${name} exited before printing ${pattern}; ${what}:\n${output()}`)))
    }
    const stop = () => {
      for (const stream of streams) stream?.off("data", check)
      child.off("close", onClose)
    }
    for (const stream of streams) stream?.on("data", check)
    child.once("close", onClose)
    check()
  })

/** Starts `spore ARGS` in the background; it is killed when the scope closes. */
export const startSpore = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  options: LaunchOptions = {}
): Effect.Effect<Running, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const { child, done, stderr } = launch(args, env, options)
      const waitFor = waitForOutput(child, stderr, [child.stderr], "spore", "stderr")
      return { child, stderr, waitFor, exited: Effect.promise(() => done) }
    }),
    ({ child }) => Effect.sync(() => child.kill("SIGKILL"))
  )

/** Fails with a message naming `what` if `self` takes longer than `seconds` (real time). */
export const within = <A, E>(what: string, seconds: number, self: Effect.Effect<A, E>) =>
  Effect.timeoutFail(self, { duration: Duration.seconds(seconds), onTimeout: () => new Error(`not within ${seconds} s: ${what}`) })
