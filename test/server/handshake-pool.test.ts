/**
 * The handshake pool on its own: it never refuses, and when full it gives up the oldest handshake
 * of the address holding the most, checked against a plain model for arbitrary sequences.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { type Handshake, makeHandshakePool } from "../../src/server/handshake-pool.js"

const handshake = (address: string, log: Array<string> = []): Handshake & { readonly name: string } => {
  const name = `${address}#${log.length}`
  return { address, name, evict: () => log.push(`evicted ${name}`) }
}

describe("handshake pool", () => {
  it("takes every newcomer; a full pool gives up the heaviest address's oldest handshake", () => {
    const pool = makeHandshakePool(4)
    const a = [handshake("a"), handshake("a"), handshake("a")]
    const b = handshake("b")
    for (const h of [...a, b]) expect(pool.add(h)).toBeUndefined()
    expect(pool.size()).toBe(4)
    // Full: the newcomer from c takes the place of a's oldest.
    const c = handshake("c")
    expect(pool.add(c)).toBe(a[0])
    expect(pool.sizeOf("a")).toBe(2)
    // a still holds the most.
    expect(pool.add(handshake("d"))).toBe(a[1])
    // Now every address holds one: the address that came down (or up) to one first pays, b.
    expect(pool.add(handshake("e"))).toBe(b)
    expect(pool.remove(b)).toBe(false)
    expect(pool.remove(a[2]!)).toBe(true)
    expect(pool.size()).toBe(3)
  })

  it("matches a model for any sequence of arrivals and departures", () => {
    type Op = { readonly add: string } | { readonly remove: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ add: fc.constantFrom("a", "b", "c", "d", "e") }),
      fc.record({ remove: fc.nat(40) })
    )
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 200 }), (capacity, ops) => {
      const pool = makeHandshakePool(capacity)
      // The model: handshakes in arrival order.
      let held: Array<Handshake> = []
      for (const step of ops) {
        if ("add" in step) {
          const newcomer = handshake(step.add)
          let expected: Handshake | undefined
          if (held.length >= capacity) {
            const counts = new Map<string, number>()
            for (const h of held) counts.set(h.address, (counts.get(h.address) ?? 0) + 1)
            const most = Math.max(...counts.values())
            // Any address holding the most may pay; it gives up its oldest.
            const evicted = pool.add(newcomer)!
            expect(counts.get(evicted.address)).toBe(most)
            expected = held.find((h) => h.address === evicted.address)
            expect(evicted).toBe(expected)
            held = held.filter((h) => h !== evicted)
          } else {
            expect(pool.add(newcomer)).toBeUndefined()
          }
          held.push(newcomer)
        } else if (held.length > 0) {
          const leaving = held[step.remove % held.length]!
          expect(pool.remove(leaving)).toBe(true)
          held = held.filter((h) => h !== leaving)
        }
        expect(pool.size()).toBe(held.length)
        expect(pool.size()).toBeLessThanOrEqual(capacity)
      }
    }))
  })
})
