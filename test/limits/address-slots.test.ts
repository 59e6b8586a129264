import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { makeAddressSlots } from "../../src/limits/address-slots.js"

describe("address slots", () => {
  it.effect("gives one address at most max, others their own, and frees a slot when its scope closes", () =>
    Effect.gen(function*() {
      const slots = makeAddressSlots(2)
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      expect(yield* Scope.extend(slots.take("127.0.0.2"), first)).toBe(true)
      // The same host through a dual-stack listener counts as the same address.
      expect(yield* Scope.extend(slots.take("::ffff:127.0.0.2"), second)).toBe(true)
      const third = yield* Scope.make()
      expect(yield* Scope.extend(slots.take("127.0.0.2"), third)).toBe(false)
      expect(yield* Scope.extend(slots.take("127.0.0.3"), third)).toBe(true)
      yield* Scope.close(first, Exit.void)
      expect(yield* Scope.extend(slots.take("127.0.0.2"), third)).toBe(true)
      expect(yield* Scope.extend(slots.take("127.0.0.2"), third)).toBe(false)
      // A refused take holds nothing: closing every scope frees every slot.
      yield* Scope.close(second, Exit.void)
      yield* Scope.close(third, Exit.void)
      const again = yield* Scope.make()
      expect(yield* Scope.extend(slots.take("127.0.0.2"), again)).toBe(true)
      expect(yield* Scope.extend(slots.take("127.0.0.2"), again)).toBe(true)
      expect(yield* Scope.extend(slots.take("127.0.0.2"), again)).toBe(false)
    }))
})
