/**
 * The server's tunnels, each run by one fiber that owns its transitions.
 *
 * A tunnel's public port and waiting visitors outlive any one control connection:
 * - when its control connection ends, a tunnel whose client took a lease (Spore clients do) keeps
 *   its port and keeps accepting visitors for the lease time, waiting for a `Resume` with its
 *   token; otherwise (bore clients) it closes at once, freeing the port;
 * - a `Resume` also takes over from a control connection the server still thinks alive (the
 *   client saw it die first).
 * Visitors accepted meanwhile wait as usual (10 s each) and are announced after a resume.
 */
import { randomBytes } from "node:crypto"
import { Context, Deferred, Duration, Effect, ExecutionStrategy, Exit, FiberSet, Layer, Option, Queue, Ref, Scope } from "effect"
import type { PortUnavailable } from "../errors.js"
import type { FramedSocket } from "../net/framed-socket.js"
import type { Uuid } from "../protocol/uuid.js"
import { PendingRegistry } from "./pending-registry.js"
import { openPublicListener, type PortRange } from "./ports.js"
import { serveControl, type TunnelState } from "./tunnel.js"

export interface TunnelsConfig extends PortRange {
  /** How long a Spore client's tunnel waits for it after its control connection is lost. */
  readonly lease: Duration.Duration
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
  readonly open: (requested: number, control: FramedSocket) => Effect.Effect<void, PortUnavailable>
  /**
   * Serves `control` as the control connection of the tunnel `token` names. False (and nothing
   * sent) if there is no such tunnel; otherwise returns when the tunnel is done with `control`.
   */
  readonly resume: (token: string, control: FramedSocket) => Effect.Effect<boolean>
}>() {}

export const make = (config: TunnelsConfig) =>
  Effect.gen(function*() {
    const registry = yield* PendingRegistry
    const serverScope = yield* Effect.scope
    const tunnelFibers = yield* FiberSet.make<void, never>()
    const byToken = new Map<string, Queue.Enqueue<Handoff>>()

    /** Serves handed-off control connections until one is lost and no resume comes in time. */
    const runTunnel = (tunnel: TunnelState, handoffs: Queue.Dequeue<Handoff>, first: Handoff) =>
      Effect.gen(function*() {
        let current = first
        while (true) {
          const next = yield* Effect.raceFirst(
            serveControl(tunnel, current.control).pipe(
              Effect.provideService(PendingRegistry, registry),
              Effect.ignore,
              Effect.as(Option.none<Handoff>())
            ),
            Effect.map(Queue.take(handoffs), Option.some)
          )
          yield* Deferred.done(current.released, Exit.void)
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
        const arrivals = yield* Queue.unbounded<Uuid>()
        const listener = yield* openPublicListener(config, requested, (visitor) =>
          registry.hold(visitor).pipe(
            Effect.flatMap((id) => Queue.offer(arrivals, id)),
            // Waiting visitors belong to the tunnel, not to the fiber that accepted them.
            Effect.provideService(Scope.Scope, scope),
            Effect.annotateLogs({ visitor: `${visitor.remoteAddress}:${visitor.remotePort}` })
          )).pipe(Scope.extend(scope), Effect.onError(() => Scope.close(scope, Exit.void)))

        const tunnel: TunnelState = {
          port: listener.port,
          arrivals,
          token: randomBytes(16).toString("hex"),
          leased: yield* Ref.make(false)
        }
        const handoffs = yield* Queue.unbounded<Handoff>()
        byToken.set(tunnel.token, handoffs)
        yield* Scope.addFinalizer(scope, Effect.sync(() => byToken.delete(tunnel.token)))
        yield* Effect.logInfo(`tunnel open on port ${tunnel.port}`)

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
          runTunnel(tunnel, handoffs, first).pipe(
            Effect.interruptible,
            Effect.ensuring(Effect.zipRight(Scope.close(scope, Exit.void), releaseLeftovers))
          )
        ).pipe(Effect.uninterruptible)
        yield* Deferred.await(first.released)
      })

    const resume = (token: string, control: FramedSocket) =>
      Effect.suspend(() => {
        const handoffs = byToken.get(token)
        return handoffs === undefined ? Effect.succeed(false) : Effect.as(handOff(handoffs, control), true)
      })

    return Tunnels.of({ open, resume })
  })

export const layer = (config: TunnelsConfig) => Layer.scoped(Tunnels, make(config))
