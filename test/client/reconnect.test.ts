import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Random, Schedule } from "effect"
import { AuthenticationError, ClosedBeforeChallenge, ConnectError, ControlConnectionLost, HandshakeTimeout, HttpApiError, ServerRejected } from "../../src/errors.js"
import { isRetryable, reconnectSchedule } from "../../src/client/reconnect.js"
import { LimitTexts } from "../../src/errors.js"

/** The first `n` delays the schedule chooses. */
const delays = (schedule: Schedule.Schedule<Duration.Duration, unknown>, n: number) =>
  Effect.map(Schedule.run(schedule, 0, Array.from({ length: n })), (out) => Chunk.toArray(out).map(Duration.toMillis))

describe("reconnection policy", () => {
  it.effect("backs off from 1 s, doubling, jittered within ±25%, capped at the maximum", () =>
    Effect.gen(function*() {
      for (const seed of [1, 2, 3, 42]) {
        const chosen = yield* delays(reconnectSchedule(Duration.seconds(64)), 10).pipe(Effect.withRandom(Random.make(seed)))
        chosen.forEach((delay, i) => {
          const base = 1000 * 2 ** i
          expect(delay, `attempt ${i + 1}`).toBeGreaterThanOrEqual(Math.min(base * 0.75, 64_000))
          expect(delay, `attempt ${i + 1}`).toBeLessThanOrEqual(Math.min(base * 1.25, 64_000))
        })
        // From the 7th attempt on, the base (64 s and more) is past the cap.
        expect(chosen.slice(7).every((delay) => delay === 64_000)).toBe(true)
      }
    }))

  it.effect("jitter actually varies the delays", () =>
    Effect.gen(function*() {
      const first = yield* delays(reconnectSchedule(Duration.seconds(64)), 5).pipe(Effect.withRandom(Random.make(1)))
      const second = yield* delays(reconnectSchedule(Duration.seconds(64)), 5).pipe(Effect.withRandom(Random.make(2)))
      expect(first).not.toEqual(second)
    }))

  it.effect("a lower --max-reconnect-delay caps every delay", () =>
    Effect.gen(function*() {
      const chosen = yield* delays(reconnectSchedule(Duration.seconds(5)), 8)
      expect(Math.max(...chosen)).toBeLessThanOrEqual(5000)
      expect(chosen.at(-1)).toBe(5000)
    }))

  it("treats authentication and configuration errors as fatal, everything else as worth retrying", () => {
    expect(isRetryable(new AuthenticationError({ message: "server requires authentication, but no client secret was provided" }))).toBe(false)
    for (const fatal of ["invalid secret", "server requires secret, but no secret was provided", "client port number not in allowed range", "permission denied"]) {
      expect(isRetryable(ServerRejected.fromServerMessage(fatal)), fatal).toBe(false)
    }
    // The server's limits say "try again later": they are retried with the usual backoff.
    for (const transient of ["port already in use", "failed to find an available port", "failed to bind to port", "no tunnel to resume", "something new", ...Object.values(LimitTexts)]) {
      expect(isRetryable(ServerRejected.fromServerMessage(transient)), transient).toBe(true)
    }
    // spore http: the network, a busy server and a failing one are retried; a refused key or a taken name is not.
    for (const status of [0, 429, 500, 503]) expect(isRetryable(new HttpApiError({ status, reason: "x" })), String(status)).toBe(true)
    for (const status of [401, 403, 409]) expect(isRetryable(new HttpApiError({ status, reason: "x" })), String(status)).toBe(false)
    expect(isRetryable(new ConnectError({ host: "h", port: 1, reason: "ECONNREFUSED" }))).toBe(true)
    expect(isRetryable(new HandshakeTimeout())).toBe(true)
    expect(isRetryable(new ClosedBeforeChallenge())).toBe(true)
    expect(isRetryable(new ControlConnectionLost({ reason: "x" }))).toBe(true)
  })

  it("reads the server's Error text as the reason for its refusal, keeping the text for display", () => {
    const reasons = {
      "invalid secret": "invalid-secret",
      "server requires secret, but no secret was provided": "secret-required",
      "client port number not in allowed range": "port-not-allowed",
      "permission denied": "permission-denied",
      "port already in use": "port-in-use",
      "failed to bind to port": "port-unavailable",
      "failed to find an available port": "port-unavailable",
      "no tunnel to resume": "no-tunnel-to-resume",
      "something new": "refused",
      ...Object.fromEntries(Object.values(LimitTexts).map((text) => [text, "limit"]))
    }
    for (const [text, reason] of Object.entries(reasons)) {
      const refusal = ServerRejected.fromServerMessage(text)
      expect(refusal.reason, text).toBe(reason)
      expect(refusal.serverMessage).toBe(text)
      expect(refusal.message).toBe(`server error: ${text}`)
    }
  })
})
