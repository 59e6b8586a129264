/**
 * When and how often a client tries again after losing its server.
 */
import { Duration, Schedule } from "effect"
import type { ServerRejected } from "../errors.js"

/**
 * Exponential backoff from 1 s, doubling, each delay jittered by ±25% and capped at `maxDelay`.
 * Outputs the delay before the next attempt. A new outage starts the schedule again from 1 s.
 */
export const reconnectSchedule = (maxDelay: Duration.Duration) =>
  Schedule.exponential(Duration.seconds(1), 2).pipe(
    Schedule.jitteredWith({ min: 0.75, max: 1.25 }),
    // The callback gets (output, delay): the output is the un-jittered base, so cap the delay.
    Schedule.modifyDelay((_, delay) => Duration.min(delay, maxDelay)),
    Schedule.delays
  )

/**
 * What the server says when retrying cannot help: a wrong or missing secret, or a request that
 * breaks its configuration. bore's texts, word for word.
 */
const FATAL_SERVER_ERRORS = new Set([
  "invalid secret",
  "server requires secret, but no secret was provided",
  "client port number not in allowed range",
  "permission denied"
])

/** Whether a failed attempt is worth repeating: everything but authentication and configuration. */
export const isRetryable = (error: { readonly _tag: string }): boolean => {
  if (error._tag === "AuthenticationError") return false
  if (error._tag === "ServerRejected") return !FATAL_SERVER_ERRORS.has((error as ServerRejected).serverMessage)
  return true
}
