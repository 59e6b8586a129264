/**
 * The cluster's shared namespace of HTTP tunnel names, kept in Redis (`spore server --cluster
 * redis://HOST:PORT`). Without `--cluster` the server is a cluster of one (`solo`): every name is
 * its own and nothing is ever elsewhere.
 *
 * Keys (one Redis, or one behind Sentinel; not Redis Cluster: the scripts touch keys they compute):
 *
 *   spore:name:NAME   the tunnel's record (JSON: name, id, owner, node id and address, and what
 *                     the API shows of it), PX NAME_TTL
 *   spore:id:ID       NAME, PX NAME_TTL (the API finds a tunnel by its id)
 *
 * A node claims a name with one script (atomic, so two nodes asked for one name at the same moment
 * cannot both get it): free, or held by the same API key's owner (a client come back through
 * another node takes its name over at once), else refused. The holding node renews its names every
 * RENEW_EVERY, rewriting their records (so the API's counts are at most that old); a node that dies
 * stops renewing, and its names are gone NAME_TTL later. A renewal that finds another node's
 * record tells the holder it has lost that name; one that finds no record (Redis restarted empty,
 * or was unreachable past the TTL) writes it again, so the cluster heals without a restart.
 *
 * Redis unreachable: commands fail at once (no queue; COMMAND_TIMEOUT for one that hangs) with
 * ClusterUnavailable; local tunnels keep serving (a visitor of a local name never asks Redis),
 * new names are refused, `spore_cluster_up` is 0, and ioredis reconnects by itself.
 */
import { Context, Effect, Layer, Option, Runtime } from "effect"
import { Redis } from "ioredis"
import { ClusterUnavailable } from "../errors.js"
import type { Registry } from "../metrics/registry.js"

/** How long a name lives in Redis without a renewal: a dead node's names are free this soon. */
export const NAME_TTL_MS = 9_000
/** How often a node renews its names. */
export const RENEW_EVERY_MS = 3_000
/** The longest one Redis command may take before it counts as unreachable. */
const COMMAND_TIMEOUT_MS = 2_000
const PREFIX = "spore:"

/** A node of the cluster: its id (new at each start) and the address of its node channel. */
export interface ClusterNode {
  readonly id: string
  readonly addr: string
}

/** A name's record: who holds it and what the API shows of it (`view`, rewritten at each renewal). */
export interface TunnelRecord {
  readonly name: string
  readonly id: string
  readonly owner: string
  readonly node: string
  readonly addr: string
  readonly view: Readonly<Record<string, unknown>>
}

export class Cluster extends Context.Tag("spore/Cluster")<Cluster, {
  /** This node, when in a cluster. */
  readonly self: Option.Option<ClusterNode>
  /** Whether the store answers (always, alone). */
  readonly isUp: () => boolean
  /** Takes a name for this node: false when another owner holds it. */
  readonly claim: (record: TunnelRecord) => Effect.Effect<boolean, ClusterUnavailable>
  /** Renews this node's names; answers the names another node now holds. */
  readonly renew: (records: ReadonlyArray<TunnelRecord>) => Effect.Effect<ReadonlyArray<string>, ClusterUnavailable>
  /** Gives a name up, if this node still holds it (best effort: it expires anyway). */
  readonly release: (name: string, id: string) => Effect.Effect<void>
  readonly byName: (name: string) => Effect.Effect<Option.Option<TunnelRecord>, ClusterUnavailable>
  readonly byId: (id: string) => Effect.Effect<Option.Option<TunnelRecord>, ClusterUnavailable>
  /** Every name of the cluster. */
  readonly all: Effect.Effect<ReadonlyArray<TunnelRecord>, ClusterUnavailable>
}>() {}

/** No cluster: this server's names are the only ones. */
export const SOLO = Cluster.of({
  self: Option.none(),
  isUp: () => true,
  claim: () => Effect.succeed(true),
  renew: () => Effect.succeed([]),
  release: () => Effect.void,
  byName: () => Effect.succeedNone,
  byId: () => Effect.succeedNone,
  all: Effect.succeed([])
})

export const solo = Layer.succeed(Cluster, SOLO)

const CLAIM = `
local current = redis.call('GET', KEYS[1])
if current then
  local held = cjson.decode(current)
  if held.owner ~= ARGV[1] then return 0 end
  if held.id ~= ARGV[4] then redis.call('DEL', ARGV[5] .. held.id) end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], cjson.decode(ARGV[2]).name, 'PX', ARGV[3])
return 1`

const RENEW = `
local lost = {}
for i = 4, #ARGV, 3 do
  local nameKey = ARGV[3] .. 'name:' .. ARGV[i]
  local current = redis.call('GET', nameKey)
  if current and cjson.decode(current).node ~= ARGV[1] then
    table.insert(lost, ARGV[i])
  else
    redis.call('SET', nameKey, ARGV[i + 2], 'PX', ARGV[2])
    redis.call('SET', ARGV[3] .. 'id:' .. ARGV[i + 1], ARGV[i], 'PX', ARGV[2])
  end
end
return lost`

const RELEASE = `
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).node == ARGV[1] then redis.call('DEL', KEYS[1], KEYS[2]) end
return 1`

const parseRecord = (text: string | null): Option.Option<TunnelRecord> => {
  if (text === null) return Option.none()
  try {
    return Option.some(JSON.parse(text) as TunnelRecord)
  } catch {
    return Option.none()
  }
}

/** The store's URL without its password, for logs. */
const shown = (url: string) => url.replace(/\/\/[^@/]*@/, "//***@")

export const make = (config: { readonly url: string; readonly node: ClusterNode; readonly registry: Registry }) =>
  Effect.gen(function*() {
    let up = false
    const redis = yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Redis(config.url, {
          lazyConnect: true,
          // Fail at once while disconnected, instead of queueing: a visitor gets its 503 now.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          commandTimeout: COMMAND_TIMEOUT_MS,
          connectTimeout: COMMAND_TIMEOUT_MS,
          // Reconnects forever, at most a second apart.
          retryStrategy: (attempt) => Math.min(attempt * 100, 1000)
        })
      ),
      (redis) => Effect.sync(() => redis.disconnect())
    )
    // Redis's events are callbacks: their log lines run on this layer's runtime (its logger).
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    redis.on("ready", () => {
      if (!up) runFork(Effect.logInfo(`cluster: Redis ${shown(config.url)} is reachable; this node is ${config.node.addr}`))
      up = true
    })
    let lastError = "not connected yet"
    redis.on("error", (error: Error) => {
      lastError = error.message
    })
    redis.on("close", () => {
      if (up) {
        runFork(Effect.logWarning(
          `cluster: lost Redis ${shown(config.url)}; local tunnels keep serving, new names are refused until it is back`
        ))
      }
      up = false
    })
    redis.connect().catch(() => {
      runFork(Effect.logWarning(`cluster: Redis ${shown(config.url)} is unreachable (${lastError}); trying again every second`))
    })
    config.registry.computed("spore_cluster_up", "1 while this node reaches the cluster's Redis, else 0.", "gauge", [], () => [{ labels: {}, value: up ? 1 : 0 }])

    /** One command, its failure a ClusterUnavailable. */
    const call = <A>(command: () => Promise<A>) =>
      Effect.tryPromise({ try: command, catch: (error) => new ClusterUnavailable({ reason: up ? (error as Error).message : lastError }) })

    const nameKey = (name: string) => `${PREFIX}name:${name}`
    const idKey = (id: string) => `${PREFIX}id:${id}`

    const byName = (name: string) => Effect.map(call(() => redis.get(nameKey(name))), parseRecord)

    return Cluster.of({
      self: Option.some(config.node),
      isUp: () => up,
      claim: (record) =>
        Effect.map(
          call(() => redis.eval(CLAIM, 2, nameKey(record.name), idKey(record.id), record.owner, JSON.stringify(record), NAME_TTL_MS, record.id, `${PREFIX}id:`)),
          (result) => result === 1
        ),
      renew: (records) =>
        records.length === 0
          ? Effect.succeed([])
          : Effect.map(
            call(() => redis.eval(RENEW, 0, config.node.id, NAME_TTL_MS, PREFIX, ...records.flatMap((record) => [record.name, record.id, JSON.stringify(record)]))),
            (lost) => lost as ReadonlyArray<string>
          ),
      release: (name, id) => Effect.ignore(call(() => redis.eval(RELEASE, 2, nameKey(name), idKey(id), config.node.id))),
      byName,
      byId: (id) =>
        Effect.gen(function*() {
          const name = yield* call(() => redis.get(idKey(id)))
          if (name === null) return Option.none()
          return Option.filter(yield* byName(name), (record) => record.id === id)
        }),
      all: Effect.gen(function*() {
        const keys: Array<string> = []
        let cursor = "0"
        // Bounded: a cursor walk ends, and a namespace of tunnels is thousands of keys, not millions.
        for (let round = 0; round < 1000; round++) {
          const [next, found] = yield* call(() => redis.scan(cursor, "MATCH", `${PREFIX}name:*`, "COUNT", 1000))
          keys.push(...found)
          cursor = next
          if (cursor === "0") break
        }
        if (keys.length === 0) return []
        const values = yield* call(() => redis.mget(...keys))
        return values.flatMap((value) => Option.toArray(parseRecord(value)))
      })
    })
  })

export const layer = (config: { readonly url: string; readonly node: ClusterNode; readonly registry: Registry }) => Layer.scoped(Cluster, make(config))
