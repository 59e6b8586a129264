/**
 * A real Kafka-protocol cluster on 127.0.0.1 for tests: librdkafka's mock cluster, run by
 * `../shared/kafka-mock/kafka-mock.sh` (see its README.md; `.ci/run` builds it once into
 * ~/.cache/spore-kafka-mock). It lives for the rest of the scope.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Duration, Effect, type Scope } from "effect"

/** shared/ sits beside the project root, which is two levels above this file. */
const KAFKA_MOCK = fileURLToPath(new URL("../../../shared/kafka-mock/kafka-mock.sh", import.meta.url))
/** Waiting for the cluster's startup lines (a cold `start` would build first: run `kafka-mock.sh build`). */
const STARTUP_LIMIT_MS = 60_000
/** After SIGTERM the mock stops within ~100 ms; SIGKILL if it has not exited after this. */
const TERM_GRACE_MS = 5_000
/** No mock cluster may outlive this, whatever happens (the test process may not clean up). */
const LIFETIME_LIMIT_MS = 10 * 60_000
/** Dies with the test process: `setpriv --pdeathsig` survives bash's `exec` of mockcluster. */
const SETPRIV = "/usr/bin/setpriv"

export interface KafkaMockBroker {
  /** Node id, 1..N. */
  readonly id: number
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number
}

export interface KafkaMockAdvertised {
  readonly id: number
  readonly host: string
  readonly port: number
}

export interface KafkaMock {
  /** `127.0.0.1:p1,127.0.0.1:p2,...`: the real listeners, whatever the brokers advertise. */
  readonly bootstrap: string
  /** Every broker, by id, with the port it really listens on. */
  readonly brokers: ReadonlyArray<KafkaMockBroker>
  /** The `-a` overrides: what a broker names itself in Metadata/FindCoordinator instead. */
  readonly advertised: ReadonlyArray<KafkaMockAdvertised>
  /** librdkafka's version, e.g. `2.15.1`. */
  readonly librdkafka: string
  /** Everything the mock wrote to stderr so far. */
  readonly stderr: () => string
}

const parseHostPort = (hostPort: string) => {
  const colon = hostPort.lastIndexOf(":")
  return { host: hostPort.slice(0, colon), port: Number(hostPort.slice(colon + 1)) }
}

/**
 * Parses the mock's stdout once it is complete (its last line is `LIBRDKAFKA=`).
 * mockcluster.c prints `BOOTSTRAP=`, one `ADVERTISE <id> <host>:<port>` per `-a`, then
 * `LIBRDKAFKA=`. Its header comment promises `BROKER <id> <listen-port>` lines, but it does not
 * print them: broker ids come from the order of BOOTSTRAP (librdkafka builds that list from
 * brokers 1..N in order, before any `-a` applies). BROKER lines, if a later version prints them,
 * take precedence.
 */
const parse = (stdout: string): KafkaMock | undefined => {
  const lines = stdout.split("\n")
  const librdkafka = lines.find((line) => line.startsWith("LIBRDKAFKA="))
  const bootstrapLine = lines.find((line) => line.startsWith("BOOTSTRAP="))
  if (librdkafka === undefined || bootstrapLine === undefined) return undefined
  const bootstrap = bootstrapLine.slice("BOOTSTRAP=".length).trim()
  const printed = lines.flatMap((line) => {
    const match = /^BROKER (\d+) (\d+)\s*$/.exec(line)
    return match === null ? [] : [{ id: Number(match[1]), port: Number(match[2]) }]
  })
  const brokers = printed.length > 0
    ? printed
    : bootstrap.split(",").map((hostPort, i) => ({ id: i + 1, port: parseHostPort(hostPort).port }))
  const advertised = lines.flatMap((line) => {
    const match = /^ADVERTISE (\d+) (\S+)\s*$/.exec(line)
    return match === null ? [] : [{ id: Number(match[1]), ...parseHostPort(match[2]!) }]
  })
  return { bootstrap, brokers, advertised, librdkafka: librdkafka.slice("LIBRDKAFKA=".length).trim(), stderr: () => "" }
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/** Resolves when the child has exited, or after `ms` (false then). */
const waitExit = (child: ChildProcess, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (exited(child)) return resolve(true)
    const timer = setTimeout(() => {
      child.off("exit", onExit)
      resolve(false)
    }, ms)
    const onExit = () => {
      clearTimeout(timer)
      resolve(true)
    }
    child.once("exit", onExit)
  })

/** SIGTERM, then SIGKILL if it has not exited within TERM_GRACE_MS. */
const stop = (child: ChildProcess) =>
  Effect.promise(async () => {
    if (exited(child)) return
    child.kill("SIGTERM")
    if (await waitExit(child, TERM_GRACE_MS)) return
    child.kill("SIGKILL")
    await waitExit(child, TERM_GRACE_MS)
  })

/**
 * Starts `kafka-mock.sh start ARGS` (e.g. `["-b", "3", "-t", "orders:6", "-s", "-r", "0"]`),
 * waits for it to print its listeners, and stops it when the scope closes.
 */
export const startKafkaMock = (args: ReadonlyArray<string>): Effect.Effect<KafkaMock, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const command = ["bash", KAFKA_MOCK, "start", ...args]
      const [file, ...fileArgs] = existsSync(SETPRIV) ? [SETPRIV, "--pdeathsig", "KILL", "--", ...command] : command
      const child = spawn(file!, fileArgs, { stdio: ["ignore", "pipe", "pipe"] })
      const killer = setTimeout(() => child.kill("SIGKILL"), LIFETIME_LIMIT_MS)
      child.once("exit", () => clearTimeout(killer))
      let stdout = ""
      let stderr = ""
      child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
      child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      return { child, stdout: () => stdout, stderr: () => stderr }
    }),
    ({ child }) => stop(child)
  ).pipe(
    Effect.flatMap(({ child, stderr, stdout }) =>
      Effect.async<KafkaMock, Error>((resume) => {
        const check = () => {
          const mock = parse(stdout())
          if (mock !== undefined) {
            done()
            resume(Effect.succeed({ ...mock, stderr }))
          }
        }
        const onError = (error: Error) => {
          done()
          resume(Effect.fail(new Error(`kafka-mock.sh could not start: ${error.message}`)))
        }
        const onClose = (code: number | null, signal: NodeJS.Signals | null) => {
          done()
          resume(Effect.fail(
            new Error(
              `kafka-mock.sh exited (${signal ?? code}) before it printed its listeners; stdout:\n${stdout()}\nstderr:\n${stderr()}`
            )
          ))
        }
        const done = () => {
          child.stdout?.off("data", check)
          child.off("error", onError)
          child.off("close", onClose)
        }
        child.stdout?.on("data", check)
        child.once("error", onError)
        child.once("close", onClose)
        check()
        return Effect.sync(done)
      }).pipe(
        Effect.timeoutFail({
          duration: Duration.millis(STARTUP_LIMIT_MS),
          onTimeout: () =>
            new Error(
              `kafka-mock.sh printed no listeners within ${STARTUP_LIMIT_MS / 1000} s (is it built? ` +
                `bash ../shared/kafka-mock/kafka-mock.sh build); stdout:\n${stdout()}\nstderr:\n${stderr()}`
            )
        })
      )
    )
  )

/** Mock arguments that make brokers 1-3 advertise names nobody can resolve (`kafka-N.invalid`). */
export const UNRESOLVABLE_BROKERS = ["-a", "1=kafka-1.invalid:9092", "-a", "2=kafka-2.invalid:9092", "-a", "3=kafka-3.invalid:9092"]

/** `prefix-0` ... `prefix-(count-1)`: messages a test can recognise. */
export const numbered = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`)

/** Values in order, to compare what was consumed (partitions interleave) with what was produced. */
export const sorted = (values: ReadonlyArray<string>) => [...values].sort()
