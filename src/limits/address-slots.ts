/**
 * Slots per peer address: at most `max` held at once by one address, each held until the scope
 * that took it closes. The server's control connections (`--max-conns-per-ip`) and the HTTP
 * front's open connections (`--max-http-conns-per-ip`) are counted this way, so one address
 * cannot take every descriptor however slowly it sends.
 *
 * Only addresses holding a slot have an entry, so the map is bounded by the slots held.
 */
import { Effect, type Scope } from "effect"
import { unmappedAddress } from "../net/address.js"

export interface AddressSlots {
  /** Takes a slot for `address` until the scope closes; false (and nothing held) when it has `max`. */
  readonly take: (address: string) => Effect.Effect<boolean, never, Scope.Scope>
}

export const makeAddressSlots = (max: number): AddressSlots => {
  const heldBy = new Map<string, number>()
  const release = (key: string) =>
    Effect.sync(() => {
      const left = (heldBy.get(key) ?? 1) - 1
      if (left === 0) heldBy.delete(key)
      else heldBy.set(key, left)
    })
  return {
    // Uninterruptible: a slot counted is always a slot whose release is registered.
    take: (address) =>
      Effect.uninterruptible(Effect.suspend(() => {
        const key = unmappedAddress(address)
        const open = heldBy.get(key) ?? 0
        if (open >= max) return Effect.succeed(false)
        heldBy.set(key, open + 1)
        return Effect.as(Effect.addFinalizer(() => release(key)), true)
      }))
  }
}
