/**
 * Visitors waiting for their tunnel's client to claim them with an `Accept`.
 *
 * Each visitor is held by its own fiber, forked into the scope of the tunnel that received it.
 * That fiber waits at most PENDING_TIMEOUT for a claim; its finalizer removes the entry and, if
 * nobody claimed the socket, closes it. So a visitor is closed when it expires, and also when its
 * tunnel closes (bore leaves such visitors dangling until they expire).
 */
import type * as net from "node:net"
import { Clock, Context, Duration, Effect, type Fiber, FiberId, Layer, Option, type Scope } from "effect"
import { randomUuid, type Uuid } from "../protocol/uuid.js"

/** How long a visitor waits to be claimed (bore: 10 s). */
export const PENDING_TIMEOUT = Duration.seconds(10)

/**
 * How many visitors of one tunnel are waiting and how many are forwarded: the registry keeps
 * `waiting`, whoever claims a visitor keeps `active`. The tunnel's limits read both.
 */
export interface VisitorCounts {
  waiting: number
  active: number
}

export const makeVisitorCounts = (): VisitorCounts => ({ waiting: 0, active: 0 })

/** A claimed visitor; its claimer must decrement `counts.active` when done with it. */
export interface ClaimedVisitor<A = net.Socket> {
  /** What was held: a TCP tunnel's visitor socket, an HTTP visitor waiting for its channel. */
  readonly visitor: A
  readonly counts: VisitorCounts
  /** How long it waited to be claimed. */
  readonly waited: Duration.Duration
}

interface Entry<A> {
  readonly visitor: A
  readonly counts: VisitorCounts
  /** The fiber holding the visitor: it sleeps out the timeout, and a claim interrupts it. */
  holder: Fiber.RuntimeFiber<void> | undefined
  readonly heldAt: number
  wasClaimed: boolean
}

/** What the registry tells whoever counts (the server's metrics). */
export interface PendingEvents {
  /** The number of waiting visitors changed by `delta`. */
  readonly waitingChanged: (delta: number) => void
  /** A visitor was closed because nobody claimed it in time. */
  readonly expired: () => void
}

const NO_EVENTS: PendingEvents = { waitingChanged: () => {}, expired: () => {} }

/** Why a held visitor was let go unclaimed. */
export type ReleaseReason = "expired" | "closed"

/** The registry over visitors of type A (sockets for TCP tunnels, see PendingRegistry). */
export interface PendingTable<A> {
  /**
   * Holds a visitor until claimed, for at most PENDING_TIMEOUT, as long as the scope is open,
   * counting it in `counts.waiting` meanwhile. `left` runs when it stops waiting, claimed or not.
   */
  readonly hold: (visitor: A, counts: VisitorCounts, left?: (id: Uuid) => void) => Effect.Effect<Uuid, never, Scope.Scope>
  /**
   * Takes a held visitor, moving it from `waiting` to `active` in its counts; the caller now owns
   * it. None if unknown, expired or taken.
   */
  readonly claim: (id: Uuid) => Effect.Effect<Option.Option<ClaimedVisitor<A>>>
  /** Whether visitor `id` is still waiting to be claimed. */
  readonly isWaiting: (id: Uuid) => Effect.Effect<boolean>
  /** How many visitors are waiting. */
  readonly size: Effect.Effect<number>
  /** Closes every waiting visitor now (the server is shutting down and will not claim them). */
  readonly closeAll: Effect.Effect<void>
}

/** The TCP tunnels' registry: visitor sockets waiting for an `Accept`. */
export class PendingRegistry extends Context.Tag("spore/PendingRegistry")<PendingRegistry, PendingTable<net.Socket>>() {}

/**
 * A registry over any kind of visitor; `release` lets go of one nobody claimed (it expired, or
 * its scope closed). The HTTP relay holds its visitors here too, with the same timeout.
 */
export const makeTable = <A>(release: (visitor: A, reason: ReleaseReason) => void, events: PendingEvents = NO_EVENTS) =>
  Effect.sync((): PendingTable<A> => {
  const entries = new Map<Uuid, Entry<A>>()
  const expiredIds = new Set<Uuid>()

  const hold = (visitor: A, counts: VisitorCounts, left?: (id: Uuid) => void) =>
    Effect.gen(function*() {
      const id = yield* randomUuid
      const heldAt = yield* Clock.currentTimeMillis
      const entry: Entry<A> = { visitor, counts, holder: undefined, heldAt, wasClaimed: false }
      entries.set(id, entry)
      counts.waiting++
      events.waitingChanged(1)
      // The holder's body is the timeout itself: it sleeps for PENDING_TIMEOUT, and a claim (or
      // closeAll) interrupts the sleep. One fiber and one timer per visitor, where a wait raced
      // against a timeout would take three fibers.
      entry.holder = yield* Effect.sleep(PENDING_TIMEOUT).pipe(
        Effect.zipRight(Effect.sync(() => {
          expiredIds.add(id)
          events.expired()
        })),
        Effect.zipRight(Effect.annotateLogs(Effect.logInfo(`visitor ${id} was not claimed in time; closed`), { conn: id })),
        Effect.interruptible,
        Effect.ensuring(Effect.sync(() => {
          entries.delete(id)
          left?.(id)
          if (!entry.wasClaimed) {
            counts.waiting--
            events.waitingChanged(-1)
            const expired = expiredIds.delete(id)
            release(visitor, expired ? "expired" : "closed")
          }
        })),
        Effect.forkScoped,
        // The fiber starts uninterruptible so its cleanup is installed even if the tunnel
        // closes before the fiber's first step (an interrupted fiber that never started would
        // skip its `ensuring`, leaking the socket and the entry).
        Effect.uninterruptible
      )
      // Claimed before the holder was there to interrupt (the fiber yielded in between).
      if (entry.wasClaimed) entry.holder.unsafeInterruptAsFork(FiberId.none)
      return id
    })

  const claim = (id: Uuid) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const entry = entries.get(id)
      if (entry === undefined) return Option.none()
      entries.delete(id)
      entry.wasClaimed = true
      entry.counts.waiting--
      entry.counts.active++
      events.waitingChanged(-1)
      entry.holder?.unsafeInterruptAsFork(FiberId.none)
      return Option.some<ClaimedVisitor<A>>({ visitor: entry.visitor, counts: entry.counts, waited: Duration.millis(now - entry.heldAt) })
    })

  return {
    hold,
    claim,
    isWaiting: (id) => Effect.sync(() => entries.has(id)),
    size: Effect.sync(() => entries.size),
    // Interrupting each holder unclaimed ends its wait; its finalizer closes the socket.
    closeAll: Effect.sync(() => {
      for (const entry of entries.values()) entry.holder?.unsafeInterruptAsFork(FiberId.none)
    })
  }
})

/** The TCP registry: an unclaimed visitor socket is closed. */
export const make = (events: PendingEvents = NO_EVENTS) =>
  Effect.map(makeTable<net.Socket>((socket) => socket.destroy(), events), PendingRegistry.of)

export const layer = (events?: PendingEvents) => Layer.effect(PendingRegistry, make(events))
