import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Option, Scope, TestClock } from "effect"
import { make, makeVisitorCounts, PENDING_TIMEOUT } from "../../src/visitors/pending-registry.js"
import { closed, socketPair } from "../support/net.js"

/** Lets woken fibers run their finalizers after a clock adjustment. */
const settle = Effect.repeatN(Effect.yieldNow(), 10)

describe("PendingRegistry", () => {
  it.scoped("closes an unclaimed visitor after exactly 10 s and forgets it", () =>
    Effect.gen(function*() {
      expect(Duration.toMillis(PENDING_TIMEOUT)).toBe(10_000)
      const registry = yield* make()
      const counts = makeVisitorCounts()
      const { near: visitor, far: visitorPeer } = yield* socketPair
      const id = yield* registry.hold(visitor, counts)
      expect(yield* registry.size).toBe(1)

      yield* TestClock.adjust("9999 millis")
      yield* settle
      expect(yield* registry.size).toBe(1)
      expect(visitor.destroyed).toBe(false)

      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(yield* registry.size).toBe(0)
      expect(counts).toEqual({ waiting: 0, active: 0 })
      expect(visitor.destroyed).toBe(true)
      yield* closed(visitorPeer)
      expect(yield* registry.claim(id)).toEqual(Option.none())
    }))

  it.scoped("hands a visitor claimed before expiry to the claimant, who then owns it", () =>
    Effect.gen(function*() {
      const registry = yield* make()
      const counts = makeVisitorCounts()
      const { near: visitor } = yield* socketPair
      const id = yield* registry.hold(visitor, counts)
      yield* TestClock.adjust("9 seconds")
      const claimed = yield* registry.claim(id)
      expect(Option.getOrNull(claimed)?.visitor).toBe(visitor)
      expect(yield* registry.size).toBe(0)
      // The claimant now counts it as forwarded.
      expect(counts).toEqual({ waiting: 0, active: 1 })
      // A second claim for the same id gets nothing (bore: silent close).
      expect(yield* registry.claim(id)).toEqual(Option.none())
      // The expiry no longer applies: the claimant's socket stays open.
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(visitor.destroyed).toBe(false)
    }))

  it.scoped("closing the owning scope (the tunnel) closes every waiting visitor", () =>
    Effect.gen(function*() {
      const registry = yield* make()
      const counts = makeVisitorCounts()
      const tunnel = yield* Scope.make()
      const pairs = yield* Effect.all([socketPair, socketPair, socketPair])
      const ids = yield* Effect.forEach(pairs, ({ near }) => registry.hold(near, counts).pipe(Scope.extend(tunnel)))
      expect(yield* registry.size).toBe(3)
      expect(counts).toEqual({ waiting: 3, active: 0 })

      yield* Scope.close(tunnel, Exit.void)
      yield* settle
      expect(yield* registry.size).toBe(0)
      expect(counts).toEqual({ waiting: 0, active: 0 })
      for (const { near } of pairs) expect(near.destroyed).toBe(true)
      for (const id of ids) expect(yield* registry.claim(id)).toEqual(Option.none())
    }))

  it.scoped("a claimed visitor survives its tunnel's scope closing", () =>
    Effect.gen(function*() {
      const registry = yield* make()
      const counts = makeVisitorCounts()
      const tunnel = yield* Scope.make()
      const { near: visitor } = yield* socketPair
      const id = yield* registry.hold(visitor, counts).pipe(Scope.extend(tunnel))
      yield* registry.claim(id)
      yield* Scope.close(tunnel, Exit.void)
      yield* settle
      expect(visitor.destroyed).toBe(false)
    }))
})
