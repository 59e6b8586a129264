import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, TestClock } from "effect"
import { connect } from "../../src/net/socket.js"
import { blackHolePort } from "../support/black-hole.js"

describe("connect", () => {
  it.scoped("gives up on a connect that hangs after 3 s (bore's NETWORK_TIMEOUT)", () =>
    Effect.gen(function*() {
      const port = yield* blackHolePort
      const attempt = yield* Effect.fork(Effect.either(Effect.scoped(connect("127.0.0.1", port))))
      yield* TestClock.adjust("2999 millis")
      expect(attempt.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const result = yield* Fiber.join(attempt)
      expect(Either.isLeft(result) && result.left.message).toBe(`could not connect to 127.0.0.1:${port}: timed out`)
    }))

  it.scoped("reports a refused connect at once with its errno", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(connect("127.0.0.1", 1))
      expect(Either.isLeft(result) && result.left.message).toBe("could not connect to 127.0.0.1:1: ECONNREFUSED")
    }))
})
