/**
 * Option builders shared by the commands: every option says its default and its environment
 * variables in `--help`, and reads them in the order given (SPORE_* before BORE_*).
 */
import { Options } from "@effect/cli"
import { Config, Data, Effect, Option, Redacted } from "effect"
import * as net from "node:net"

/** A command-line value that makes no sense; reported in one line with exit code 2. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}

const firstOf = <A>(read: (name: string) => Config.Config<A>, names: ReadonlyArray<string>) =>
  names.map(read).reduce((first, next) => Config.orElse(first, () => next))

const describe = (text: string, defaultText: string | undefined, env: ReadonlyArray<string>) =>
  [text, defaultText === undefined ? "" : ` Default: ${defaultText}.`, env.length === 0 ? "" : ` Env: ${env.join(", ")}.`]
    .join("")

export const integerOption = (name: string, text: string, options: { default: number; env?: ReadonlyArray<string>; alias?: string }) => {
  const env = options.env ?? []
  let option = Options.integer(name).pipe(Options.withDescription(describe(text, String(options.default), env)))
  if (options.alias !== undefined) option = Options.withAlias(option, options.alias)
  return env.length === 0
    ? Options.withDefault(option, options.default)
    : option.pipe(Options.withFallbackConfig(firstOf(Config.integer, env)), Options.withDefault(options.default))
}

/**
 * An integer flag whose default is applied later (it may come from a config file between the
 * command line and the default); `--help` still shows the default.
 */
export const optionalIntegerOption = (name: string, text: string, options: { defaultText: string; env?: ReadonlyArray<string> }) => {
  const env = options.env ?? []
  const option = Options.integer(name).pipe(Options.withDescription(describe(text, options.defaultText, env)))
  return Options.optional(env.length === 0 ? option : Options.withFallbackConfig(option, firstOf(Config.integer, env)))
}

interface TextOptionSettings {
  readonly env?: ReadonlyArray<string>
  readonly alias?: string
}

const textFlag = (name: string, text: string, defaultText: string | undefined, settings: TextOptionSettings) => {
  const env = settings.env ?? []
  let option = Options.text(name).pipe(Options.withDescription(describe(text, defaultText, env)))
  if (settings.alias !== undefined) option = Options.withAlias(option, settings.alias)
  return env.length === 0 ? option : Options.withFallbackConfig(option, firstOf(Config.string, env))
}

/** A text flag with a default. */
export const textOption = (name: string, text: string, settings: TextOptionSettings & { readonly default: string }) =>
  Options.withDefault(textFlag(name, text, settings.default, settings), settings.default)

/** A text flag that may be left out (its default, if any, depends on other flags). */
export const optionalTextOption = (name: string, text: string, settings: TextOptionSettings = {}) =>
  Options.optional(textFlag(name, text, undefined, settings))

/** The shared secret: never echoed in help, logs or errors. */
export const secretOption = Options.redacted("secret").pipe(
  Options.withAlias("s"),
  Options.withDescription(describe(
    "Secret shared by server and clients; connections must prove they know it.",
    undefined,
    ["SPORE_SECRET", "BORE_SECRET"]
  )),
  Options.withFallbackConfig(firstOf(Config.redacted, ["SPORE_SECRET", "BORE_SECRET"])),
  // The flag parser types its value as Redacted<unknown>; it is always text.
  Options.map((secret) => Redacted.make(String(Redacted.value(secret)))),
  Options.optional
)

/** Keeps an empty secret (e.g. an unset variable in a unit file) from meaning "no secret". */
export const checkSecret = (secret: Option.Option<Redacted.Redacted<string>>) =>
  Option.isSome(secret) && Redacted.value(secret.value).length === 0
    ? Effect.fail(new UsageError({ message: "--secret is empty; leave it out to run without a secret" }))
    : Effect.succeed(secret)

export const checkPort = (name: string, value: number, options: { allowZero: boolean }) =>
  Number.isInteger(value) && value >= (options.allowZero ? 0 : 1) && value <= 65535
    ? Effect.succeed(value)
    : Effect.fail(new UsageError({ message: `--${name} must be a port number from ${options.allowZero ? 0 : 1} to 65535, not ${value}` }))

export const checkIpAddress = (name: string, value: string) =>
  net.isIP(value) === 0
    ? Effect.fail(new UsageError({ message: `--${name} must be an IP address, not ${JSON.stringify(value)}` }))
    : Effect.succeed(value)

/** How log lines look (both commands): `text` or `json`, checked by `checkChoice`. */
export const logFormatOption = textOption("log-format", "Log lines as text for people, or json: one object a line for machines.", {
  default: "text",
  env: ["SPORE_LOG_FORMAT"]
})

/** One of a few words; the error names the flag and the words. */
export const checkChoice = <const W extends string>(name: string, value: string, words: ReadonlyArray<W>) =>
  (words as ReadonlyArray<string>).includes(value)
    ? Effect.succeed(value as W)
    : Effect.fail(new UsageError({ message: `--${name} must be ${words.join(" or ")}, not ${value}` }))

/** Where to serve Prometheus metrics (both commands). */
export const metricsAddrOption = optionalTextOption(
  "metrics-addr",
  "Serve Prometheus metrics at http://HOST:PORT/metrics (and /healthz), e.g. 127.0.0.1:9100. Default: off.",
  { env: ["SPORE_METRICS_ADDR"] }
)

/**
 * HOST:PORT (an IPv6 host in brackets) as a host and a port. The host must be an IP address
 * (an address to listen on) unless `names` allows host names (an address to connect to).
 */
export const checkHostPort = (name: string, text: string, options: { names: boolean } = { names: false }) => {
  const match = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text)
  const host = match?.[1] ?? match?.[2]
  const port = Number(match?.[3])
  return host !== undefined && (options.names || net.isIP(host) !== 0) && port >= 0 && port <= 65535
    ? Effect.succeed({ host, port })
    : Effect.fail(new UsageError({
      message: options.names
        ? `--${name} must be HOST:PORT, not ${text}`
        : `--${name} must be IP:PORT (like 127.0.0.1:9100 or [::1]:9100), not ${text}`
    }))
}

/** How long a graceful shutdown waits for forwarded connections (both commands). */
export const drainOption = integerOption(
  "drain-seconds",
  "On SIGINT or SIGTERM, stop accepting and let open connections finish for up to this long; a second signal stops at once.",
  { default: 10, env: ["SPORE_DRAIN_SECONDS"] }
)

/** `--sndbuf` and `--recbuf`: kernel socket buffer sizes in bytes, unset by default. */
export const bufferOptions = {
  sndbuf: Options.integer("sndbuf").pipe(
    Options.withDescription(describe("SO_SNDBUF in bytes for every socket (Linux reports double).", "the kernel's autotuning", ["SPORE_SNDBUF"])),
    Options.withFallbackConfig(Config.integer("SPORE_SNDBUF")),
    Options.optional
  ),
  recbuf: Options.integer("recbuf").pipe(
    Options.withDescription(describe("SO_RCVBUF in bytes for every socket (Linux reports double).", "the kernel's autotuning", ["SPORE_RECBUF"])),
    Options.withFallbackConfig(Config.integer("SPORE_RECBUF")),
    Options.optional
  )
}

/** Smallest and largest buffer sizes accepted (the kernel caps large ones at its own maximum). */
const BUFFER_RANGE = { min: 1024, max: 1 << 30 }

export const checkBuffers = (flags: { readonly sndbuf: Option.Option<number>; readonly recbuf: Option.Option<number> }) =>
  Effect.gen(function*() {
    const check = (name: string, value: Option.Option<number>) =>
      Option.match(value, {
        onNone: () => Effect.succeed(undefined),
        onSome: (bytes) =>
          Number.isInteger(bytes) && bytes >= BUFFER_RANGE.min && bytes <= BUFFER_RANGE.max
            ? Effect.succeed(bytes)
            : Effect.fail(new UsageError({ message: `--${name} must be a number of bytes from ${BUFFER_RANGE.min} to ${BUFFER_RANGE.max}, not ${bytes}` }))
      })
    const sndbuf = yield* check("sndbuf", flags.sndbuf)
    const rcvbuf = yield* check("recbuf", flags.recbuf)
    return { ...(sndbuf === undefined ? {} : { sndbuf }), ...(rcvbuf === undefined ? {} : { rcvbuf }) }
  })

export const checkSeconds = (name: string, value: number, options: { min: number }) =>
  Number.isInteger(value) && value >= options.min && value <= 86_400
    ? Effect.succeed(value)
    : Effect.fail(new UsageError({ message: `--${name} must be a whole number of seconds from ${options.min} to 86400, not ${value}` }))

/** A limit: a whole number from 1 to a million. */
export const checkCount = (name: string, value: number, range: { readonly min: number; readonly max: number } = { min: 1, max: 1_000_000 }) =>
  Number.isInteger(value) && value >= range.min && value <= range.max
    ? Effect.succeed(value)
    : Effect.fail(new UsageError({ message: `--${name} must be a whole number from ${range.min} to ${range.max}, not ${value}` }))
