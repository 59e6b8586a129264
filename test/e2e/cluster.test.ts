/**
 * A cluster of three `spore server` processes on 127.0.0.1 sharing one real Redis (Debian's
 * redis-server, test/support/redis.ts): a tunnel created through node A is served by B and C
 * (a GET, a 50 MiB POST checked by SHA-256, a WebSocket echo, 100 visitors at once), a name is
 * given once however many nodes are asked at the same moment, a client whose node is killed
 * (SIGKILL) is back with its name through another node within 15 s while visitors meanwhile get a
 * 503 with Retry-After, Redis stopped and started again (empty) heals without a restart, and a
 * node without the cluster secret is refused by the others. Visitors go by path, /t/NAME/.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { Duration, Effect, type Scope } from "effect"
import { Agent, request } from "undici"
import { callApi, KEY_A, KEY_B, localApp, startHttpClient, writeKeys } from "../support/http.js"
import { type Running, startSpore, within } from "../support/process.js"
import { echoOf, openWebSocket } from "../support/websocket.js"
import { hasRedis, type RedisServer, startRedis } from "../support/redis.js"

const SECRET = "cluster-secret-0123456789"
const LOOPBACK = "127.0.0.1"

interface Node {
  readonly process: Running
  /** The HTTP front's port. */
  readonly port: number
  /** The node channel's address, as the others dial it. */
  readonly nodeAddr: string
  readonly metricsPort: number
}

/** One `spore server --cluster` on 127.0.0.1, once its front is up and it has reached Redis. */
const startNode = (redis: RedisServer, keysFile: string, secret = SECRET) =>
  Effect.gen(function*() {
    const process = yield* startSpore([
      "server", "--bind-addr", LOOPBACK, "--control-port", "0", "--min-port", "38200", "--max-port", "38300",
      "--http-addr", `${LOOPBACK}:0`, "--api-keys", keysFile, "--dashboard", `${LOOPBACK}:0`,
      "--metrics-addr", `${LOOPBACK}:0`,
      "--cluster", redis.url, "--node-addr", `${LOOPBACK}:0`
    ], { SPORE_CLUSTER_SECRET: secret }, { lifetimeMs: 120_000 })
    const nodeAddr = (yield* within("the node channel", 15, process.waitFor(/node channel listening on (127\.0\.0\.1:\d+)/)))[1]!
    const port = Number((yield* within("the http front", 15, process.waitFor(/http front listening on 127\.0\.0\.1:(\d+)/)))[1])
    const metricsPort = Number((yield* within("the metrics", 15, process.waitFor(/metrics at http:\/\/127\.0\.0\.1:(\d+)/)))[1])
    yield* within("Redis reached", 15, process.waitFor(/cluster: Redis \S+ is reachable/))
    return { process, port, nodeAddr, metricsPort } satisfies Node
  })

const startCluster = (keysFile: string) =>
  Effect.gen(function*() {
    const redis = yield* startRedis
    const nodes = yield* Effect.all([startNode(redis, keysFile), startNode(redis, keysFile), startNode(redis, keysFile)], { concurrency: 3 })
    return { redis, nodes }
  })

const agent: Effect.Effect<Agent, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => new Agent({ headersTimeout: 10_000, bodyTimeout: 15_000, connections: 128 })),
  (agent) => Effect.promise(() => agent.destroy())
)

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/** One request; its status, headers and whole body. */
const send = (dispatcher: Agent, url: string, options: { method?: string; body?: Buffer; fresh?: boolean } = {}) =>
  within(`${options.method ?? "GET"} ${url}`, 20, Effect.tryPromise(async () => {
    const answer = await request(url, {
      dispatcher,
      method: (options.method ?? "GET") as "GET",
      // `fresh`: a connection of its own, closed after the response.
      reset: options.fresh === true,
      ...(options.body === undefined ? {} : { body: options.body })
    })
    const body = Buffer.from(await answer.body.arrayBuffer())
    return { status: answer.statusCode, headers: answer.headers, body }
  }).pipe(Effect.mapError((error) => new Error(`${options.method ?? "GET"} ${url}: ${String(error.error)}`))))

const via = (node: Node, name: string, path = "") => `http://${LOOPBACK}:${node.port}/t/${name}/${path}`

const metric = (node: Node, name: string) =>
  Effect.promise(async () => {
    const text = await (await fetch(`http://${LOOPBACK}:${node.metricsPort}/metrics`)).text()
    const line = text.split("\n").find((each) => each.startsWith(`${name} `))
    return line === undefined ? undefined : Number(line.split(" ")[1])
  })

/** Polls `check` every 100 ms until it holds, for at most `seconds`. */
const eventually = <E>(what: string, seconds: number, check: Effect.Effect<boolean, E>) =>
  within(what, seconds, Effect.gen(function*() {
    while (!(yield* check)) yield* Effect.sleep(Duration.millis(100))
  }))

describe.skipIf(!hasRedis())("a cluster of three servers on one Redis", () => {
  it.scopedLive("a tunnel created through node A is served by B and C: GET, 50 MiB POST, a WebSocket, 100 visitors at once", () =>
    Effect.gen(function*() {
      const { nodes } = yield* startCluster(writeKeys(KEY_A))
      const [a, b, c] = nodes as [Node, Node, Node]
      const app = yield* localApp
      const client = yield* startHttpClient(a.port, app.port, { key: KEY_A, name: "shared" })
      expect(client.url).toBe(via(a, "shared"))
      const dispatcher = yield* agent

      for (const node of [a, b, c]) {
        const answer = yield* send(dispatcher, via(node, "shared", "echo?from=node"))
        expect(answer.status).toBe(200)
        const echo = JSON.parse(answer.body.toString()) as { url: string; forwardedFor: string }
        expect(echo.url).toBe("/echo?from=node")
        // The visitor's own address reaches the app, not the forwarding node's.
        expect(echo.forwardedFor).toBe(LOOPBACK)
      }

      const body = randomBytes(50 * 1024 * 1024)
      const posted = yield* send(dispatcher, via(b, "shared", "hash"), { method: "POST", body })
      expect(posted.status).toBe(200)
      expect(JSON.parse(posted.body.toString())).toMatchObject({ length: body.length, sha256: sha256(body) })

      const ws = yield* openWebSocket(`ws://${LOOPBACK}:${c.port}/t/shared/echo`)
      expect((yield* echoOf(ws, "hello through C")).toString()).toBe("hello through C")
      const binary = randomBytes(1024 * 1024)
      expect(sha256(yield* echoOf(ws, binary))).toBe(sha256(binary))
      ws.close()

      const answers = yield* Effect.all(
        Array.from({ length: 100 }, (_, index) => send(dispatcher, via(index % 2 === 0 ? b : c, "shared", `echo?visitor=${index}`))),
        { concurrency: 100 }
      )
      expect(answers.map((answer) => answer.status)).toEqual(Array(100).fill(200))
      answers.forEach((answer, index) => expect(JSON.parse(answer.body.toString()).url).toBe(`/echo?visitor=${index}`))
      // Counted by connection (kept alive, so fewer than the requests) on the nodes that forward.
      for (const node of [b, c]) expect(yield* metric(node, `spore_cluster_handovers_total{outcome="forwarded"}`)).toBeGreaterThan(0)
      expect(yield* metric(a, `spore_cluster_handovers_total{outcome="forwarded"}`)).toBeUndefined()

      // Every node's API lists it, with the node that holds it; one by id is answered by its node.
      const listed = yield* callApi(c.port, "GET", "/v1/tunnels", { key: KEY_A })
      const tunnels = listed.body as unknown as ReadonlyArray<Record<string, unknown>>
      expect(tunnels).toHaveLength(1)
      expect(tunnels[0]).toMatchObject({ name: "shared", node: a.nodeAddr, online: true, url: via(c, "shared") })
      const one = yield* callApi(b.port, "GET", `/v1/tunnels/${String(tunnels[0]!.id)}`, { key: KEY_A })
      expect(one.status).toBe(200)
      expect(one.body).toMatchObject({ name: "shared", requests: expect.any(Number) })
      const log = yield* callApi(c.port, "GET", `/v1/tunnels/${String(tunnels[0]!.id)}/requests`, { key: KEY_A })
      expect(log.status).toBe(200)
      expect((log.body as unknown as ReadonlyArray<unknown>).length).toBe(100)
      // A name nobody holds is a 404 everywhere.
      expect((yield* send(dispatcher, via(b, "nobody"))).status).toBe(404)
    }), 90_000)

  it.scopedLive("a name is given once, however many nodes are asked for it at the same moment", () =>
    Effect.gen(function*() {
      const { nodes } = yield* startCluster(writeKeys(KEY_A, KEY_B))
      const [a, b, c] = nodes as [Node, Node, Node]
      for (let round = 0; round < 20; round++) {
        const name = `race-${round}`
        // Three owners' worth of asks: KEY_A through A and B, KEY_B through C, all at once.
        const answers = yield* Effect.all([
          callApi(a.port, "POST", "/v1/tunnels", { key: KEY_A, body: { name } }),
          callApi(c.port, "POST", "/v1/tunnels", { key: KEY_B, body: { name } }),
          callApi(b.port, "POST", "/v1/tunnels", { key: KEY_B, body: { name } })
        ], { concurrency: 3 })
        const created = answers.filter((answer) => answer.status === 201)
        const taken = answers.filter((answer) => answer.status === 409)
        // One owner wins. Its own second ask (KEY_B twice) may win too, on another node: that is
        // its owner taking the name over, never another owner's.
        expect(created.length + taken.length).toBe(3)
        const winners = new Set(created.map((answer) => (answer.body as Record<string, unknown> | undefined)?.client_id))
        expect(winners.size).toBe(1)
        for (const refused of taken) expect(refused.body).toEqual({ error: `the name ${name} is taken` })
      }
    }), 90_000)

  it.scopedLive("kill -9 the node a client is on: it is back through another with its name within 15 s; visitors meanwhile get 503 with Retry-After", () =>
    Effect.gen(function*() {
      const { nodes } = yield* startCluster(writeKeys(KEY_A))
      const [a, b, c] = nodes as [Node, Node, Node]
      const app = yield* localApp
      const urls = nodes.map((node) => `http://${LOOPBACK}:${node.port}`).join(",")
      const client = yield* startHttpClient(a.port, app.port, { key: KEY_A, name: "moving", to: urls })
      const dispatcher = yield* agent
      expect((yield* send(dispatcher, via(b, "moving", "echo"), { fresh: true })).status).toBe(200)

      a.process.child.kill("SIGKILL")
      const killedAt = Date.now()
      // From its death on (a request that reached it while it was dying is lost with it).
      yield* within("node A dead", 5, a.process.exited)
      const statuses = new Map<number, number>()
      let backAt: number | undefined
      for (let attempt = 0; attempt < 300 && backAt === undefined; attempt++) {
        // A fresh connection each time, and never a hang: each visit is bounded.
        const answer = yield* send(dispatcher, via(attempt % 2 === 0 ? b : c, "moving", "echo"), { fresh: true })
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
        if (answer.status === 200) backAt = Date.now()
        else {
          // 503 while the name is another node's that cannot be reached; 502 "Tunnel offline" in
          // the few milliseconds between its client re-creating it on a survivor and opening its
          // control connection there (the one-server answer to a tunnel without a client).
          expect([502, 503]).toContain(answer.status)
          if (answer.status === 503) expect(answer.headers["retry-after"]).toBe("5")
          else expect(answer.body.toString()).toMatch(/Tunnel offline/)
          yield* Effect.sleep(Duration.millis(100))
        }
      }
      console.log(`back ${backAt === undefined ? "never" : `${backAt - killedAt} ms`} after the kill; statuses ${JSON.stringify([...statuses])}`)
      expect(backAt).toBeDefined()
      expect(backAt! - killedAt).toBeLessThan(15_000)
      yield* within("the client says it is back", 5, client.process.waitFor(/reconnected: moving is online at http:\/\/127\.0\.0\.1:(\d+)\/t\/moving\//))
      // Served by both survivors again.
      expect((yield* send(dispatcher, via(b, "moving", "echo"))).status).toBe(200)
      expect((yield* send(dispatcher, via(c, "moving", "echo"))).status).toBe(200)
    }), 90_000)

  it.scopedLive("a dead node's names are free within 10 s: visitors get 503 until then, 404 after, and another owner may take the name", () =>
    Effect.gen(function*() {
      const { nodes } = yield* startCluster(writeKeys(KEY_A, KEY_B))
      const [a, b, c] = nodes as [Node, Node, Node]
      const app = yield* localApp
      // Its client knows only A: nobody takes the name back.
      yield* startHttpClient(a.port, app.port, { key: KEY_A, name: "orphan" })
      const dispatcher = yield* agent
      expect((yield* send(dispatcher, via(b, "orphan", "echo"), { fresh: true })).status).toBe(200)
      a.process.child.kill("SIGKILL")
      yield* within("node A dead", 5, a.process.exited)
      const diedAt = Date.now()
      let freeAt: number | undefined
      for (let attempt = 0; attempt < 200 && freeAt === undefined; attempt++) {
        const answer = yield* send(dispatcher, via(b, "orphan", "echo"), { fresh: true })
        if (answer.status === 404) freeAt = Date.now()
        else {
          expect(answer.status).toBe(503)
          yield* Effect.sleep(Duration.millis(100))
        }
      }
      console.log(`the name was free ${freeAt === undefined ? "never" : `${freeAt - diedAt} ms`} after the node died`)
      expect(freeAt).toBeDefined()
      expect(freeAt! - diedAt).toBeLessThan(10_000)
      const taken = yield* callApi(c.port, "POST", "/v1/tunnels", { key: KEY_B, body: { name: "orphan" } })
      expect(taken.status).toBe(201)
    }), 90_000)

  it.scopedLive("a client back through another node while its old node lives takes its name over: the old node lets go and forwards", () =>
    Effect.gen(function*() {
      const { nodes } = yield* startCluster(writeKeys(KEY_A))
      const [a, b, c] = nodes as [Node, Node, Node]
      const app = yield* localApp
      const first = yield* startHttpClient(a.port, app.port, { key: KEY_A, name: "hop" })
      first.process.child.kill("SIGKILL")
      const dispatcher = yield* agent
      // A holds the tunnel for its lost client (the single server's 5 minutes), offline.
      yield* eventually("offline on A", 10, Effect.map(send(dispatcher, via(a, "hop", "echo"), { fresh: true }), (answer) => answer.status === 502))
      const second = yield* startHttpClient(b.port, app.port, { key: KEY_A, name: "hop" })
      expect(second.url).toBe(via(b, "hop"))
      yield* within("A lets it go", 10, a.process.waitFor(/http tunnel hop is now held by another node of the cluster/))
      for (const node of [a, b, c]) expect((yield* send(dispatcher, via(node, "hop", "echo"), { fresh: true })).status).toBe(200)
    }), 90_000)

  it.scopedLive("Redis stopped and started again: local tunnels keep serving, new names fail clearly, and it heals without a restart", () =>
    Effect.gen(function*() {
      const { redis, nodes } = yield* startCluster(writeKeys(KEY_A))
      const [a, b] = nodes as [Node, Node, Node]
      const app = yield* localApp
      yield* startHttpClient(a.port, app.port, { key: KEY_A, name: "steady" })
      const dispatcher = yield* agent
      expect((yield* send(dispatcher, via(b, "steady", "echo"))).status).toBe(200)
      expect(yield* metric(a, "spore_cluster_up")).toBe(1)

      yield* redis.stop
      yield* eventually("spore_cluster_up 0", 10, Effect.map(metric(a, "spore_cluster_up"), (up) => up === 0))
      yield* within("the node says so", 5, a.process.waitFor(/cluster: lost Redis/))
      // The holder serves its own visitors without Redis.
      for (let visit = 0; visit < 20; visit++) expect((yield* send(dispatcher, via(a, "steady", "echo"))).status).toBe(200)
      // Another node cannot find it: a 503 to come back, not a hang.
      const lost = yield* send(dispatcher, via(b, "steady", "echo"))
      expect(lost.status).toBe(503)
      expect(lost.headers["retry-after"]).toBe("5")
      expect(yield* metric(b, `spore_cluster_handovers_total{outcome="unavailable"}`)).toBeGreaterThanOrEqual(1)
      const refused = yield* callApi(b.port, "POST", "/v1/tunnels", { key: KEY_A, body: { name: "newcomer" } })
      expect(refused.status).toBe(503)
      expect(String(refused.body?.error)).toMatch(/^new tunnels cannot be created now: the cluster's Redis is unreachable/)

      // Back, empty: the holder writes its name again at its next renewal.
      yield* redis.start
      yield* eventually("served through B again", 15, Effect.map(Effect.either(send(dispatcher, via(b, "steady", "echo"))), (answer) => answer._tag === "Right" && answer.right.status === 200))
      expect(yield* metric(a, "spore_cluster_up")).toBe(1)
      const created = yield* callApi(b.port, "POST", "/v1/tunnels", { key: KEY_A, body: { name: "newcomer" } })
      expect(created.status).toBe(201)
    }), 90_000)

  it.scopedLive("a node without the cluster secret is refused by the others: its visitors get a 503, nothing reaches the tunnel", () =>
    Effect.gen(function*() {
      const keys = writeKeys(KEY_A)
      const { nodes, redis } = yield* startCluster(keys)
      const [a] = nodes as [Node, Node, Node]
      const intruder = yield* startNode(redis, keys, "not-the-cluster-secret-000")
      const app = yield* localApp
      yield* startHttpClient(a.port, app.port, { key: KEY_A, name: "guarded" })
      const dispatcher = yield* agent
      const answer = yield* send(dispatcher, via(intruder, "guarded", "echo"))
      expect(answer.status).toBe(503)
      yield* within("A refuses it", 5, a.process.waitFor(/cluster: refused a node connection: wrong cluster secret/))
      // Bytes that are not the node protocol at all: closed, and the node goes on serving.
      const [host, port] = a.nodeAddr.split(":") as [string, string]
      const closed = yield* within("garbage closed", 10, Effect.async<string>((resume) => {
        const socket = net.connect({ host, port: Number(port) })
        socket.on("data", () => {})
        socket.once("connect", () => socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + "x".repeat(100)))
        socket.once("close", () => resume(Effect.succeed("closed")))
        socket.once("error", () => {})
      }))
      expect(closed).toBe("closed")
      yield* within("A refuses the garbage", 5, a.process.waitFor(/refused a node connection: not a node of a Spore cluster/))
      expect((yield* send(dispatcher, via(a, "guarded", "echo"))).status).toBe(200)
    }), 90_000)
})
