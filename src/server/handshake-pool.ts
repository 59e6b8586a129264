/**
 * The connections to the control port that are still in their handshake (no first message yet),
 * kept in arrival order and counted per source address, so that a full pool can make room fairly.
 *
 * The pool never turns a newcomer away. When it is full, the newcomer takes the place of another
 * handshake, which is closed silently (it may be an honest data stream whose client has already
 * spliced it to a local service, so no Error frame):
 * - the oldest handshake of all, if it has waited longer than STALE_MS: an honest handshake takes
 *   a round trip or two, so one that has said nothing for that long is most likely idle on
 *   purpose, wherever it comes from (a flood from many addresses, each holding a few);
 * - otherwise the oldest handshake of the address that holds the most: a flood fast enough that
 *   nothing grows stale only ever closes its own sockets, and an honest burst (a client opening a
 *   thousand data streams at once) is safe from idle sockets because those are stale.
 * To close an honest handshake an attacker must hold more handshakes per address than the honest
 * peer and replace the whole pool within an honest round trip.
 *
 * Finding "the address that holds the most" is O(1): addresses are kept in buckets by how many
 * handshakes they hold, and a count only ever moves by one. Among addresses holding as many, the
 * one that reached that count first pays.
 */

/** A handshake silent for longer than this is the first to go when the pool is full. */
export const STALE_MS = 1000

/** One connection in its handshake. */
export interface Handshake {
  readonly address: string
  /** When it arrived (ms, any clock the caller keeps to). */
  readonly since: number
  /** Closes the connection (it was chosen to make room). */
  readonly evict: () => void
}

export interface HandshakePool {
  /**
   * Adds a handshake arriving at `handshake.since`; when the pool was full, first removes and
   * returns the one chosen to make room (its caller closes it).
   */
  readonly add: (handshake: Handshake) => Handshake | undefined
  /** Removes a handshake that ended (false if it had already been evicted). */
  readonly remove: (handshake: Handshake) => boolean
  /** Handshakes in the pool now. */
  readonly size: () => number
  /** Handshakes from `address` in the pool now. */
  readonly sizeOf: (address: string) => number
}

export const makeHandshakePool = (capacity: number): HandshakePool => {
  // Insertion-ordered sets: the first entry is the oldest.
  const all = new Set<Handshake>()
  const byAddress = new Map<string, Set<Handshake>>()
  const addressesByCount = new Map<number, Set<string>>()
  let heaviest = 0
  let total = 0

  const move = (address: string, from: number, to: number) => {
    if (from > 0) {
      const bucket = addressesByCount.get(from)!
      bucket.delete(address)
      if (bucket.size === 0) {
        addressesByCount.delete(from)
        // Counts move by one: the next heaviest holds `to` (this address) or none hold any.
        if (from === heaviest) heaviest = to
      }
    }
    if (to > 0) {
      let bucket = addressesByCount.get(to)
      if (bucket === undefined) addressesByCount.set(to, bucket = new Set())
      bucket.add(address)
      if (to > heaviest) heaviest = to
    }
  }

  const remove = (handshake: Handshake) => {
    const own = byAddress.get(handshake.address)
    if (own === undefined || !own.delete(handshake)) return false
    all.delete(handshake)
    total--
    move(handshake.address, own.size + 1, own.size)
    if (own.size === 0) byAddress.delete(handshake.address)
    return true
  }

  const victim = (now: number): Handshake => {
    const oldest = all.values().next().value!
    if (now - oldest.since > STALE_MS) return oldest
    const address = addressesByCount.get(heaviest)!.values().next().value!
    return byAddress.get(address)!.values().next().value!
  }

  const add = (handshake: Handshake) => {
    let evicted: Handshake | undefined
    if (total >= capacity && total > 0) {
      evicted = victim(handshake.since)
      remove(evicted)
    }
    let own = byAddress.get(handshake.address)
    if (own === undefined) byAddress.set(handshake.address, own = new Set())
    own.add(handshake)
    all.add(handshake)
    total++
    move(handshake.address, own.size - 1, own.size)
    return evicted
  }

  return {
    add,
    remove,
    size: () => total,
    sizeOf: (address) => byAddress.get(address)?.size ?? 0
  }
}
