/**
 * Log lines on stderr: `<time> <LEVEL> <message> key=value ...`. Stdout stays free for output.
 */
import { HashMap, Logger } from "effect"

const format = (value: unknown) => {
  const text = typeof value === "string" ? value : JSON.stringify(value)
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text
}

export const stderrLogger = Logger.make(({ annotations, date, logLevel, message }) => {
  const text = (Array.isArray(message) ? message : [message]).map(String).join(" ")
  const fields = HashMap.reduce(annotations, "", (line, value, key) => `${line} ${key}=${format(value)}`)
  process.stderr.write(`${date.toISOString()} ${logLevel.label} ${text}${fields}\n`)
})

export const layer = Logger.replace(Logger.defaultLogger, stderrLogger)
