/**
 * Graceful shutdown: on the first SIGINT or SIGTERM the listeners stop accepting, connections
 * already carrying a visitor's bytes may finish for up to `--drain-seconds`, and only then is
 * everything closed.
 *
 * The process's scope closes when the signal interrupts the main fiber; `run` is the finalizer
 * that goes first, while every socket is still open. Listeners register how to stop accepting
 * (`onStart`); the byte path wraps each splice in `track`, so the drain knows what it waits for.
 */
import { Context, Deferred, Duration, Effect, Layer, type Scope } from "effect"

export class Drain extends Context.Tag("spore/Drain")<Drain, {
  /**
   * Registers `stop` to run when the drain begins (at once if it has), for as long as the scope
   * is open. Listeners stop accepting this way.
   */
  readonly onStart: (stop: () => void) => Effect.Effect<void, never, Scope.Scope>
  /** Runs `effect` as an active connection, which the drain waits for. */
  readonly track: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /**
   * Begins the drain and waits until no tracked connection is left, or `timeout` has passed.
   * Returns how many were still open then (they are closed with the rest afterwards).
   */
  readonly run: (timeout: Duration.Duration) => Effect.Effect<number>
}>() {}

export const make = Effect.gen(function*() {
  let started = false
  const stops = new Set<() => void>()
  let active = 0
  // Completed (and replaced) whenever the last tracked connection ends.
  let idle = yield* Deferred.make<void>()

  const onStart = (stop: () => void) =>
    Effect.suspend(() => {
      if (started) return Effect.sync(stop)
      stops.add(stop)
      return Effect.addFinalizer(() => Effect.sync(() => stops.delete(stop)))
    })

  const leave = Effect.suspend(() => {
    active--
    if (active > 0) return Effect.void
    const done = idle
    return Effect.flatMap(Deferred.make<void>(), (next) => {
      idle = next
      return Deferred.succeed(done, undefined)
    })
  })

  // Lighter than acquireUseRelease (fewer frames held for the life of every connection), and
  // as safe: the count and its finalizer are set up with interruption off.
  const track = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        active++
        return Effect.ensuring(restore(effect), leave)
      })
    )

  const run = (timeout: Duration.Duration) =>
    Effect.gen(function*() {
      if (!started) {
        started = true
        for (const stop of stops) stop()
        stops.clear()
      }
      if (active === 0) return 0
      yield* Effect.logInfo(
        `shutting down: waiting up to ${Duration.format(timeout)} for ${active} open connection(s); a second signal stops at once`
      )
      // Finalizers run uninterruptibly; the wait must be interruptible for the timeout to cut it.
      yield* Deferred.await(idle).pipe(Effect.interruptible, Effect.timeout(timeout), Effect.ignore)
      if (active > 0) yield* Effect.logWarning(`shutting down: closing ${active} connection(s) still open`)
      return active
    })

  return Drain.of({ onStart, track, run })
})

export const layer = Layer.effect(Drain, make)

/** Runs `effect` as an active connection of the program's drain. */
export const tracked = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R | Drain> =>
  Effect.flatMap(Drain, (drain) => drain.track(effect))
