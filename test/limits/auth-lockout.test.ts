import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { makeAuthLockout, MAX_FAILURES, MAX_TRACKED } from "../../src/limits/auth-lockout.js"

const failTimes = (lockout: ReturnType<typeof makeAuthLockout>, address: string, times: number) =>
  Effect.forEach(Array.from({ length: times }), () => lockout.recordFailure(address))

describe("AuthLockout", () => {
  it.effect("five failures within a minute refuse the address for a minute, and only that address", () =>
    Effect.gen(function*() {
      const lockout = makeAuthLockout()
      expect(MAX_FAILURES).toBe(5)
      const results = yield* failTimes(lockout, "10.0.0.1", 5)
      expect(results).toEqual([false, false, false, false, true])
      expect(yield* lockout.isLocked("10.0.0.1")).toBe(true)
      expect(yield* lockout.isLocked("10.0.0.2")).toBe(false)
      // The mapped IPv6 form is the same address.
      expect(yield* lockout.isLocked("::ffff:10.0.0.1")).toBe(true)
      yield* TestClock.adjust("59999 millis")
      expect(yield* lockout.isLocked("10.0.0.1")).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* lockout.isLocked("10.0.0.1")).toBe(false)
    }))

  it.effect("failures more than a minute apart never add up to a lockout", () =>
    Effect.gen(function*() {
      const lockout = makeAuthLockout()
      for (let round = 0; round < 20; round++) {
        expect(yield* lockout.recordFailure("10.0.0.1")).toBe(false)
        yield* TestClock.adjust("15001 millis")
      }
      expect(yield* lockout.isLocked("10.0.0.1")).toBe(false)
    }))

  it.effect("a flood of failing addresses keeps the table bounded and locks out none of the others", () =>
    Effect.gen(function*() {
      const lockout = makeAuthLockout()
      yield* failTimes(lockout, "192.0.2.1", 5)
      for (let n = 0; n < MAX_TRACKED + 500; n++) {
        yield* lockout.recordFailure(`2001:db8::${n.toString(16)}`)
      }
      expect(yield* lockout.tracked).toBeLessThanOrEqual(MAX_TRACKED)
      expect(yield* lockout.isLocked("2001:db8::1")).toBe(false)
      expect(yield* lockout.isLocked("198.51.100.7")).toBe(false)
    }))
})
