/**
 * Log lines on stderr (stdout stays free for output), in one of two formats:
 * - text (the default): `<time> <LEVEL> <message> key=value ...`, for people;
 * - json (`--log-format json`): one object a line, `{"time","level","message",...}` with every
 *   annotation (tunnel, conn, peer, visitor) as a field of its own, for machines.
 */
import { Effect, HashMap, Layer, Logger } from "effect"
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

/** Runs a command with `--log-format` checked (a usage error otherwise) and its logger in place. */
export const withLogFormat = <A, E, R>(flag: string, run: (format: LogFormat) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(checkChoice("log-format", flag, ["text", "json"] as const), (format) => Effect.provide(run(format), layerFor(format)))
