/**
 * The HTTP front as a node of a cluster (cluster/cluster.ts): what it does with a name or an id
 * that another node holds, and how it keeps its own names in the cluster.
 *
 * A visitor of a name held elsewhere (or an API call on a tunnel id held elsewhere) is handed over
 * whole: the node looks the holder up in Redis, dials its node channel (node-link.ts), puts back
 * the request head it has read, and splices the two connections. The holder serves it as if the
 * visitor had come to it (limits, basic auth, the request log, WebSocket upgrades), and a later
 * request on the connection for yet another tunnel is handed on from there, at most MAX_HOPS
 * times. A holder that cannot be reached (dead, its names not yet expired), a record naming this
 * node (its tunnel has just gone), or Redis away: "unavailable", which the visitor gets as a 503
 * with Retry-After.
 */
import type * as net from "node:net"
import { Clock, Duration, Effect, Either, Option } from "effect"
import { type Cluster, RENEW_EVERY_MS, type TunnelRecord } from "../cluster/cluster.js"
import type { NodeLink } from "../cluster/node-link.js"
import type { ClusterUnavailable } from "../errors.js"
import { splice } from "../net/splice.js"
import { describe } from "./api.js"
import type { RequestClient } from "./client-address.js"
import type { HttpTunnel, HttpTunnels } from "./http-tunnels.js"
import type { RequestReader } from "./request-reader.js"

/** The most nodes one connection is handed through (a loop between stale records ends here). */
const MAX_HOPS = 3

export type ElsewhereOutcome = "forwarded" | "unknown" | "unavailable"

/** The connection being handed over: from its request `raw` on. */
export interface HandedConnection {
  readonly socket: net.Socket
  readonly reader: RequestReader
  readonly raw: Buffer
  readonly client: RequestClient
  readonly proto: "http" | "https"
  readonly hops: number
}

/** Hands `connection` to the node `locate` finds, for as long as the connection lasts. */
export const elsewhere = (
  link: NodeLink["Type"],
  connection: HandedConnection,
  locate: Effect.Effect<Option.Option<TunnelRecord>, ClusterUnavailable>
): Effect.Effect<ElsewhereOutcome> =>
  Effect.gen(function*() {
    if (connection.hops >= MAX_HOPS) return "unavailable" as const
    const located = yield* Effect.either(locate)
    if (Either.isLeft(located)) {
      yield* Effect.logDebug(`cluster: cannot look a tunnel up: ${located.left.message}`)
      return "unavailable" as const
    }
    if (Option.isNone(located.right)) return "unknown" as const
    const record = located.right.value
    const self = `${link.address.host}:${link.address.port}`
    if (record.addr === self || record.addr === `[${link.address.host}]:${link.address.port}`) return "unavailable" as const
    const { client } = connection
    const dialed = yield* Effect.either(link.dial(record.addr, {
      kind: "front",
      client: client.address,
      ...(client.before === undefined ? {} : { before: client.before }),
      proto: connection.proto,
      hops: connection.hops + 1
    }))
    if (Either.isLeft(dialed)) {
      yield* Effect.logDebug(`cluster: cannot reach node ${record.addr}, which holds ${record.name}: ${dialed.left.reason}`)
      return "unavailable" as const
    }
    connection.reader.release(connection.raw)
    yield* splice(connection.socket, dialed.right)
    return "forwarded" as const
  }).pipe(Effect.scoped)

/** The tunnel id an API path is about (`/v1/tunnels/ID...`), if any. */
export const tunnelIdOf = (target: string): string | undefined => {
  const match = /^\/v1\/tunnels\/([^/?#]+)/.exec(target)
  if (match === null) return undefined
  try {
    return decodeURIComponent(match[1]!)
  } catch {
    return undefined
  }
}

/** A JSON error the API's way, as raw bytes for a connection the API server never saw. */
export const jsonError = (status: number, message: string, retryAfterSeconds: number) => {
  const body = JSON.stringify({ error: message })
  return Buffer.from(
    `HTTP/1.1 ${status} Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Retry-After: ${retryAfterSeconds}\r\nCache-Control: no-store\r\nConnection: close\r\nX-NullBore-API: 1\r\n\r\n${body}`
  )
}

/** What the API of another node shows of a tunnel of this one (its links are made there). */
export const describeForCluster = (domain: Option.Option<string>) => (tunnel: HttpTunnel, now: number) => {
  const { url: _url, public_url: _publicUrl, ...view } = describe(tunnel, { proto: "http", host: "localhost" }, domain)
  return { ...view, series: tunnel.log.series(now) }
}

/**
 * Renews this node's names every RENEW_EVERY_MS, and at once when a tunnel is created or comes
 * online or goes offline (so the other nodes' API shows it as it is), for as long as the front
 * runs; a tunnel whose name another node now holds ends here. While Redis is away the renewals
 * fail and are tried again; the first one after it is back writes every name again.
 */
export const keepClusterNames = (
  tunnels: HttpTunnels["Type"],
  cluster: Cluster["Type"],
  view: (tunnel: HttpTunnel, now: number) => Readonly<Record<string, unknown>>
) =>
  Option.match(cluster.self, {
    onNone: () => Effect.void,
    onSome: (node) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const local = tunnels.list(Option.none())
        const records = local.map((tunnel) => ({ name: tunnel.name, id: tunnel.id, owner: tunnel.owner, node: node.id, addr: node.addr, view: view(tunnel, now) }))
        const lost = yield* cluster.renew(records)
        for (const name of lost) {
          const tunnel = tunnels.byName(name)
          if (Option.isSome(tunnel)) yield* tunnels.lose(tunnel.value)
        }
      }).pipe(
        Effect.catchTag("ClusterUnavailable", () => Effect.void),
        Effect.zipRight(Effect.race(Effect.sleep(Duration.millis(RENEW_EVERY_MS)), tunnels.changed)),
        Effect.forever
      )
  })
