/**
 * `spore kafka-proxy`: one tunnel for the bootstrap broker and one per broker node the cluster
 * names (keyed by node id), each an ordinary bore-protocol tunnel (so Spore and bore servers
 * serve it alike). Every tunnelled connection goes through `relayKafka`, which rewrites the
 * broker addresses in responses to the server's host and the broker's tunnel port, opening a
 * broker's tunnel before the response that names it is released.
 */
import { Cause, Deferred, Duration, Effect, Fiber, FiberId, FiberMap, FiberSet, Option, Scope } from "effect"
import * as Client from "../client/client.js"
import type { ClientStatus } from "../client/status.js"
import type { ClientMetrics } from "../client/client-metrics.js"
import type { ClientConfig } from "../client/config.js"
import { LocalRelay } from "../client/local-relay.js"
import { BrokerTunnelTimeout } from "../errors.js"
import type { Drain } from "../net/drain.js"
import { relayKafka } from "./frame-relay.js"
import type { BrokerAddress } from "./rewrite.js"

/** How long a response waits for the tunnel of a broker it names before the connection is closed. */
export const BROKER_TUNNEL_TIMEOUT = Duration.seconds(10)

/** How long a broker gone from the cluster's metadata keeps its tunnel. */
export const BROKER_GONE_GRACE = Duration.seconds(60)

export interface KafkaProxyConfig {
  /** Everything a tunnel needs but its local service and public port. */
  readonly tunnel: Omit<ClientConfig, "localHost" | "localPort" | "port" | "proxyProtocol">
  /** The bootstrap broker. */
  readonly bootstrap: { readonly host: string; readonly port: number }
  /** Where to reach a broker instead of the address it advertises, by node id. */
  readonly brokerAddresses: ReadonlyMap<number, { readonly host: string; readonly port: number }>
  /** The bootstrap tunnel's public port (0: the server picks). */
  readonly port: number
  /** Each broker tunnel's public port, by node id (the others: the server picks). */
  readonly brokerPorts: ReadonlyMap<number, number>
}

/** What the proxy reports: a tunnel's status, for the bootstrap (`nodeId` none) or a broker. */
export type ProxyReport = (tunnel: { readonly nodeId: Option.Option<number>; readonly target: string }, status: ClientStatus) => Effect.Effect<void>

interface BrokerTunnel {
  /** The public port, once the tunnel has been listening at least once (the latest one after). */
  port: number | undefined
  readonly ready: Deferred.Deferred<void>
  /** Its client, which closes the tunnel when interrupted. */
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
}

/**
 * Runs the proxy until a tunnel fails for good (a wrong secret, say); its tunnels live as long
 * as the scope.
 */
export const run = (
  config: KafkaProxyConfig,
  report: ProxyReport
): Effect.Effect<never, Client.ClientError, Drain | ClientMetrics | Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    // Broker tunnels are opened from the relay, which runs without the program's services.
    const services = yield* Effect.context<Drain | ClientMetrics>()
    const failed = yield* Deferred.make<never, Client.ClientError>()
    const brokers = new Map<number, BrokerTunnel>()

    // Timers of brokers gone from the metadata, by node id: a mention cancels one.
    const leaving = yield* FiberMap.make<number>()

    const tunnelConfig = (target: { host: string; port: number }, port: number, nodeId?: number): ClientConfig => ({
      ...config.tunnel,
      localHost: target.host,
      localPort: target.port,
      port,
      proxyProtocol: Option.none(),
      // A broker advertising a name this machine cannot resolve: say how to map it.
      ...(nodeId === undefined ? {} : {
        unreachableHint: `broker ${nodeId} advertises ${target.host}, which this machine cannot resolve: give its address with --broker-address ${nodeId}=HOST:PORT`
      })
    })

    /** The cluster's brokers as of a Metadata response: those missing leave after the grace. */
    const listed = (nodeIds: ReadonlyArray<number>) =>
      Effect.gen(function*() {
        const present = new Set(nodeIds)
        for (const [nodeId, tunnel] of brokers) {
          if (present.has(nodeId)) {
            yield* FiberMap.remove(leaving, nodeId)
            continue
          }
          if (yield* FiberMap.has(leaving, nodeId)) continue
          yield* FiberMap.run(leaving, nodeId, Effect.gen(function*() {
            yield* Effect.sleep(BROKER_GONE_GRACE)
            brokers.delete(nodeId)
            yield* Effect.logInfo(
              `broker ${nodeId} has been gone from the cluster's metadata for ${Duration.format(BROKER_GONE_GRACE)}: its tunnel` +
                `${tunnel.port === undefined ? "" : ` on port ${tunnel.port}`} is closed`
            )
            if (tunnel.fiber !== undefined) yield* Fiber.interrupt(tunnel.fiber)
          }))
        }
      })

    const publicAddressOf = (broker: BrokerAddress) =>
      Effect.suspend(() => {
        let tunnel = brokers.get(broker.nodeId)
        if (tunnel !== undefined) {
          // Named again: a broker that seemed gone is back.
          return Effect.zipRight(FiberMap.remove(leaving, broker.nodeId), awaitTunnel(broker.nodeId, tunnel))
        }
        {
          const created: BrokerTunnel = { port: undefined, ready: Deferred.unsafeMake<void>(FiberId.none), fiber: undefined }
          tunnel = created
          brokers.set(broker.nodeId, created)
          const target = config.brokerAddresses.get(broker.nodeId) ?? { host: broker.host, port: broker.port }
          const label = { nodeId: Option.some(broker.nodeId), target: `${target.host}:${target.port}` }
          const onStatus = (status: ClientStatus) =>
            Effect.zipRight(
              status._tag === "Listening"
                ? Effect.zipRight(Effect.sync(() => (created.port = status.port)), Deferred.succeed(created.ready, undefined))
                : Effect.void,
              report(label, status)
            )
          return Effect.zipRight(
            Client.run(tunnelConfig(target, config.brokerPorts.get(broker.nodeId) ?? 0, broker.nodeId), onStatus).pipe(
              Effect.provideService(LocalRelay, relay),
              // The broker's tunnel belongs to the proxy, not to the connection that found it.
              Effect.provideService(Scope.Scope, scope),
              Effect.provide(services),
              Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Deferred.failCause(failed, cause)),
              Effect.forkIn(scope),
              Effect.tap((fiber) => Effect.sync(() => (created.fiber = fiber)))
            ),
            awaitTunnel(broker.nodeId, created)
          )
        }
      })

    const awaitTunnel = (nodeId: number, tunnel: BrokerTunnel) =>
      Deferred.await(tunnel.ready).pipe(
        Effect.timeoutFail({ duration: BROKER_TUNNEL_TIMEOUT, onTimeout: () => new BrokerTunnelTimeout({ nodeId }) }),
        Effect.map(() => ({ host: config.tunnel.to, port: tunnel.port! }))
      )

    // Metadata is seen in the relay's callbacks; what it says runs as a fiber of the proxy's scope.
    const runListed = yield* FiberSet.makeRuntime<never>()
    const relay = LocalRelay.of({
      join: (stream, local, firstToLocal) =>
        relayKafka(stream, local, firstToLocal, publicAddressOf, (nodeIds) => runListed(listed(nodeIds)))
    })

    const bootstrap = Client.run(tunnelConfig({ ...config.bootstrap }, config.port), (status) =>
      report({ nodeId: Option.none(), target: `${config.bootstrap.host}:${config.bootstrap.port}` }, status)).pipe(
        Effect.provideService(LocalRelay, relay)
      )
    return yield* Effect.raceFirst(bootstrap, Deferred.await(failed))
  })
