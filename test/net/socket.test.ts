import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, TestClock } from "effect"
import { beginConnect, connect } from "../../src/net/socket.js"
import { eventually } from "../support/io.js"
import { echoService } from "../support/net.js"
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

describe("beginConnect", () => {
  it.scoped("gives up 3 s after the socket is first waited for, on a connect that hangs", () =>
    Effect.gen(function*() {
      const port = yield* blackHolePort
      const pending = yield* beginConnect("127.0.0.1", port)
      const attempt = yield* Effect.fork(Effect.either(pending.connected))
      yield* TestClock.adjust("2999 millis")
      expect(attempt.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const result = yield* Fiber.join(attempt)
      expect(Either.isLeft(result) && result.left.message).toBe(`could not connect to 127.0.0.1:${port}: timed out`)
    }))

  it.scoped("hands over a socket that connected meanwhile, and a refusal that came meanwhile, without waiting", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const good = yield* beginConnect("127.0.0.1", echo)
      const refused = yield* beginConnect("127.0.0.1", 1)
      let settled = 0
      for (const pending of [good, refused]) yield* Effect.fork(Effect.ensuring(Effect.either(pending.connected), Effect.sync(() => settled++)))
      yield* eventually(() => settled === 2, "both connects settled")
      const socket = yield* good.connected
      expect(socket.remotePort).toBe(echo)
      const failed = yield* Effect.either(refused.connected)
      expect(Either.isLeft(failed) && failed.left.message).toBe("could not connect to 127.0.0.1:1: ECONNREFUSED")
    }))
})
