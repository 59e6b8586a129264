/**
 * How a client comes back after losing its server: which failures are worth another attempt,
 * how long to wait before each, and the loop every client runs (`reconnecting`).
 */
import { Duration, Effect, Option, Ref, Schedule, ScheduleDecision, type Scope } from "effect"
import { AuthenticationError, type ControlConnectionLost, HttpApiError, ServerRejected, type ServerRejectedReason, TlsVerifyError } from "../errors.js"
import type { ReconnectStatus } from "./status.js"

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
 * The refusals retrying cannot help: a wrong or missing secret, or a request that breaks the
 * server's configuration. Every other refusal (a limit, a port taken, a text we do not know) says
 * "try again", and is retried.
 */
const FATAL_REFUSALS: ReadonlySet<ServerRejectedReason> = new Set([
  "invalid-secret",
  "secret-required",
  "port-not-allowed",
  "permission-denied",
  "tls-required"
])

/**
 * Whether a failed attempt is worth repeating: everything but authentication and configuration.
 * For `spore http`, a refusal of its API is worth repeating when the network failed (status 0),
 * the server is busy (429) or failing (5xx).
 */
export const isRetryable = (error: { readonly _tag: string }): boolean => {
  if (error instanceof AuthenticationError || error instanceof TlsVerifyError) return false
  if (error instanceof ServerRejected) return !FATAL_REFUSALS.has(error.reason)
  if (error instanceof HttpApiError) return error.status === 0 || error.status === 429 || error.status >= 500
  return true
}

/**
 * Why an attempt failed, in plain words: a refusal is the server's own text ("server is busy, try
 * again later"), without the "server error:" of the fatal message.
 */
const attemptFailure = (error: { readonly message: string }) =>
  error instanceof ServerRejected ? error.serverMessage : error.message

/** Whether a client comes back at all, and its longest wait between two attempts. */
export interface ReconnectPolicy {
  readonly reconnect: boolean
  readonly maxReconnectDelay: Duration.Duration
}

/**
 * Runs a client's control sessions one after another: `establish` opens one, `serve` serves it
 * until its control connection is lost and returns why; each session's resources live in a scope
 * closed when it ends.
 *
 * With `policy.reconnect`, every loss and every failure to establish that `isRetryable` accepts
 * is followed by another attempt, after the backoff of `reconnectSchedule` (which starts again
 * with each session): it ends only on a failure retrying cannot help. After a loss, the loss
 * counts as the first failed attempt, so even the first attempt waits: a server that accepts and
 * drops at once cannot make the client spin. Without, the first failure or loss ends it.
 *
 * Reports each loss, each failed attempt that will be repeated, and each wait before the next.
 */
export const reconnecting = <A, E extends { readonly _tag: string; readonly message: string }, R, E2, R2, RR>(
  policy: ReconnectPolicy,
  report: (status: ReconnectStatus) => Effect.Effect<void, never, RR>,
  establish: Effect.Effect<A, E, R>,
  serve: (session: A) => Effect.Effect<ControlConnectionLost, E2, R2>
): Effect.Effect<never, E | E2 | ControlConnectionLost, Exclude<R | R2, Scope.Scope> | RR> =>
  Effect.gen(function*() {
    const attempt = Effect.tapError(establish, (error) =>
      isRetryable(error) ? report({ _tag: "AttemptFailed", reason: attemptFailure(error) }) : Effect.void)
    const backoff = reconnectSchedule(policy.maxReconnectDelay).pipe(
      Schedule.whileInput(isRetryable),
      // Reported only when there will be another attempt (a tap on the output would also fire
      // for the fatal error that ends the retries).
      Schedule.onDecision((delay, decision) =>
        ScheduleDecision.isContinue(decision) ? report({ _tag: "Retrying", delay }) : Effect.void
      )
    )
    const establishAfter = (lost: Option.Option<ControlConnectionLost>) =>
      Effect.gen(function*() {
        if (!policy.reconnect) return yield* establish
        const pendingLoss = yield* Ref.make(lost)
        const next = Effect.flatMap(
          Ref.getAndSet(pendingLoss, Option.none()),
          (loss): Effect.Effect<A, E | ControlConnectionLost, R | RR> => Option.isSome(loss) ? Effect.fail(loss.value) : attempt
        )
        return yield* Effect.retry(next, backoff)
      })

    let lost = Option.none<ControlConnectionLost>()
    while (true) {
      const loss = yield* Effect.scoped(Effect.flatMap(establishAfter(lost), serve))
      yield* report({ _tag: "Lost", reason: loss.reason })
      if (!policy.reconnect) return yield* loss
      lost = Option.some(loss)
    }
  })
