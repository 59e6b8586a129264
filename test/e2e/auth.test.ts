/**
 * Secrets between a Spore client and a Spore server: right, wrong, and missing on either side,
 * with the texts bore's client prints.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, TestClock } from "effect"
import { clientConfig, echoService, randomPayload, roundTrip, sha256, startServer, startTunnel } from "../support/net.js"

describe("authentication end to end", () => {
  it.live("with the right secret, control and data streams authenticate and bytes flow", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const control = yield* startServer({ secret: "s3cret" })
      const port = yield* startTunnel(clientConfig(control, echo, { secret: "s3cret" }))
      const payload = randomPayload(256 * 1024)
      expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
    }).pipe(Effect.scoped))

  it.live("a wrong secret is refused with \"invalid secret\"", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const control = yield* startServer({ secret: "s3cret" })
      const result = yield* Effect.either(startTunnel(clientConfig(control, echo, { secret: "wrong" })))
      expect(Either.isLeft(result) && result.left.message).toBe("server error: invalid secret")
    }).pipe(Effect.scoped))

  it.live("a client without a secret is told the server requires one", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const control = yield* startServer({ secret: "s3cret" })
      const result = yield* Effect.either(startTunnel(clientConfig(control, echo)))
      expect(Either.isLeft(result) && result.left.message).toBe(
        "server requires authentication, but no client secret was provided"
      )
    }).pipe(Effect.scoped))

  it.scoped("a client with a secret facing a server without one gives up after 3 s", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const control = yield* startServer()
      const attempt = yield* Effect.fork(Effect.either(startTunnel(clientConfig(control, echo, { secret: "s3cret" }))))
      yield* TestClock.adjust("3 seconds")
      const result = yield* Fiber.join(attempt)
      expect(Either.isLeft(result) && result.left.message).toBe(
        "expected authentication challenge, but no secret was required"
      )
    }))
})
