/**
 * A tunnel's warm pool: data streams its Spore client opened ahead of time (`{"Pool":token}`),
 * idle until a visitor arrives. A visitor handed to one is announced on that stream itself and
 * forwarded at once, without the `Connection`, the new connection and the challenge that the
 * plain path costs (bore's only path): one round trip or two less before its first byte moves.
 *
 * The pool belongs to one control session: it opens when a client that speaks version 3 offers
 * extensions, and every idle stream is closed when that control connection ends (the client
 * closes its own then too) or the tunnel closes. An idle stream is watched while it waits: one
 * that ends, fails or sends anything is dropped at once, so no visitor is handed to a stream
 * that is closing.
 *
 * Each pooled stream is served by its own connection's fiber (see `serve`), which does the
 * forwarding when a visitor comes: ownership of the visitor passes to that fiber when it is
 * handed over, and its scope's finalizer closes the visitor whatever happens next.
 */
import type * as net from "node:net"
import { Deferred, Effect, Exit, Option, type Scope } from "effect"
import type { FramedSocket } from "../net/framed-socket.js"


/** What happens to a visitor once an idle stream has been chosen for it. */
export interface Handover {
  readonly visitor: net.Socket
  /** Closes the visitor and lets go of its place in its tunnel's counts (once; later calls do nothing). */
  readonly release: () => void
  /**
   * Sends the visitor the plain way instead (announced on the control connection), for when its
   * stream fails before the visitor's first byte: then `release` does nothing.
   */
  readonly reroute: Effect.Effect<void>
}

interface Idle {
  readonly stream: FramedSocket
  /** Completed when the stream leaves the pool, with or without a visitor. */
  readonly left: Deferred.Deferred<void>
  handover: Handover | undefined
  unwatch: () => void
}

export interface WarmPool {
  /** Idle streams now. */
  readonly size: () => number
  /** Whether the current control session takes pooled streams. */
  readonly isOpen: () => boolean
  /** A control session that speaks version 3 began: pooled streams are taken from now on. */
  readonly open: () => void
  /** The control session ended (or the tunnel closed): every idle stream is let go. */
  readonly close: () => void
  /**
   * Hands `handover` to an idle stream, if there is one that is still open: true if handed (the
   * stream's fiber now owns the visitor), false if the visitor must take the plain path.
   */
  readonly hand: (handover: Handover) => boolean
  /**
   * Keeps `stream` idle in the pool until it is handed a visitor (Some) or dropped (None: the
   * pool closed, or the stream ended first). A handed visitor is released when the scope closes.
   */
  readonly wait: (stream: FramedSocket) => Effect.Effect<Option.Option<Handover>, never, Scope.Scope>
}

export interface WarmPoolEvents {
  /** The number of idle streams changed by `delta` (the server's `spore_pool_idle`). */
  readonly idleChanged: (delta: number) => void
}

export const makeWarmPool = (events: WarmPoolEvents): WarmPool => {
  // In the order they came, the newest last.
  const idle = new Set<Idle>()
  let open = false

  const drop = (entry: Idle, handover?: Handover) => {
    if (!idle.delete(entry)) return false
    events.idleChanged(-1)
    entry.unwatch()
    entry.handover = handover
    Deferred.unsafeDone(entry.left, Exit.void)
    return true
  }

  /** Drops the stream as soon as it ends, fails or sends a byte: an idle stream must stay silent. */
  const watch = (socket: net.Socket, onGone: () => void) => {
    socket.on("data", onGone)
    socket.once("end", onGone)
    socket.once("close", onGone)
    socket.once("error", onGone)
    socket.resume()
    return () => {
      socket.pause()
      socket.off("data", onGone)
      socket.off("end", onGone)
      socket.off("close", onGone)
      socket.off("error", onGone)
    }
  }

  const wait = (stream: FramedSocket) =>
    Effect.gen(function*() {
      // Frames pipelined behind `Pool` break the rule that an idle stream is silent.
      if (!open || stream.release().length > 0 || stream.socket.destroyed || stream.socket.readableEnded) {
        return Option.none<Handover>()
      }
      const entry: Idle = { stream, left: yield* Deferred.make<void>(), handover: undefined, unwatch: () => {} }
      entry.unwatch = watch(stream.socket, () => {
        drop(entry)
        stream.socket.destroy()
      })
      idle.add(entry)
      events.idleChanged(1)
      // Whatever ends this wait (an interruption included), the stream leaves the pool, and a
      // visitor handed to it is closed and released with this scope, after its forwarding.
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          drop(entry)
          entry.handover?.release()
        })
      )
      yield* Deferred.await(entry.left)
      return Option.fromNullable(entry.handover)
    })

  const hand = (handover: Handover) => {
    // The newest first: its path is the most surely alive.
    const entries = [...idle]
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i]!
      const socket = entry.stream.socket
      if (socket.destroyed || socket.readableEnded || !socket.writable) {
        drop(entry)
        continue
      }
      return drop(entry, handover)
    }
    return false
  }

  return {
    size: () => idle.size,
    isOpen: () => open,
    open: () => {
      open = true
    },
    close: () => {
      open = false
      for (const entry of [...idle]) drop(entry)
    },
    hand,
    wait
  }
}
