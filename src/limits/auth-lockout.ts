/**
 * Temporary refusal of addresses that keep failing authentication: MAX_FAILURES failures within
 * WINDOW refuse the address for LOCKOUT.
 *
 * Only the failing address is refused, so an attacker cannot lock anyone else out. The table of
 * tracked addresses is bounded (MAX_TRACKED): when full, expired entries go first, then the
 * oldest. An attacker with many addresses can so make the table forget another attacker early,
 * never refuse an honest address. IPv4-mapped IPv6 addresses count as their IPv4 address.
 */
import { Clock, Duration, Effect } from "effect"
import { unmappedAddress } from "../net/address.js"

export const MAX_FAILURES = 5
export const WINDOW = Duration.minutes(1)
export const LOCKOUT = Duration.minutes(1)
export const MAX_TRACKED = 10_000

interface Record {
  /** Times of the failures within the window, oldest first. */
  failures: Array<number>
  /** Refused until then (ms since the epoch), or 0. */
  lockedUntil: number
}

export interface AuthLockout {
  /** Counts a failed authentication; true if the address is now refused. */
  readonly recordFailure: (address: string) => Effect.Effect<boolean>
  /** Whether the address is refused right now. */
  readonly isLocked: (address: string) => Effect.Effect<boolean>
  /** How many addresses are tracked (never more than MAX_TRACKED). */
  readonly tracked: Effect.Effect<number>
}


export const makeAuthLockout = (): AuthLockout => {
  const records = new Map<string, Record>()
  const windowMs = Duration.toMillis(WINDOW)
  const lockoutMs = Duration.toMillis(LOCKOUT)

  const isStale = (record: Record, now: number) =>
    record.lockedUntil <= now && (record.failures.at(-1) ?? 0) <= now - windowMs

  const makeRoom = (now: number) => {
    for (const [address, record] of records) {
      if (records.size < MAX_TRACKED) return
      if (isStale(record, now)) records.delete(address)
    }
    // Still full: forget the oldest entries (Map keeps insertion order).
    for (const address of records.keys()) {
      if (records.size < MAX_TRACKED) return
      records.delete(address)
    }
  }

  const recordFailure = (address: string) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const key = unmappedAddress(address)
      let record = records.get(key)
      if (record === undefined) {
        makeRoom(now)
        record = { failures: [], lockedUntil: 0 }
        records.set(key, record)
      }
      record.failures = record.failures.filter((time) => time > now - windowMs)
      record.failures.push(now)
      if (record.failures.length >= MAX_FAILURES) {
        record.failures = []
        record.lockedUntil = now + lockoutMs
        return true
      }
      return false
    })

  const isLocked = (address: string) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const key = unmappedAddress(address)
      const record = records.get(key)
      if (record === undefined) return false
      if (isStale(record, now)) records.delete(key)
      return record.lockedUntil > now
    })

  return { recordFailure, isLocked, tracked: Effect.sync(() => records.size) }
}
