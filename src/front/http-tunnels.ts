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
 */
import { Context, Duration, Effect, Either, Exit, FiberMap, Layer, Option, Scope } from "effect"
import type { WebSocket } from "ws"
import { ApiRefusal } from "../errors.js"
import { randomUuid, type Uuid } from "../protocol/uuid.js"
import { makeVisitorCounts, type VisitorCounts } from "../visitors/pending-registry.js"
import type { Owner } from "./api-keys.js"
import { randomName, validateName } from "./names.js"

/** How long a tunnel without a control connection keeps its name. */
export const OFFLINE_TTL = Duration.minutes(5)

/** A tunnel's control connection while it is online. */
export interface ControlSession {
  readonly ws: WebSocket
  /** The visitors waiting for this session's client live here; it closes with the session. */
  readonly scope: Scope.Scope
}

export interface HttpTunnel {
  readonly id: Uuid
  readonly name: string
  readonly owner: Owner
  readonly counts: VisitorCounts
  /** Visitor connections served so far, and their bytes. */
  readonly stats: { connections: number; bytesIn: number; bytesOut: number }
  control: ControlSession | undefined
}

export class HttpTunnels extends Context.Tag("spore/HttpTunnels")<HttpTunnels, {
  /**
   * Creates a tunnel named `name` (a random name if none), or returns the owner's tunnel of that
   * name (`created` false). Fails with 400 (bad name), 409 (another owner's name) or 429 (too many).
   */
  readonly create: (owner: Owner, name: Option.Option<string>) => Effect.Effect<{ tunnel: HttpTunnel; created: boolean }, ApiRefusal>
  readonly byName: (name: string) => Option.Option<HttpTunnel>
  readonly byId: (id: string) => Option.Option<HttpTunnel>
  /** Every tunnel, or the owner's, sorted by name. */
  readonly list: (owner: Option.Option<Owner>) => ReadonlyArray<HttpTunnel>
  /** Removes a tunnel: its control connection and waiting visitors are closed. */
  readonly remove: (tunnel: HttpTunnel) => Effect.Effect<void>
  /**
   * Brings a tunnel online over `ws` for as long as the caller's scope is open (replacing any
   * previous control connection); when it closes, the tunnel goes offline.
   */
  readonly attach: (tunnel: HttpTunnel, ws: WebSocket) => Effect.Effect<ControlSession, never, Scope.Scope>
}>() {}

export const make = (maxTunnels: number) =>
  Effect.gen(function*() {
    const byName = new Map<string, HttpTunnel>()
    const byId = new Map<string, HttpTunnel>()
    // One timer per offline tunnel; coming online interrupts it.
    const offlineTimers = yield* FiberMap.make<string>()

    const forget = (tunnel: HttpTunnel) =>
      Effect.suspend(() => {
        if (byId.get(tunnel.id) !== tunnel) return Effect.void
        byId.delete(tunnel.id)
        byName.delete(tunnel.name)
        return Effect.logInfo(`http tunnel ${tunnel.name} removed`).pipe(Effect.annotateLogs({ tunnel: tunnel.name }))
      })

    const goOffline = (tunnel: HttpTunnel) =>
      FiberMap.run(offlineTimers, tunnel.id, Effect.zipRight(Effect.sleep(OFFLINE_TTL), forget(tunnel)))

    const create = (owner: Owner, requested: Option.Option<string>) =>
      Effect.gen(function*() {
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
        } else {
          do name = yield* randomName
          while (byName.has(name))
        }
        if (byId.size >= maxTunnels) {
          return yield* new ApiRefusal({ reason: "max-tunnels", limit: maxTunnels })
        }
        const tunnel: HttpTunnel = {
          id: yield* randomUuid,
          name,
          owner,
          counts: makeVisitorCounts(),
          stats: { connections: 0, bytesIn: 0, bytesOut: 0 },
          control: undefined
        }
        byName.set(name, tunnel)
        byId.set(tunnel.id, tunnel)
        // Offline until its client connects, and removed if it never does.
        yield* goOffline(tunnel)
        yield* Effect.logInfo(`http tunnel ${name} created`).pipe(Effect.annotateLogs({ tunnel: name }))
        return { tunnel, created: true }
      })

    const remove = (tunnel: HttpTunnel) =>
      Effect.gen(function*() {
        yield* forget(tunnel)
        yield* FiberMap.remove(offlineTimers, tunnel.id)
        // Its handler's scope ends with the socket, which closes the session.
        tunnel.control?.ws.close(4001, "tunnel deleted")
      })

    const attach = (tunnel: HttpTunnel, ws: WebSocket) =>
      Effect.gen(function*() {
        tunnel.control?.ws.close(4000, "replaced by a new control connection")
        const scope = yield* Scope.make()
        const session: ControlSession = { ws, scope }
        tunnel.control = session
        yield* FiberMap.remove(offlineTimers, tunnel.id)
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            // Waiting visitors of this session are let go (they get a 502).
            yield* Scope.close(scope, Exit.void)
            if (tunnel.control !== session) return
            tunnel.control = undefined
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
      attach
    })
  })

export const layer = (maxTunnels: number) => Layer.scoped(HttpTunnels, make(maxTunnels))
