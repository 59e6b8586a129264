/**
 * Real Kafka clients for tests, each bounded in time: kafkajs (npm; never sends the flexible API
 * versions), kcat (Debian's CLI on librdkafka 2.0.2, which never does either) and rdkafka-client
 * (./rdkafka-client.c on librdkafka 2.15.1, which sends Metadata v12, Produce v10, Fetch v16 and
 * the other flexible versions it knows). Every helper takes a bootstrap address as given
 * (`host:port[,host:port...]`), so it can point at a mock cluster's brokers or at a tunnel's
 * public port alike.
 */
import { spawn } from "node:child_process"
import { existsSync, statSync } from "node:fs"
import { homedir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Duration, Effect } from "effect"
import { type Consumer, Kafka, logLevel, type Producer, type RetryOptions } from "kafkajs"

const DEFAULT_TIMEOUT_SECONDS = 15
/** How long a producer/consumer may take to disconnect, on every path. */
const DISCONNECT_LIMIT_MS = 5_000

export interface KafkaClientOptions {
  /** The whole operation fails after this long (15 s by default). */
  readonly timeoutSeconds?: number
}

export interface KafkaRecord {
  readonly partition: number
  readonly offset: string
  readonly value: string
}

const bounded = <A>(what: string, options: KafkaClientOptions, self: Effect.Effect<A, Error>) => {
  const seconds = options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS
  return Effect.timeoutFail(self, {
    duration: Duration.seconds(seconds),
    onTimeout: () => new Error(`not within ${seconds} s: ${what}`)
  })
}

/** `Name: message (code)`, then each cause, so a test can match e.g. /ENOTFOUND/. */
export const describeError = (error: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = error
  for (let depth = 0; current !== undefined && current !== null && depth < 8; depth++) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code
      parts.push(`${current.name}: ${current.message}${code === undefined ? "" : ` (${String(code)})`}`)
      current = (current as { cause?: unknown }).cause ?? (current as { originalError?: unknown }).originalError
    } else {
      parts.push(String(current))
      current = undefined
    }
  }
  return parts.join("; caused by ")
}

const failure = (what: string) => (error: unknown) => new Error(`${what}: ${describeError(error)}`, { cause: error })

// ---------------------------------------------------------------------------------------------
// kafkajs

/** Few, short retries: a failure shows up within the bound instead of after kafkajs's ~30 s. */
const RETRY: RetryOptions = { retries: 3, initialRetryTime: 100, maxRetryTime: 1_000 }

const kafkajs = (bootstrap: string, clientId: string) =>
  new Kafka({
    clientId,
    brokers: bootstrap.split(",").map((broker) => broker.trim()),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 5_000,
    retry: RETRY
  })

const disconnect = (client: Producer | Consumer) =>
  Effect.promise(() =>
    Promise.race([
      client.disconnect().catch(() => undefined),
      new Promise<void>((resolve) => setTimeout(resolve, DISCONNECT_LIMIT_MS).unref())
    ])
  )

/** Produces each message (as a value, no key: round robin over the partitions), acks from all replicas. */
export const kafkajsProduce = (
  bootstrap: string,
  topic: string,
  messages: ReadonlyArray<string>,
  options: KafkaClientOptions = {}
): Effect.Effect<void, Error> =>
  bounded(
    `kafkajs producing ${messages.length} messages to ${topic} via ${bootstrap}`,
    options,
    Effect.acquireUseRelease(
      Effect.sync(() => kafkajs(bootstrap, "spore-test-producer").producer({ allowAutoTopicCreation: false, retry: RETRY })),
      (producer) =>
        Effect.tryPromise({
          try: async () => {
            await producer.connect()
            await producer.send({ topic, acks: -1, messages: messages.map((value) => ({ value })) })
          },
          catch: failure(`kafkajs could not produce to ${topic} via ${bootstrap}`)
        }),
      disconnect
    )
  )

/**
 * Joins consumer group `groupId` on `topic` (all its partitions, from the beginning) and returns
 * the first `expectedCount` records that arrive; fails on a consumer crash or after the bound.
 */
export const kafkajsConsumeGroup = (
  bootstrap: string,
  topic: string,
  groupId: string,
  expectedCount: number,
  options: KafkaClientOptions = {}
): Effect.Effect<ReadonlyArray<KafkaRecord>, Error> =>
  bounded(
    `kafkajs group ${groupId} consuming ${expectedCount} messages from ${topic} via ${bootstrap}`,
    options,
    Effect.acquireUseRelease(
      Effect.sync(() =>
        kafkajs(bootstrap, "spore-test-consumer").consumer({
          groupId,
          retry: RETRY,
          maxWaitTimeInMs: 100,
          sessionTimeout: 10_000,
          rebalanceTimeout: 10_000,
          heartbeatInterval: 1_000
        })
      ),
      (consumer) =>
        Effect.tryPromise({
          try: async () => {
            await consumer.connect()
            await consumer.subscribe({ topics: [topic], fromBeginning: true })
          },
          catch: failure(`kafkajs group ${groupId} could not subscribe to ${topic} via ${bootstrap}`)
        }).pipe(
          Effect.zipRight(
            Effect.async<ReadonlyArray<KafkaRecord>, Error>((resume) => {
              const received: Array<KafkaRecord> = []
              let settled = false
              const settle = (result: Effect.Effect<ReadonlyArray<KafkaRecord>, Error>) => {
                if (settled) return
                settled = true
                removeCrashListener()
                resume(result)
              }
              const fail = failure(`kafkajs group ${groupId} failed consuming ${topic} via ${bootstrap}`)
              const removeCrashListener = consumer.on(consumer.events.CRASH, (event) =>
                settle(Effect.fail(fail(event.payload.error))))
              if (expectedCount <= 0) return settle(Effect.succeed(received))
              consumer.run({
                eachMessage: async ({ message, partition }) => {
                  received.push({ partition, offset: message.offset, value: message.value?.toString() ?? "" })
                  if (received.length >= expectedCount) settle(Effect.succeed([...received]))
                }
              }).catch((error: unknown) => settle(Effect.fail(fail(error))))
              return Effect.sync(() => {
                settled = true
                removeCrashListener()
              })
            })
          )
        ),
      disconnect
    )
  )

// ---------------------------------------------------------------------------------------------
// kcat

export interface KcatOptions extends KafkaClientOptions {
  /** Extra librdkafka properties, passed as `-X key=value`. */
  readonly config?: Readonly<Record<string, string>>
}

export interface KcatConsumeOptions extends KcatOptions {
  /** Consume as a member of this consumer group (`-G`) instead of assigning every partition. */
  readonly groupId?: string
}

interface ProcessResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A client program: its name in messages, how to run it, and what to do when it cannot run. */
interface Program {
  readonly name: string
  readonly file: string
  readonly hint: string
}

const KCAT: Program = { name: "kcat", file: "kcat", hint: "apt-get install kcat" }

/**
 * Runs `program ARGS` with `input` on stdin. Killed (SIGKILL) at the bound, failing with what it
 * wrote to stderr so far, or when the effect is interrupted; fails on a non-zero exit.
 */
const runProgram = (
  program: Program,
  args: ReadonlyArray<string>,
  input: string,
  what: string,
  options: KafkaClientOptions
) =>
  Effect.async<ProcessResult, Error>((resume) => {
    const seconds = options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS
    const child = spawn(program.file, args, { stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let timedOut = false
    let settled = false
    const settle = (result: Effect.Effect<ProcessResult, Error>) => {
      if (!settled) {
        settled = true
        clearTimeout(killer)
        resume(result)
      }
    }
    const killer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, seconds * 1000)
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.once("error", (error) =>
      settle(Effect.fail(
        new Error(`${what}: ${program.name} could not run (${error.message}); ${program.hint}`, { cause: error })
      )))
    child.once("close", (code, signal) =>
      settle(
        timedOut
          ? Effect.fail(new Error(`not within ${seconds} s: ${what}; ${program.name} killed; stderr:\n${stderr}`))
          : Effect.succeed({ code, signal, stdout, stderr })
      ))
    child.stdin.on("error", () => undefined) // the program may exit before reading everything
    child.stdin.end(input)
    return Effect.sync(() => {
      settled = true
      clearTimeout(killer)
      child.kill("SIGKILL")
    })
  }).pipe(
    Effect.flatMap((result) =>
      result.code === 0
        ? Effect.succeed(result)
        : Effect.fail(
          new Error(`${what}: ${program.name} exited with ${result.signal ?? result.code}; stderr:\n${result.stderr}`)
        )
    )
  )

/** Runs `kcat ARGS` with `input` on stdin, bounded (see runProgram). */
const runKcat = (args: ReadonlyArray<string>, input: string, what: string, options: KafkaClientOptions) =>
  runProgram(KCAT, args, input, what, options)

const configArgs = (options: { readonly config?: Readonly<Record<string, string>> }, defaults: Record<string, string>) =>
  Object.entries({ ...defaults, ...options.config }).flatMap(([key, value]) => ["-X", `${key}=${value}`])

/** Produces each message (one per line on kcat's stdin; none may contain a newline). */
export const kcatProduce = (
  bootstrap: string,
  topic: string,
  messages: ReadonlyArray<string>,
  options: KcatOptions = {}
): Effect.Effect<void, Error> => {
  const what = `kcat producing ${messages.length} messages to ${topic} via ${bootstrap}`
  if (messages.some((message) => message.includes("\n"))) {
    return Effect.fail(new Error(`${what}: a message contains a newline`))
  }
  // Undeliverable messages make kcat exit 1 by itself shortly before the bound.
  const timeoutMs = (options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000
  const defaults = { "message.timeout.ms": String(Math.max(1_000, timeoutMs - 2_000)) }
  return Effect.asVoid(runKcat(
    ["-P", "-b", bootstrap, "-t", topic, ...configArgs(options, defaults)],
    messages.map((message) => `${message}\n`).join(""),
    what,
    options
  ))
}

/**
 * Consumes `count` messages from `topic` (every partition, from the beginning), one stdout line
 * each; fails if kcat fails, reaches the end of every partition with fewer, or exceeds the bound.
 */
export const kcatConsume = (
  bootstrap: string,
  topic: string,
  count: number,
  options: KcatConsumeOptions = {}
): Effect.Effect<ReadonlyArray<string>, Error> => {
  const what = `kcat ${options.groupId === undefined ? "" : `group ${options.groupId} `}consuming ${count} messages ` +
    `from ${topic} via ${bootstrap}`
  const mode = options.groupId === undefined
    ? ["-C", "-b", bootstrap, "-t", topic, "-e"]
    : ["-b", bootstrap, "-G", options.groupId]
  const args = [...mode, "-c", String(count), "-o", "beginning", "-f", "%s\\n", ...configArgs(options, {})]
  return runKcat(options.groupId === undefined ? args : [...args, topic], "", what, options).pipe(
    Effect.flatMap(({ stderr, stdout }) => {
      const lines = stdout.split("\n").slice(0, -1)
      return lines.length >= count
        ? Effect.succeed(lines)
        : Effect.fail(new Error(`${what}: only ${lines.length} arrived; stderr:\n${stderr}`))
    })
  )
}

// ---------------------------------------------------------------------------------------------
// rdkafka-client: librdkafka 2.15.1, the flexible API versions

const RDKAFKA_SOURCE = fileURLToPath(new URL("./rdkafka-client.c", import.meta.url))
const RDKAFKA_BUILD = fileURLToPath(new URL("./build-rdkafka-client.sh", import.meta.url))
/** Where build-rdkafka-client.sh puts it: beside mockcluster, in kafka-mock.sh's cache. */
const RDKAFKA_CLIENT = join(
  process.env["KMOCK_DIR"] ?? join(process.env["XDG_CACHE_HOME"] ?? join(homedir(), ".cache"), "spore-kafka-mock"),
  "rdkafka-client"
)
/** Compiling takes well under a second; a missing librdkafka.a first costs a mock build (~1 min). */
const RDKAFKA_BUILD_SECONDS = 150

const fresh = () => existsSync(RDKAFKA_CLIENT) && statSync(RDKAFKA_CLIENT).mtimeMs > statSync(RDKAFKA_SOURCE).mtimeMs

/** The client's path, (re)building it first when it is missing or older than its source. */
const rdkafkaClient: Effect.Effect<Program, Error> = Effect.suspend(() =>
  fresh()
    ? Effect.void
    : Effect.asVoid(runProgram(
      { name: "build-rdkafka-client.sh", file: "bash", hint: "it needs bash and gcc" },
      [RDKAFKA_BUILD],
      "",
      `building ${RDKAFKA_CLIENT}`,
      { timeoutSeconds: RDKAFKA_BUILD_SECONDS }
    ))
).pipe(Effect.as({ name: "rdkafka-client", file: RDKAFKA_CLIENT, hint: `bash ${RDKAFKA_BUILD}` }))

export interface RdkafkaOptions extends KafkaClientOptions {
  /** Extra librdkafka properties, passed as `-X key=value` (over the client's own defaults). */
  readonly config?: Readonly<Record<string, string>>
  /**
   * librdkafka's `debug` contexts (`-d`), e.g. `"protocol"`: every request is then logged to
   * stderr as `Sent MetadataRequest (v12, ...)`; see `sentRequestVersions`. Unset, the client
   * still honours `RDKAFKA_DEBUG` from the environment.
   */
  readonly debug?: string
}

export interface RdkafkaProduceOptions extends RdkafkaOptions {
  /** With a message count: the messages are `${prefix}-0`, `${prefix}-1`, ... ("message" by default). */
  readonly prefix?: string
}

export interface RdkafkaProduced {
  /** What was produced, in order; message i went to partition i % partitions. */
  readonly messages: ReadonlyArray<string>
  /** Everything the client wrote to stderr (its summary; librdkafka's log and debug lines). */
  readonly stderr: string
}

export interface RdkafkaConsumed {
  /** The first `count` records, in arrival order. */
  readonly records: ReadonlyArray<KafkaRecord>
  readonly stderr: string
}

const rdkafkaArgs = (options: RdkafkaOptions, defaults: Record<string, string>) => [
  ...(options.debug === undefined ? [] : ["-d", options.debug]),
  ...configArgs(options, defaults)
]

/**
 * Produces `messages` (a list, none containing a newline; or a count, see `prefix`) to `topic`
 * with acks=all, message i to partition i % partitions, and waits for every delivery report.
 * Fails when any message is not delivered (the client then exits 1 with librdkafka's reasons
 * shortly before the bound) or at the bound. The client itself gives up after 20 s.
 */
export const rdkafkaProduce = (
  bootstrap: string,
  topic: string,
  messages: ReadonlyArray<string> | number,
  options: RdkafkaProduceOptions = {}
): Effect.Effect<RdkafkaProduced, Error> => {
  const prefix = options.prefix ?? "message"
  const values = typeof messages === "number" ? Array.from({ length: messages }, (_, i) => `${prefix}-${i}`) : messages
  const what = `rdkafka-client producing ${values.length} messages to ${topic} via ${bootstrap}`
  if (values.some((message) => message.includes("\n"))) {
    return Effect.fail(new Error(`${what}: a message contains a newline`))
  }
  const timeoutMs = (options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS) * 1000
  const defaults = { "message.timeout.ms": String(Math.max(1_000, timeoutMs - 2_000)) }
  const [mode, input] = typeof messages === "number"
    ? [[String(messages), prefix], ""]
    : [["-"], messages.map((message) => `${message}\n`).join("")]
  return rdkafkaClient.pipe(
    Effect.flatMap((client) =>
      runProgram(client, [...rdkafkaArgs(options, defaults), "produce", bootstrap, topic, ...mode], input, what, options)
    ),
    Effect.map(({ stderr }) => ({ messages: values, stderr }))
  )
}

/**
 * Joins consumer group `groupId` on `topic` (auto.offset.reset=earliest) and returns the first
 * `count` records; fails when the client fails or at the bound (the client itself gives up
 * after 30 s). It commits and leaves the group before it exits.
 */
export const rdkafkaConsumeGroup = (
  bootstrap: string,
  topic: string,
  groupId: string,
  count: number,
  options: RdkafkaOptions = {}
): Effect.Effect<RdkafkaConsumed, Error> => {
  const what = `rdkafka-client group ${groupId} consuming ${count} messages from ${topic} via ${bootstrap}`
  return rdkafkaClient.pipe(
    Effect.flatMap((client) =>
      runProgram(
        client,
        [...rdkafkaArgs(options, {}), "consume", bootstrap, topic, groupId, String(count)],
        "",
        what,
        options
      )
    ),
    Effect.flatMap(({ stderr, stdout }) => {
      const records = stdout.split("\n").slice(0, -1).map((line) => {
        const [partition, offset, ...value] = line.split("\t")
        return { partition: Number(partition), offset: offset ?? "", value: value.join("\t") }
      })
      return records.length >= count
        ? Effect.succeed({ records: records.slice(0, count), stderr })
        : Effect.fail(new Error(`${what}: only ${records.length} arrived; stderr:\n${stderr}`))
    })
  )
}

/**
 * From an rdkafka-client stderr with `debug: "protocol"`: every request name (as librdkafka
 * names it: `Metadata`, `Produce`, `FindCoordinator`, `ApiVersion`, ...) and the versions sent,
 * ascending.
 */
export const sentRequestVersions = (stderr: string): ReadonlyMap<string, ReadonlyArray<number>> => {
  const sent = new Map<string, Set<number>>()
  for (const match of stderr.matchAll(/Sent (\w+)Request \(v(\d+),/g)) {
    const versions = sent.get(match[1]!) ?? new Set<number>()
    sent.set(match[1]!, versions.add(Number(match[2])))
  }
  return new Map([...sent].map(([api, versions]) => [api, [...versions].sort((a, b) => a - b)]))
}
