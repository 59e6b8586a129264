/**
 * The server's tunnels, each run by one fiber that owns its transitions.
 *
 * A tunnel's public port and waiting visitors outlive any one control connection:
 * - when its control connection ends, a tunnel whose client took a lease (Spore clients do) keeps
 *   its port and keeps accepting visitors for the lease time, waiting for a `Resume` with its
 *   token; otherwise (bore clients) it closes at once, freeing the port;
 * - a `Resume` also takes over from a control connection the server still thinks alive (the
 *   client saw it die first).
 * Visitors accepted meanwhile wait as usual (10 s each) and are announced after a resume, and so
 * are those announced on a connection that died silently and still wait.
 */
import { randomBytes } from "node:crypto"
import { Clock, Context, Deferred, Duration, Effect, ExecutionStrategy, Exit, FiberSet, Layer, Option, Queue, Ref, Scope } from "effect"
import type { TcpTunnelView } from "../visitors/tunnel-directory.js"
import { makeSeries, type SeriesCounter } from "../metrics/series.js"
import type * as net from "node:net"
import { LimitReached, type PortUnavailable } from "../errors.js"
import type { FramedSocket } from "../net/framed-socket.js"
import { DescriptorWatch } from "../net/descriptor-watch.js"
import { Drain, tracked } from "../net/drain.js"
import { splice } from "../net/splice.js"
import { encodeServerMessage, MAX_POOL_STREAMS, ServerMessages } from "../protocol/messages.js"
import type { ServerLimits } from "../limits/limits.js"
import { makeVisitorCounts, PendingRegistry, type VisitorCounts } from "../visitors/pending-registry.js"
import { openPublicListener, type PortRange } from "./ports.js"
import { makeRefusalLog } from "../limits/refusal-log.js"
import { ServerMetrics } from "./server-metrics.js"
import { randomUuid, type Uuid } from "../protocol/uuid.js"
import { type Arrival, serveControlSession, type TunnelState, type WaitingArrival } from "./control-session.js"
import { type Handover, makeWarmPool } from "./warm-pool.js"

export interface TunnelsConfig extends PortRange {
  /** How long a Spore client's tunnel waits for it after its control connection is lost. */
  readonly lease: Duration.Duration
  readonly limits: Pick<ServerLimits, "maxTunnels" | "maxPending" | "maxConnsPerTunnel" | "visitors">
}

/** A control connection handed to a tunnel; `released` completes when the tunnel is done with it. */
interface Handoff {
  readonly control: FramedSocket
  readonly released: Deferred.Deferred<void>
}

export class Tunnels extends Context.Tag("spore/Tunnels")<Tunnels, {
  /**
   * Opens a tunnel on `requested` (0 = any port of the range) and serves `control` as its
   * control connection. Returns when the tunnel is done with `control`.
   */
  readonly open: (requested: number, control: FramedSocket) => Effect.Effect<void, PortUnavailable | LimitReached>
  /**
   * Serves `control` as the control connection of the tunnel `token` names. False (and nothing
   * sent) if there is no such tunnel; otherwise returns when the tunnel is done with `control`.
   */
  readonly resume: (token: string, control: FramedSocket) => Effect.Effect<boolean>
  /**
   * Keeps `stream` in the warm pool of the tunnel `token` names until it carries a visitor (then
   * forwards it, and returns when both directions are done) or is let go. False (and nothing
   * sent) if it was not taken: no such tunnel, its pool not open, or full.
   */
  readonly pool: (token: string, stream: FramedSocket) => Effect.Effect<boolean, never, Scope.Scope>
  /** Every open tunnel, as the operator's dashboard shows it, as of `now` (epoch ms). */
  readonly list: (now: number) => Effect.Effect<ReadonlyArray<TcpTunnelView>>
}>() {}

/** What the dashboard shows of a tunnel, kept up to date as it runs. */
interface TunnelStats {
  readonly openedAt: number
  client: string | undefined
  totalVisitors: number
  /** Bytes of visitors that have closed; the open ones are read from their sockets. */
  closedIn: number
  closedOut: number
  readonly visitors: Set<net.Socket>
  /** Visitors accepted and their bytes (counted as each closes) over 15 minutes. */
  readonly series: SeriesCounter
}

export const make = (config: TunnelsConfig) =>
  Effect.gen(function*() {
    const registry = yield* PendingRegistry
    const metrics = yield* ServerMetrics
    // Public listeners stop accepting when the drain starts, and report running out of
    // descriptors to the watch; spliced visitors are the drain's to wait for.
    const drainAndWatch = Context.make(Drain, yield* Drain).pipe(Context.add(DescriptorWatch, yield* DescriptorWatch))
    const serverScope = yield* Effect.scope
    const tunnelFibers = yield* FiberSet.make<void, never>()
    /** What a token reaches: the tunnel's handoffs (Resume) and its state (Pool). */
    const byToken = new Map<string, {
      readonly handoffs: Queue.Enqueue<Handoff>
      readonly tunnel: TunnelState
      readonly counts: VisitorCounts
      readonly stats: TunnelStats
    }>()
    const { limits } = config
    const refusalLog = makeRefusalLog()
    let openTunnels = 0

    /** Counts a new tunnel against --max-tunnels for as long as `scope` is open. */
    const reserveTunnel = (scope: Scope.Scope) =>
      Effect.uninterruptible(Effect.suspend(() => {
        if (openTunnels >= limits.maxTunnels) {
          return Effect.zipRight(
            refusalLog("max-tunnels", `tunnel refused: ${limits.maxTunnels} tunnels already open (--max-tunnels)`),
            Effect.fail(new LimitReached({ limit: "max-tunnels" }))
          )
        }
        openTunnels++
        metrics.tunnelsActive.inc()
        return Scope.addFinalizer(scope, Effect.sync(() => {
          openTunnels--
          metrics.tunnelsActive.dec()
        }))
      }))

    /**
     * Why a new visitor is turned away, if it is (the flag that says so, and why): it is then
     * closed at once, before its client hears of it.
     */
    const visitorRefusal = (visitor: net.Socket, counts: VisitorCounts): readonly [string, string] | undefined => {
      if (!limits.visitors.allows(visitor.remoteAddress)) {
        return ["visitor-filter", "its address is not allowed (--allow-visitor, --deny-visitor)"]
      }
      if (counts.waiting >= limits.maxPending) {
        return ["max-pending", `${limits.maxPending} visitors already waiting (--max-pending)`]
      }
      if (counts.waiting + counts.active >= limits.maxConnsPerTunnel) {
        return ["max-conns-per-tunnel", `${limits.maxConnsPerTunnel} visitors already connected (--max-conns-per-tunnel)`]
      }
      return undefined
    }

    /** Serves handed-off control connections until one is lost and no resume comes in time. */
    const runTunnel = (tunnel: TunnelState, handoffs: Queue.Dequeue<Handoff>, first: Handoff, stats: TunnelStats) =>
      Effect.gen(function*() {
        let current = first
        while (true) {
          stats.client = current.control.socket.remoteAddress
          const next = yield* Effect.raceFirst(
            serveControlSession(tunnel, current.control).pipe(
              Effect.ignore,
              Effect.as(Option.none<Handoff>())
            ),
            Effect.map(Queue.take(handoffs), Option.some)
          )
          yield* Deferred.done(current.released, Exit.void)
          stats.client = undefined
          if (Option.isSome(next)) {
            yield* Effect.logInfo(`tunnel on port ${tunnel.port} taken over by a new control connection`)
            current = next.value
            continue
          }
          if (!(yield* Ref.get(tunnel.leased))) {
            return yield* Effect.logInfo(`tunnel on port ${tunnel.port} closed: the client went away`)
          }
          yield* Effect.logInfo(
            `tunnel on port ${tunnel.port} lost its client; held for ${Duration.format(config.lease)}`
          )
          const resumed = yield* Queue.take(handoffs).pipe(Effect.timeout(config.lease), Effect.option)
          if (Option.isNone(resumed)) {
            return yield* Effect.logInfo(`tunnel on port ${tunnel.port} closed: its lease ran out`)
          }
          yield* Effect.logInfo(`tunnel on port ${tunnel.port} resumed`)
          current = resumed.value
        }
      })

    /** Hands `control` to a tunnel's fiber and waits until the tunnel is done with it. */
    const handOff = (handoffs: Queue.Enqueue<Handoff>, control: FramedSocket) =>
      Effect.gen(function*() {
        const released = yield* Deferred.make<void>()
        yield* Queue.offer(handoffs, { control, released })
        yield* Deferred.await(released)
      })

    const open = (requested: number, control: FramedSocket) =>
      Effect.gen(function*() {
        const scope = yield* Scope.fork(serverScope, ExecutionStrategy.sequential)
        yield* reserveTunnel(scope).pipe(Effect.onError(() => Scope.close(scope, Exit.void)))
        const arrivals = yield* Queue.unbounded<Arrival>()
        const waiting = new Map<Uuid, WaitingArrival>()
        const counts = makeVisitorCounts()
        const pool = makeWarmPool({ idleChanged: (delta) => metrics.poolIdle.inc({}, delta) })
        // The plain path: the visitor waits in the registry until its client's Accept claims it.
        const holdVisitor = (visitor: net.Socket) => {
          const source = { address: visitor.remoteAddress ?? "", port: visitor.remotePort ?? 0 }
          const destination = { address: visitor.localAddress ?? "", port: visitor.localPort ?? 0 }
          return registry.hold(visitor, counts, (id) => waiting.delete(id)).pipe(
            Effect.flatMap((id) => {
              const arrival = { id, source, destination }
              waiting.set(id, { arrival, announced: false })
              return Queue.offer(arrivals, arrival)
            }),
            // Waiting visitors belong to the tunnel, not to the fiber that accepted them.
            Effect.provideService(Scope.Scope, scope)
          )
        }
        // The warm path: the visitor is counted active from the moment a pooled stream takes it.
        const handover = (visitor: net.Socket): Handover => {
          let owned = true
          counts.active++
          metrics.visitorsActive.inc()
          const letGo = () => {
            if (!owned) return false
            owned = false
            counts.active--
            metrics.visitorsActive.dec()
            return true
          }
          return {
            visitor,
            release: () => {
              if (letGo()) visitor.destroy()
            },
            reroute: Effect.suspend(() => letGo() ? holdVisitor(visitor) : Effect.void)
          }
        }
        const stats: TunnelStats = {
          openedAt: yield* Clock.currentTimeMillis,
          client: control.socket.remoteAddress,
          totalVisitors: 0,
          closedIn: 0,
          closedOut: 0,
          visitors: new Set(),
          series: makeSeries()
        }
        // The series' clock: the fiber's (tests run it on theirs).
        const clock = yield* Effect.clock
        const onVisitor = (visitor: net.Socket) =>
          Effect.suspend(() => {
            const refusal = visitorRefusal(visitor, counts)
            if (refusal !== undefined) {
              const [limit, reason] = refusal
              // Read before the destroy, which forgets the addresses.
              const line = `visitor ${visitor.remoteAddress}:${visitor.remotePort} of port ${visitor.localPort} closed: ${reason}`
              const kind = `${limit}:${visitor.localPort}`
              visitor.destroy()
              metrics.visitorsRefused.inc({ reason: limit })
              return refusalLog(kind, line)
            }
            metrics.visitorsAccepted.inc()
            stats.totalVisitors++
            stats.visitors.add(visitor)
            stats.series.add(clock.unsafeCurrentTimeMillis(), 1, 0)
            visitor.once("close", () => {
              stats.visitors.delete(visitor)
              stats.closedIn += visitor.bytesRead
              stats.closedOut += visitor.bytesWritten
              stats.series.add(clock.unsafeCurrentTimeMillis(), 0, visitor.bytesRead + visitor.bytesWritten)
            })
            if (pool.size() > 0) {
              const offered = handover(visitor)
              if (pool.hand(offered)) return Effect.void
              offered.release()
            }
            return holdVisitor(visitor)
          }).pipe(Effect.annotateLogs({ tunnel: String(visitor.localPort), visitor: `${visitor.remoteAddress}:${visitor.remotePort}` }))
        const listener = yield* openPublicListener(config, requested, onVisitor).pipe(
          Effect.provide(drainAndWatch),
          Scope.extend(scope),
          Effect.onError(() => Scope.close(scope, Exit.void))
        )

        const tunnel: TunnelState = {
          port: listener.port,
          arrivals,
          waiting,
          token: randomBytes(16).toString("hex"),
          leased: yield* Ref.make(false),
          announcesAddresses: yield* Ref.make(false),
          pool
        }
        const handoffs = yield* Queue.unbounded<Handoff>()
        byToken.set(tunnel.token, { handoffs, tunnel, counts, stats })
        yield* Scope.addFinalizer(scope, Effect.sync(() => {
          byToken.delete(tunnel.token)
          pool.close()
        }))
        metrics.tunnelsOpened.inc()
        yield* Effect.logInfo(`tunnel open on port ${tunnel.port}`).pipe(Effect.annotateLogs({ tunnel: String(tunnel.port) }))

        const first: Handoff = { control, released: yield* Deferred.make<void>() }
        // Control connections handed over as the tunnel ended are let go (their handlers then
        // close them), and the queue is shut so that a late offer interrupts its handler instead
        // of waiting for a tunnel that is gone.
        const releaseLeftovers = Effect.flatMap(
          Queue.takeAll(handoffs),
          (left) => Effect.forEach(left, (handoff) => Deferred.done(handoff.released, Exit.void), { discard: true })
        ).pipe(Effect.zipRight(Queue.shutdown(handoffs)))
        // The tunnel's fiber belongs to the server, not to this connection: a resume may outlive it.
        // It starts uninterruptible so that its cleanup is installed even if the server stops at
        // this instant (a fiber interrupted before its first step skips its `ensuring`).
        yield* FiberSet.run(
          tunnelFibers,
          runTunnel(tunnel, handoffs, first, stats).pipe(
            Effect.annotateLogs({ tunnel: String(tunnel.port) }),
            Effect.interruptible,
            Effect.ensuring(Effect.zipRight(Scope.close(scope, Exit.void), releaseLeftovers))
          )
        ).pipe(Effect.uninterruptible)
        yield* Deferred.await(first.released)
      })

    const resume = (token: string, control: FramedSocket) =>
      Effect.suspend(() => {
        const target = byToken.get(token)
        if (target === undefined) return Effect.succeed(false)
        metrics.resumes.inc()
        return Effect.as(handOff(target.handoffs, control), true)
      })

    const poolStream = (token: string, stream: FramedSocket) =>
      Effect.gen(function*() {
        const target = byToken.get(token)
        if (target === undefined || !target.tunnel.pool.isOpen()) return false
        const { counts, tunnel } = target
        // Idle streams count against the tunnel's connections like its visitors.
        if (tunnel.pool.size() >= MAX_POOL_STREAMS || counts.waiting + counts.active + tunnel.pool.size() >= limits.maxConnsPerTunnel) {
          return false
        }
        const handed = yield* tunnel.pool.wait(stream)
        if (Option.isNone(handed)) return true
        const { visitor } = handed.value
        const arrival: Arrival = {
          id: yield* randomUuid,
          source: { address: visitor.remoteAddress ?? "", port: visitor.remotePort ?? 0 },
          destination: { address: visitor.localAddress ?? "", port: visitor.localPort ?? 0 }
        }
        const announced = yield* Effect.either(stream.writeFrame(encodeServerMessage(ServerMessages.visitor(arrival))))
        // A stream that fails before the visitor's first byte has moved leaves it the plain path.
        if (announced._tag === "Left") return yield* Effect.as(handed.value.reroute, true)
        metrics.visitorsPooled.inc()
        metrics.traffic.track({ port: String(tunnel.port) }, visitor, "bytesRead")
        yield* tracked(splice(stream.socket, visitor)).pipe(Effect.provide(drainAndWatch))
        return true
      })

    const list = (now: number) => Effect.sync(() =>
      [...byToken.values()]
        .map(({ counts, stats, tunnel }): TcpTunnelView => {
          let bytesIn = stats.closedIn
          let bytesOut = stats.closedOut
          for (const visitor of stats.visitors) {
            bytesIn += visitor.bytesRead
            bytesOut += visitor.bytesWritten
          }
          return {
            port: tunnel.port,
            client: stats.client,
            openedAt: stats.openedAt,
            visitors: counts.waiting + counts.active,
            totalVisitors: stats.totalVisitors,
            bytesIn,
            bytesOut,
            series: stats.series.snapshot(now)
          }
        })
        .sort((a, b) => a.port - b.port)
    )

    return Tunnels.of({ open, resume, pool: poolStream, list })
  })

export const layer = (config: TunnelsConfig) => Layer.scoped(Tunnels, make(config))
