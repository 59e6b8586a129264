/**
 * The handshake pool on its own: it never refuses; when full it gives up a stale handshake, or
 * else the oldest handshake of the address holding the most, checked against a plain model for
 * arbitrary sequences.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { type Handshake, makeHandshakePool, STALE_MS } from "../../src/server/handshake-pool.js"

const handshake = (address: string, since = 0): Handshake => ({ address, since, evict: () => {} })

describe("handshake pool", () => {
  it("takes every newcomer; a full pool with nothing stale gives up the heaviest address's oldest handshake", () => {
    const pool = makeHandshakePool(4)
    const a = [handshake("a"), handshake("a"), handshake("a")]
    const b = handshake("b")
    for (const h of [...a, b]) expect(pool.add(h)).toBeUndefined()
    expect(pool.size()).toBe(4)
    // Full: the newcomer from c takes the place of a's oldest.
    expect(pool.add(handshake("c"))).toBe(a[0])
    expect(pool.sizeOf("a")).toBe(2)
    // a still holds the most.
    expect(pool.add(handshake("d"))).toBe(a[1])
    // Now every address holds one: the address that came down (or up) to one first pays, b.
    expect(pool.add(handshake("e"))).toBe(b)
    expect(pool.remove(b)).toBe(false)
    expect(pool.remove(a[2]!)).toBe(true)
    expect(pool.size()).toBe(3)
  })

  it("gives up a stale handshake first, wherever it comes from, so an honest burst is safe from idle sockets", () => {
    const pool = makeHandshakePool(4)
    // Idle sockets from two addresses, one each, long ago.
    const idle = [handshake("x", 0), handshake("y", 0)]
    for (const h of idle) pool.add(h)
    // An honest client opens data streams at once: it soon holds the most.
    const burst = [handshake("client", 2000), handshake("client", 2000)]
    for (const h of burst) pool.add(h)
    const more = [handshake("client", 2001), handshake("client", 2001)]
    expect(pool.add(more[0]!)).toBe(idle[0])
    expect(pool.add(more[1]!)).toBe(idle[1])
    // Nothing stale left: now the heaviest address (the client) pays for the next.
    expect(pool.add(handshake("z", 2002))).toBe(burst[0])
  })

  it("matches a model for any sequence of arrivals, departures and the passing of time", () => {
    type Op = { readonly add: string } | { readonly remove: number } | { readonly wait: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ add: fc.constantFrom("a", "b", "c", "d", "e") }),
      fc.record({ remove: fc.nat(40) }),
      fc.record({ wait: fc.integer({ min: 0, max: 2 * STALE_MS }) })
    )
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 200 }), (capacity, ops) => {
      const pool = makeHandshakePool(capacity)
      let now = 0
      // The model: handshakes in arrival order.
      let held: Array<Handshake> = []
      for (const step of ops) {
        if ("wait" in step) {
          now += step.wait
        } else if ("add" in step) {
          const newcomer = handshake(step.add, now)
          if (held.length >= capacity) {
            const evicted = pool.add(newcomer)!
            if (now - held[0]!.since > STALE_MS) {
              expect(evicted).toBe(held[0])
            } else {
              const counts = new Map<string, number>()
              for (const h of held) counts.set(h.address, (counts.get(h.address) ?? 0) + 1)
              // Any address holding the most may pay; it gives up its oldest.
              expect(counts.get(evicted.address)).toBe(Math.max(...counts.values()))
              expect(evicted).toBe(held.find((h) => h.address === evicted.address))
            }
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
