/**
 * Noticing that the process has run out of file descriptors (EMFILE, or ENFILE for the whole
 * system), and saying so once per episode.
 *
 * The accept loops need no help to survive it: when accept() fails with EMFILE, libuv (under
 * Node's `net.Server`) closes a descriptor it keeps in reserve, accepts and at once closes the
 * waiting connections, and takes the reserve back. So the listeners neither crash nor spin,
 * and peers see a close instead of hanging in the backlog, and they recover by themselves once
 * descriptors free up. What libuv does not do is tell anyone. This watch probes once a second
 * (opening and closing /dev/null, one syscall pair) and hears of failures the server meets itself
 * (an accept error libuv passes on, a bind that fails for want of a descriptor); the first of an
 * episode is logged as a warning, its end as an info line.
 */
import * as fs from "node:fs"
import { Clock, Context, Duration, Effect, Layer, Schedule } from "effect"

/**
 * This process's limits on open files, soft and hard (Node raises the soft one to the hard one at
 * start), from /proc; undefined where that cannot be read (not Linux).
 */
export const openFileLimits = (): { readonly soft: number; readonly hard: number } | undefined => {
  try {
    const line = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"))
    if (line === null) return undefined
    const count = (text: string) => text === "unlimited" ? Number.POSITIVE_INFINITY : Number(text)
    return { soft: count(line[1]!), hard: count(line[2]!) }
  } catch {
    return undefined
  }
}

/** How often the watch probes for a free descriptor. */
export const PROBE_INTERVAL = Duration.seconds(1)

/** The errno names that mean "no descriptor left" (for this process, or for the system). */
export type Exhaustion = "EMFILE" | "ENFILE"

/** The errno name of `error` if it says the descriptors ran out. */
export const exhaustionOf = (error: unknown): Exhaustion | undefined => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code === "EMFILE" || code === "ENFILE" ? code : undefined
}

/** Opens and closes /dev/null: whether a descriptor could be had right now. */
export const probeDevNull: Effect.Effect<Exhaustion | undefined> = Effect.sync(() => {
  try {
    fs.closeSync(fs.openSync("/dev/null", "r"))
    return undefined
  } catch (error) {
    return exhaustionOf(error)
  }
})

export class DescriptorWatch extends Context.Tag("spore/DescriptorWatch")<DescriptorWatch, {
  /** Tells the watch that an operation failed for want of a descriptor. */
  readonly report: (code: Exhaustion) => Effect.Effect<void>
}>() {}

/**
 * A watch that probes with `probe` every PROBE_INTERVAL for as long as the scope is open. Its
 * fiber belongs to the scope; the probe must not fail.
 */
export const make = (probe: Effect.Effect<Exhaustion | undefined>) =>
  Effect.gen(function*() {
    let episode: { readonly code: Exhaustion; readonly since: number } | undefined

    const report = (code: Exhaustion) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (episode !== undefined) return Effect.void
        episode = { code, since: now }
        return Effect.logWarning(
          `out of file descriptors (${code}): new connections are closed at once until some free up; ` +
            "raise the descriptor limit (LimitNOFILE) or lower the --max-* limits"
        )
      })

    const recovered = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      if (episode === undefined) return Effect.void
      const lasted = Duration.format(Duration.millis(now - episode.since))
      episode = undefined
      return Effect.logInfo(`file descriptors available again after ${lasted}`)
    })

    yield* probe.pipe(
      Effect.flatMap((code) => code === undefined ? recovered : report(code)),
      Effect.repeat(Schedule.spaced(PROBE_INTERVAL)),
      Effect.forkScoped
    )
    return DescriptorWatch.of({ report })
  })

export const layer = Layer.scoped(DescriptorWatch, make(probeDevNull))
