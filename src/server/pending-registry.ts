/**
 * Visitors waiting for their tunnel's client to claim them with an `Accept`.
 *
 * Each visitor is held by its own fiber, forked into the scope of the tunnel that received it.
 * That fiber waits at most PENDING_TIMEOUT for a claim; its finalizer removes the entry and, if
 * nobody claimed the socket, closes it. So a visitor is closed when it expires, and also when its
 * tunnel closes (bore leaves such visitors dangling until they expire).
 */
import type * as net from "node:net"
import { Context, Deferred, Duration, Effect, Exit, Layer, Option, type Scope } from "effect"
import { randomUuid, type Uuid } from "../protocol/uuid.js"

/** How long a visitor waits to be claimed (bore: 10 s). */
export const PENDING_TIMEOUT = Duration.seconds(10)

interface Entry {
  readonly visitor: net.Socket
  readonly claimed: Deferred.Deferred<void>
  wasClaimed: boolean
}

export class PendingRegistry extends Context.Tag("spore/PendingRegistry")<PendingRegistry, {
  /** Holds a visitor until claimed, for at most PENDING_TIMEOUT, as long as the scope is open. */
  readonly hold: (visitor: net.Socket) => Effect.Effect<Uuid, never, Scope.Scope>
  /** Takes a held visitor; the caller now owns its socket. None if unknown, expired or taken. */
  readonly claim: (id: Uuid) => Effect.Effect<Option.Option<net.Socket>>
  /** Whether visitor `id` is still waiting to be claimed. */
  readonly isWaiting: (id: Uuid) => Effect.Effect<boolean>
  /** How many visitors are waiting. */
  readonly size: Effect.Effect<number>
}>() {}

export const make = Effect.sync(() => {
  const entries = new Map<Uuid, Entry>()

  const hold = (visitor: net.Socket) =>
    Effect.gen(function*() {
      const id = yield* randomUuid
      const entry: Entry = { visitor, claimed: yield* Deferred.make<void>(), wasClaimed: false }
      entries.set(id, entry)
      yield* Deferred.await(entry.claimed).pipe(
        Effect.timeout(PENDING_TIMEOUT),
        Effect.catchTag("TimeoutException", () => Effect.logInfo(`visitor ${id} was not claimed in time; closed`)),
        Effect.interruptible,
        Effect.ensuring(Effect.sync(() => {
          entries.delete(id)
          if (!entry.wasClaimed) visitor.destroy()
        })),
        Effect.forkScoped,
        // The fiber starts uninterruptible so its cleanup is installed even if the tunnel
        // closes before the fiber's first step (an interrupted fiber that never started would
        // skip its `ensuring`, leaking the socket and the entry).
        Effect.uninterruptible
      )
      return id
    })

  const claim = (id: Uuid) =>
    Effect.sync(() => {
      const entry = entries.get(id)
      if (entry === undefined) return Option.none()
      entries.delete(id)
      entry.wasClaimed = true
      Deferred.unsafeDone(entry.claimed, Exit.void)
      return Option.some(entry.visitor)
    })

  return PendingRegistry.of({
    hold,
    claim,
    isWaiting: (id) => Effect.sync(() => entries.has(id)),
    size: Effect.sync(() => entries.size)
  })
})

export const layer = Layer.effect(PendingRegistry, make)
