/**
 * Durations as Go writes and reads them (`time.ParseDuration`, `Duration.String`): NullBore's API
 * gives a tunnel's `ttl` this way ("1h", "90m", "1h30m", "2.5s"), and answers with Go's form
 * ("1h0m0s"). Milliseconds are as fine as Spore goes; anything finer is rounded down.
 */
import { Either } from "effect"

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  "μs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000
}

const PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y

/** `text` in milliseconds, or why it is not a Go duration (negative ones are refused too). */
export const parseGoDuration = (text: string): Either.Either<number, string> => {
  const invalid = Either.left(`"${text}" is not a duration (such as 90s, 30m, 1h30m)`)
  let rest = text.trim()
  if (rest.startsWith("-")) return Either.left(`"${text}" is negative`)
  if (rest.startsWith("+")) rest = rest.slice(1)
  // Go takes a bare 0 (and no other bare number).
  if (rest === "0") return Either.right(0)
  if (rest === "") return invalid
  let total = 0
  PART.lastIndex = 0
  while (PART.lastIndex < rest.length) {
    const at = PART.lastIndex
    const part = PART.exec(rest)
    if (part === null || part.index !== at) return invalid
    total += Number(part[1]) * UNIT_MS[part[2]!]!
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) return Either.left(`"${text}" is too long`)
  return Either.right(Math.floor(total))
}

/** `ms` as Go's `Duration.String` writes it: "0s", "500ms", "1m30s", "1h0m0s". */
export const formatGoDuration = (ms: number): string => {
  const whole = Math.max(0, Math.floor(ms))
  if (whole === 0) return "0s"
  if (whole < 1000) return `${whole}ms`
  const hours = Math.floor(whole / 3_600_000)
  const minutes = Math.floor((whole % 3_600_000) / 60_000)
  const seconds = String((whole % 60_000) / 1000)
  return `${hours > 0 ? `${hours}h` : ""}${hours > 0 || minutes > 0 ? `${minutes}m` : ""}${seconds}s`
}
