/**
 * Log lines for refusals that a flood can repeat thousands of times a second: the first of a
 * kind is logged at once, later ones at most once per INTERVAL with a count of those not logged.
 */
import { Clock, Duration, Effect } from "effect"

export const INTERVAL = Duration.seconds(10)

/** Logs `text` as a warning unless a line of the same `kind` was logged within INTERVAL. */
export type RefusalLog = (kind: string, text: string) => Effect.Effect<void>

export const makeRefusalLog = (): RefusalLog => {
  // One entry per kind; kinds are a fixed set of reasons, at most per tunnel port.
  const lastLines = new Map<string, { at: number; unlogged: number }>()
  const intervalMs = Duration.toMillis(INTERVAL)
  return (kind, text) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const last = lastLines.get(kind)
      if (last !== undefined && now - last.at < intervalMs) {
        last.unlogged++
        return Effect.void
      }
      lastLines.set(kind, { at: now, unlogged: 0 })
      const more = last !== undefined && last.unlogged > 0 ? ` (${last.unlogged} more like it since the last such line)` : ""
      return Effect.logWarning(`${text}${more}`)
    })
}
