/**
 * How a client notices that its control connection died without TCP noticing: the server speaks
 * at a steady rate (bore's heartbeat every 500 ms, the HTTP front's ping every 30 s), so a
 * connection silent for much longer is dead.
 */
import { Clock, Duration, Effect } from "effect"

/**
 * Fails with `lost()` once `timeout` has passed since `lastHeard()`, a time on the Effect clock
 * (ms) that the caller moves on at every frame or ping. One fiber for the whole connection rather
 * than a timeout raced against every read (two fibers per frame): it sleeps until the connection
 * could first have been silent that long, then looks again.
 */
export const silenceWatchdog = <E>(timeout: Duration.Duration, lastHeard: () => number, lost: () => E): Effect.Effect<never, E> =>
  Effect.gen(function*() {
    const limit = Duration.toMillis(timeout)
    while (true) {
      const silent = (yield* Clock.currentTimeMillis) - lastHeard()
      if (silent >= limit) return yield* Effect.fail(lost())
      yield* Effect.sleep(Duration.millis(limit - silent))
    }
  })
