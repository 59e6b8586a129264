/**
 * The named HTTP tunnels of the server: created over the API, brought online by a control
 * WebSocket, found by name when a visitor arrives.
 *
 * A tunnel outlives its control connection: while its client reconnects, visitors get a 502 and
 * the name stays its owner's. A tunnel left without a control connection for OFFLINE_TTL is
 * removed and its name freed (a client that died without deleting its tunnel does not keep the
 * name forever). Creating a name its owner already holds returns that tunnel: this is how a
 * client reclaims its name after a reconnect, even before the server noticed the old connection
 * died (the new control connection then replaces the old one).
 *
 * A tunnel created with a ttl ends by itself: at its time it is removed and its control
 * connection closed with 1000 (EXPIRED_CLOSE_CODE), which tells the client not to come back. An
 * idle ttl counts from the last request (`touch`). Reclaiming a name does not move its end.
 */
import { Clock, Context, Duration, Effect, Either, Exit, FiberMap, Layer, Option, Queue, Scope } from "effect"
import type { WebSocket } from "ws"
import { Cluster, solo } from "../cluster/cluster.js"
import { ApiRefusal } from "../errors.js"
import { randomUuid, type Uuid } from "../protocol/uuid.js"
import { EXPIRED_CLOSE_CODE, type Framing } from "../net/ws-channel.js"
import { makeVisitorCounts, type VisitorCounts } from "../visitors/pending-registry.js"
import type { Owner } from "./api-keys.js"
import { randomName, validateName } from "./names.js"
import { makeRequestLog, type RequestLog } from "./request-log.js"

/** How long a tunnel without a control connection keeps its name. */
export const OFFLINE_TTL = Duration.minutes(5)

/** A tunnel's control connection while it is online. */
export interface ControlSession {
  readonly ws: WebSocket
  /** How its data channels are framed: what its client asked for (ws-channel.ts). */
  readonly framing: Framing
  /** Its client's address, and since when it has been online (epoch ms). */
  readonly peer: string
  readonly since: number
  /** The visitors waiting for this session's client live here; it closes with the session. */
  readonly scope: Scope.Scope
}

export interface HttpTunnel {
  readonly id: Uuid
  readonly name: string
  readonly owner: Owner
  readonly counts: VisitorCounts
  /** Visitor connections and requests served so far, and their bytes. */
  readonly stats: { connections: number; requests: number; bytesIn: number; bytesOut: number }
  /** What the creating request said of it. */
  readonly meta: TunnelMeta
  /** When it ends (a `ttl`), if ever, and when a visitor last came. */
  readonly expiry: Expiry
  /** Its last requests and its traffic over time, for the inspector. */
  readonly log: RequestLog
  control: ControlSession | undefined
}

/** A tunnel's time: its `ttl`, counted from creation or (idle) from the last request. */
export interface Expiry {
  readonly ttl: Option.Option<Duration.Duration>
  readonly idle: boolean
  /** Epoch ms; moved on by each request when idle. */
  expiresAt: number | undefined
  lastActive: number | undefined
}

export class HttpTunnels extends Context.Tag("spore/HttpTunnels")<HttpTunnels, {
  /**
   * Creates a tunnel named `name` (a random name if none), or returns the owner's tunnel of that
   * name (`created` false). Fails with 400 (bad name), 409 (another owner's name) or 429 (too many).
   */
  readonly create: (owner: Owner, name: Option.Option<string>, options?: CreateOptions) => Effect.Effect<{ tunnel: HttpTunnel; created: boolean }, ApiRefusal>
  readonly byName: (name: string) => Option.Option<HttpTunnel>
  readonly byId: (id: string) => Option.Option<HttpTunnel>
  /** Every tunnel, or the owner's, sorted by name. */
  readonly list: (owner: Option.Option<Owner>) => ReadonlyArray<HttpTunnel>
  /** Removes a tunnel: its control connection and waiting visitors are closed. */
  readonly remove: (tunnel: HttpTunnel) => Effect.Effect<void>
  /** In a cluster: another node took the tunnel's name (its owner came back there); it ends here. */
  readonly lose: (tunnel: HttpTunnel) => Effect.Effect<void>
  /**
   * Brings a tunnel online over `ws` for as long as the caller's scope is open (replacing any
   * previous control connection); when it closes, the tunnel goes offline.
   */
  readonly attach: (tunnel: HttpTunnel, ws: WebSocket, framing: Framing, peer: string) => Effect.Effect<ControlSession, never, Scope.Scope>
  /** A request reached the tunnel: counted, and an idle ttl starts again. */
  readonly touch: (tunnel: HttpTunnel) => Effect.Effect<void>
  /** Waits until a tunnel is created, comes online or goes offline (changes since the last wait count). */
  readonly changed: Effect.Effect<void>
}>() {}

/**
 * A tunnel's creation, as NullBore's API reports it (Spore's own clients leave most out): what
 * the create request said of it, but its time, which is the tunnel's `expiry`.
 */
export type TunnelMeta = Omit<CreateOptions, "ttl" | "idleTtl"> & { readonly createdAt: Date }

export interface BasicAuth {
  readonly user: string
  readonly password: string
}

/** What a create request asks for besides a name. */
export interface CreateOptions {
  /** The tunnel ends this long after creation: removed, its control socket closed with 1000. */
  readonly ttl: Option.Option<Duration.Duration>
  /** The ttl counts from the last request instead (NullBore's `idle_ttl`). */
  readonly idleTtl: boolean
  /** The client's local port, as its client reports it. */
  readonly localPort: Option.Option<number>
  readonly deviceName: Option.Option<string>
  readonly source: Option.Option<string>
  /** Visitors must give this user and password (HTTP basic auth), checked by the front. */
  readonly basicAuth: Option.Option<BasicAuth>
  /** The Host the app is sent instead of the visitor's. */
  readonly hostHeader: Option.Option<string>
}

export const NO_CREATE_OPTIONS: CreateOptions = {
  ttl: Option.none(),
  idleTtl: false,
  localPort: Option.none(),
  deviceName: Option.none(),
  source: Option.none(),
  basicAuth: Option.none(),
  hostHeader: Option.none()
}


export const make = (maxTunnels: number) =>
  Effect.gen(function*() {
    const cluster = yield* Cluster
    const byName = new Map<string, HttpTunnel>()
    // Names being claimed in the cluster right now: a second create of one waits for nobody.
    const claiming = new Set<string>()
    // One pending change at most: whoever waits sees that something changed, not how often.
    const changes = yield* Queue.sliding<void>(1)
    const byId = new Map<string, HttpTunnel>()
    // One timer per offline tunnel; coming online interrupts it.
    const offlineTimers = yield* FiberMap.make<string>()
    // One timer per tunnel with a ttl; removal interrupts it.
    const expiryTimers = yield* FiberMap.make<string>()

    const forget = (tunnel: HttpTunnel) =>
      Effect.suspend(() => {
        if (byId.get(tunnel.id) !== tunnel) return Effect.void
        byId.delete(tunnel.id)
        byName.delete(tunnel.name)
        return Effect.zipRight(
          cluster.release(tunnel.name, tunnel.id),
          Effect.logInfo(`http tunnel ${tunnel.name} removed`).pipe(Effect.annotateLogs({ tunnel: tunnel.name }))
        )
      })

    const goOffline = (tunnel: HttpTunnel) =>
      FiberMap.run(offlineTimers, tunnel.id, Effect.zipRight(Effect.sleep(OFFLINE_TTL), forget(tunnel)))

    /** Takes `name` in the cluster for a new tunnel `id` (alone: it is ours already). */
    const claim = (name: string, id: Uuid, owner: Owner) =>
      Option.match(cluster.self, {
        onNone: () => Effect.succeed(true),
        onSome: (node) =>
          Effect.acquireUseRelease(
            Effect.sync(() => claiming.add(name)),
            () => cluster.claim({ name, id, owner, node: node.id, addr: node.addr, view: {} }),
            () => Effect.sync(() => claiming.delete(name))
          ).pipe(Effect.mapError((error) => new ApiRefusal({ reason: "cluster-unavailable", detail: error.message })))
      })

    const create = (owner: Owner, requested: Option.Option<string>, options: CreateOptions = NO_CREATE_OPTIONS) =>
      Effect.gen(function*() {
        const id = yield* randomUuid
        let name: string
        if (Option.isSome(requested)) {
          const checked = validateName(requested.value)
          if (Either.isLeft(checked)) return yield* new ApiRefusal({ reason: "invalid-name", detail: checked.left })
          name = checked.right
          const existing = byName.get(name)
          if (existing !== undefined) {
            if (existing.owner !== owner) return yield* new ApiRefusal({ reason: "name-taken", detail: name })
            return { tunnel: existing, created: false }
          }
          if (byId.size >= maxTunnels) return yield* new ApiRefusal({ reason: "max-tunnels", limit: maxTunnels })
          if (claiming.has(name) || !(yield* claim(name, id, owner))) return yield* new ApiRefusal({ reason: "name-taken", detail: name })
        } else {
          if (byId.size >= maxTunnels) return yield* new ApiRefusal({ reason: "max-tunnels", limit: maxTunnels })
          // A random name another node holds is drawn again (bounded: collisions are rare).
          let attempts = 0
          do {
            do name = yield* randomName
            while (byName.has(name) || claiming.has(name))
            if (++attempts > 20) return yield* new ApiRefusal({ reason: "name-taken", detail: name })
          } while (!(yield* claim(name, id, owner)))
        }
        // While the claim was out, another request of this node may have taken the name or the last place.
        if (byName.has(name) || byId.size >= maxTunnels) {
          yield* cluster.release(name, id)
          return yield* (byName.has(name) ? new ApiRefusal({ reason: "name-taken", detail: name }) : new ApiRefusal({ reason: "max-tunnels", limit: maxTunnels }))
        }
        const now = yield* Clock.currentTimeMillis
        const { idleTtl: _idle, ttl: _ttl, ...described } = options
        const tunnel: HttpTunnel = {
          id,
          name,
          owner,
          counts: makeVisitorCounts(),
          stats: { connections: 0, requests: 0, bytesIn: 0, bytesOut: 0 },
          meta: { ...described, createdAt: new Date(now) },
          expiry: {
            ttl: options.ttl,
            idle: options.idleTtl && Option.isSome(options.ttl),
            expiresAt: Option.match(options.ttl, { onNone: () => undefined, onSome: (ttl) => now + Duration.toMillis(ttl) }),
            lastActive: undefined
          },
          log: makeRequestLog(),
          control: undefined
        }
        byName.set(name, tunnel)
        byId.set(tunnel.id, tunnel)
        if (tunnel.expiry.expiresAt !== undefined) yield* FiberMap.run(expiryTimers, tunnel.id, expireWhenDue(tunnel))
        // Offline until its client connects, and removed if it never does.
        yield* goOffline(tunnel)
        yield* Effect.logInfo(`http tunnel ${name} created`).pipe(Effect.annotateLogs({ tunnel: name }))
        yield* Queue.offer(changes, undefined)
        return { tunnel, created: true }
      })

    const end = (tunnel: HttpTunnel, code: number, reason: string) =>
      Effect.gen(function*() {
        yield* forget(tunnel)
        yield* FiberMap.remove(offlineTimers, tunnel.id)
        // Its handler's scope ends with the socket, which closes the session.
        tunnel.control?.ws.close(code, reason)
      })

    const remove = (tunnel: HttpTunnel) =>
      Effect.zipRight(end(tunnel, 4001, "tunnel deleted"), FiberMap.remove(expiryTimers, tunnel.id))

    const lose = (tunnel: HttpTunnel) =>
      Effect.zipRight(
        Effect.logWarning(`http tunnel ${tunnel.name} is now held by another node of the cluster; closed here`).pipe(Effect.annotateLogs({ tunnel: tunnel.name })),
        Effect.zipRight(end(tunnel, 4000, "the tunnel's name is held by another server of the cluster"), FiberMap.remove(expiryTimers, tunnel.id))
      )

    // The tunnel's own expiry timer: it sleeps until the time due, which requests may have moved
    // on meanwhile (an idle ttl), so it looks again when it wakes. It ends the tunnel itself, so
    // it must not interrupt itself through `remove`.
    const expireWhenDue = (tunnel: HttpTunnel) =>
      Effect.gen(function*() {
        while (true) {
          const now = yield* Clock.currentTimeMillis
          const due = tunnel.expiry.expiresAt ?? now
          if (due <= now) break
          yield* Effect.sleep(Duration.millis(due - now))
        }
        yield* Effect.logInfo(`http tunnel ${tunnel.name} expired (its ttl)`).pipe(Effect.annotateLogs({ tunnel: tunnel.name }))
        yield* end(tunnel, EXPIRED_CLOSE_CODE, "tunnel expired")
      })

    const touch = (tunnel: HttpTunnel) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        tunnel.stats.requests++
        tunnel.expiry.lastActive = now
        if (tunnel.expiry.idle && Option.isSome(tunnel.expiry.ttl)) {
          tunnel.expiry.expiresAt = now + Duration.toMillis(tunnel.expiry.ttl.value)
        }
      })

    const attach = (tunnel: HttpTunnel, ws: WebSocket, framing: Framing, peer: string) =>
      Effect.gen(function*() {
        tunnel.control?.ws.close(4000, "replaced by a new control connection")
        const scope = yield* Scope.make()
        const session: ControlSession = { ws, framing, peer, since: yield* Clock.currentTimeMillis, scope }
        tunnel.control = session
        yield* FiberMap.remove(offlineTimers, tunnel.id)
        yield* Queue.offer(changes, undefined)
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            // Waiting visitors of this session are let go (they get a 502).
            yield* Scope.close(scope, Exit.void)
            if (tunnel.control !== session) return
            tunnel.control = undefined
            yield* Queue.offer(changes, undefined)
            if (byId.get(tunnel.id) === tunnel) yield* goOffline(tunnel)
          })
        )
        return session
      })

    return HttpTunnels.of({
      create,
      byName: (name) => Option.fromNullable(byName.get(name)),
      byId: (id) => Option.fromNullable(byId.get(id)),
      list: (owner) =>
        [...byId.values()]
          .filter((tunnel) => Option.isNone(owner) || tunnel.owner === owner.value)
          .sort((a, b) => a.name.localeCompare(b.name)),
      remove,
      lose,
      attach,
      touch,
      changed: Queue.take(changes)
    })
  })

/** The tunnels of one server alone. */
export const layer = (maxTunnels: number) => Layer.scoped(HttpTunnels, make(maxTunnels)).pipe(Layer.provide(solo))

/** The tunnels of a node, their names claimed in the cluster the Cluster service stands for. */
export const clusterLayer = (maxTunnels: number) => Layer.scoped(HttpTunnels, make(maxTunnels))
