import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, TestClock } from "effect"
import { type Exhaustion, exhaustionOf, make, probeDevNull } from "../../src/net/descriptor-watch.js"

const settle = Effect.repeatN(Effect.yieldNow(), 10)

/** A watch over a probe the test controls, with its log lines collected. */
const watchWith = (state: { exhausted: Exhaustion | undefined }) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`))
    const logTo = Logger.replace(Logger.defaultLogger, logger)
    const watch = yield* make(Effect.sync(() => state.exhausted)).pipe(Effect.provide(logTo))
    return { report: (code: Exhaustion) => Effect.provide(watch.report(code), logTo), logs }
  })

describe("DescriptorWatch", () => {
  it.scoped("logs an episode once when it starts and once when it ends, however long it lasts", () =>
    Effect.gen(function*() {
      const state: { exhausted: Exhaustion | undefined } = { exhausted: undefined }
      const { logs } = yield* watchWith(state)
      yield* TestClock.adjust("3 seconds")
      expect(logs).toEqual([])

      state.exhausted = "EMFILE"
      for (let second = 0; second < 30; second++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      expect(logs).toHaveLength(1)
      expect(logs[0]).toMatch(/^WARN out of file descriptors \(EMFILE\): new connections are closed at once/)

      state.exhausted = undefined
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(logs).toHaveLength(2)
      expect(logs[1]).toMatch(/^INFO file descriptors available again after (29|30)s/)

      // A later episode is a new one, logged again.
      state.exhausted = "ENFILE"
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(logs.slice(2)).toHaveLength(1)
      expect(logs[2]).toMatch(/\(ENFILE\)/)
    }))

  it.scoped("failures reported by the server start an episode at once, and repeats add nothing", () =>
    Effect.gen(function*() {
      const state: { exhausted: Exhaustion | undefined } = { exhausted: undefined }
      const { logs, report } = yield* watchWith(state)
      state.exhausted = "EMFILE"
      for (let n = 0; n < 1000; n++) yield* report("EMFILE")
      expect(logs).toHaveLength(1)
      yield* TestClock.adjust("5 seconds")
      yield* settle
      expect(logs).toHaveLength(1)
    }))

  it("recognises both errno names, and the real probe finds a descriptor here", () => {
    expect(exhaustionOf(Object.assign(new Error("x"), { code: "EMFILE" }))).toBe("EMFILE")
    expect(exhaustionOf({ code: "ENFILE" })).toBe("ENFILE")
    expect(exhaustionOf({ code: "ECONNRESET" })).toBeUndefined()
    expect(exhaustionOf(undefined)).toBeUndefined()
    expect(Effect.runSync(probeDevNull)).toBeUndefined()
  })
})
