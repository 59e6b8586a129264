/**
 * Log lines on stderr (stdout stays free for output), in one of two formats:
 * - text (the default): `<time> <LEVEL> <message> key=value ...`, for people;
 * - json (`--log-format json`): one object a line, `{"time","level","message",...}` with every
 *   annotation (tunnel, conn, peer, visitor) as a field of its own, for machines.
 */
import { Data, Effect, HashMap, Layer, Logger } from "effect"
import { checkChoice } from "./options.js"

export type LogFormat = "text" | "json"

const messageText = (message: unknown) => (Array.isArray(message) ? message : [message]).map(String).join(" ")

const format = (value: unknown) => {
  const text = typeof value === "string" ? value : JSON.stringify(value)
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text
}

export const textLogger = Logger.make(({ annotations, date, logLevel, message }) => {
  const fields = HashMap.reduce(annotations, "", (line, value, key) => `${line} ${key}=${format(value)}`)
  process.stderr.write(`${date.toISOString()} ${logLevel.label} ${messageText(message)}${fields}\n`)
})

export const jsonLogger = Logger.make(({ annotations, date, logLevel, message }) => {
  const line: Record<string, unknown> = { time: date.toISOString(), level: logLevel.label, message: messageText(message) }
  for (const [key, value] of annotations) line[key] = value
  process.stderr.write(`${JSON.stringify(line)}\n`)
})

/** Text, installed once for the whole program (main.ts), until a command says otherwise. */
export const layer = Logger.replace(Logger.defaultLogger, textLogger)

/** For a command's run: the logger `format` asks for in place of the program's text logger. */
export const layerFor = (format: LogFormat) => format === "json" ? Logger.replace(textLogger, jsonLogger) : Layer.empty

/** A failure's line: its message (a parse error's with its reason: the message is bore's wire text). */
export const describeError = (error: unknown): string => {
  if (typeof error !== "object" || error === null || !("message" in error)) return String(error)
  const detail = "_tag" in error && error._tag === "MessageParseError" && "reason" in error ? `: ${String(error.reason)}` : ""
  return `${String(error.message)}${detail}`
}

/**
 * A command's failure that has been logged already (as a JSON line, under `--log-format json`):
 * main.ts only exits with `exitCode`.
 */
export class ReportedFailure extends Data.TaggedError("ReportedFailure")<{ readonly exitCode: number }> {}

/** The exit code of a failure: 2 for a usage error, 1 for anything else. */
export const exitCodeOf = (error: unknown) =>
  typeof error === "object" && error !== null && "_tag" in error && error._tag === "UsageError" ? 2 : 1

/**
 * Runs a command with `--log-format` checked (a usage error otherwise) and its logger in place.
 * Under json, the failure that ends the command is a JSON line too (level FATAL), so that a
 * machine reading the log sees why it stopped.
 */
export const withLogFormat = <A, E, R>(flag: string, run: (format: LogFormat) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(checkChoice("log-format", flag, ["text", "json"] as const), (format) =>
    Effect.provide(
      Effect.catchAll(run(format), (error): Effect.Effect<never, E | ReportedFailure> =>
        format === "json"
          ? Effect.zipRight(Effect.logFatal(describeError(error)), Effect.fail(new ReportedFailure({ exitCode: exitCodeOf(error) })))
          : Effect.fail(error)),
      layerFor(format)
    ))
