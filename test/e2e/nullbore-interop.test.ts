/**
 * NullBore interop, both directions, with NullBore's own binaries (../shared/nullbore/):
 * NullBore's client through `spore server`'s HTTP front, and `spore http` through NullBore's
 * server. The same cases each way, against the same local node:http app: the tunnel's creation
 * as each API shows it, a GET, 50 MiB down and 20 MiB up checked by SHA-256, 50 visitors at once,
 * a WebSocket through the tunnel, 200 visitors one after another, and a ttl that ends the tunnel
 * without its client coming back. Visitors are undici and `ws`, on 127.0.0.1 by path (/t/NAME/).
 *
 * NullBore's server allows one tunnel per key and answers 429 beyond 10 proxied requests a second
 * per tunnel (a burst of 60): each case starts a server of its own, and the sequential visitors
 * follow its Retry-After, counted.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import { Effect, type Scope } from "effect"
import { Agent, request } from "undici"
import { callApi, type Echo, localApp, startHttpClient, startHttpServer, writeKeys } from "../support/http.js"
import { hasNullbore, NULLBORE_KEY, startNullboreClient, startNullboreServer } from "../support/nullbore.js"
import { runSpore, within } from "../support/process.js"
import { echoOf, openWebSocket } from "../support/websocket.js"

interface Tunnel {
  /** The tunnel's public URL, without a trailing slash: `${base}/path` reaches the app's /path. */
  readonly base: string
  /** Every line its client printed so far. */
  readonly clientOutput: () => string
  readonly clientExited: Effect.Effect<number | null>
  /** The tunnels as the server's API lists them for NULLBORE_KEY. */
  readonly listed: Effect.Effect<ReadonlyArray<Record<string, unknown>>, Error>
}

interface Direction {
  readonly title: string
  readonly open: (localPort: number, ttl?: string) => Effect.Effect<Tunnel, Error, Scope.Scope>
}

const listedBy = (port: number) =>
  Effect.map(callApi(port, "GET", "/v1/tunnels", { key: NULLBORE_KEY }), (answer) => answer.body as unknown as ReadonlyArray<Record<string, unknown>>)

const DIRECTIONS: ReadonlyArray<Direction> = [
  {
    title: "NullBore's client through spore server",
    open: (localPort, ttl) =>
      Effect.gen(function*() {
        const server = yield* startHttpServer({ keysFile: writeKeys(NULLBORE_KEY), noDomain: true })
        const client = yield* startNullboreClient(`http://127.0.0.1:${server.port}`, localPort, ttl === undefined ? {} : { ttl })
        return { base: client.url.replace(/\/$/, ""), clientOutput: client.output, clientExited: client.exited, listed: listedBy(server.port) }
      })
  },
  {
    title: "spore http through NullBore's server",
    open: (localPort, ttl) =>
      Effect.gen(function*() {
        const server = yield* startNullboreServer
        const client = yield* startHttpClient(server.port, localPort, { key: NULLBORE_KEY, extra: ttl === undefined ? [] : ["--ttl", ttl] })
        return {
          base: client.url.replace(/\/$/, ""),
          clientOutput: client.process.stderr,
          clientExited: Effect.map(client.process.exited, (finished) => finished.code),
          listed: listedBy(server.port)
        }
      })
  }
]

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const agent = Effect.acquireRelease(
  Effect.sync(() => new Agent({ headersTimeout: 15_000, bodyTimeout: 15_000, connections: 64 })),
  (agent) => Effect.promise(() => agent.destroy())
)

/** One request; the status, the headers and the whole body. */
const send = (dispatcher: Agent, url: string, options: { method?: string; body?: Buffer } = {}) =>
  within(`${options.method ?? "GET"} ${url}`, 30, Effect.promise(async () => {
    const answer = await request(url, { dispatcher, method: (options.method ?? "GET") as "GET", ...(options.body === undefined ? {} : { body: options.body }) })
    const body = Buffer.from(await answer.body.arrayBuffer())
    return { status: answer.statusCode, headers: answer.headers, body }
  }))

/** A GET that waits out NullBore's per-tunnel rate limit (its 429 and Retry-After); how many 429s it met. */
const getPatiently = (dispatcher: Agent, url: string) =>
  Effect.gen(function*() {
    let limited = 0
    for (let attempt = 0; attempt < 50; attempt++) {
      const answer = yield* send(dispatcher, url)
      if (answer.status !== 429) return { answer, limited }
      limited++
      yield* Effect.sleep(`${Number(answer.headers["retry-after"] ?? 1)} seconds`)
    }
    return yield* Effect.fail(new Error(`${url}: still 429 after 50 attempts`))
  })

for (const direction of DIRECTIONS) {
  describe.skipIf(!hasNullbore())(`NullBore interop: ${direction.title}`, () => {
    it.scopedLive("creates the tunnel, serves a GET, and the API shows NullBore's fields", () =>
      Effect.gen(function*() {
        const app = yield* localApp
        const tunnel = yield* direction.open(app.port)
        const dispatcher = yield* agent
        const answer = yield* send(dispatcher, `${tunnel.base}/hello?x=1`)
        expect(answer.status).toBe(200)
        expect((JSON.parse(answer.body.toString()) as Echo).url).toBe("/hello?x=1")
        const listed = yield* tunnel.listed
        expect(listed).toHaveLength(1)
        expect(listed[0]).toMatchObject({ local_port: app.port, mode: "relay", ttl: "1h0m0s" })
        expect(typeof listed[0]!.slug).toBe("string")
        expect(tunnel.base.endsWith(`/t/${String(listed[0]!.slug)}`)).toBe(true)
      }))

    it.scopedLive("50 MiB down and 20 MiB up, by SHA-256", () =>
      Effect.gen(function*() {
        const app = yield* localApp
        const tunnel = yield* direction.open(app.port)
        const dispatcher = yield* agent
        const down = yield* send(dispatcher, `${tunnel.base}/bytes?size=${50 * 1024 * 1024}`)
        expect(down.status).toBe(200)
        expect(down.body.length).toBe(50 * 1024 * 1024)
        expect(sha256(down.body)).toBe(down.headers["x-sha256"])
        const upload = randomBytes(20 * 1024 * 1024)
        const up = yield* send(dispatcher, `${tunnel.base}/hash`, { method: "POST", body: upload })
        expect(up.status).toBe(200)
        expect(JSON.parse(up.body.toString())).toMatchObject({ length: upload.length, sha256: sha256(upload) })
      }))

    it.scopedLive("50 visitors at once, each answered its own", () =>
      Effect.gen(function*() {
        const app = yield* localApp
        const tunnel = yield* direction.open(app.port)
        const dispatcher = yield* agent
        const answers = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, index) => index),
          (index) => send(dispatcher, `${tunnel.base}/visitor-${index}`),
          { concurrency: 50 }
        )
        answers.forEach((answer, index) => {
          expect(answer.status).toBe(200)
          expect((JSON.parse(answer.body.toString()) as Echo).url).toBe(`/visitor-${index}`)
        })
      }))

    it.scopedLive("a WebSocket through the tunnel: text and 1 MiB binary echoed", () =>
      Effect.gen(function*() {
        const app = yield* localApp
        const tunnel = yield* direction.open(app.port)
        const ws = yield* openWebSocket(`${tunnel.base.replace(/^http/, "ws")}/echo`)
        expect((yield* echoOf(ws, "hello through the tunnel")).toString()).toBe("hello through the tunnel")
        const binary = randomBytes(1024 * 1024)
        expect(sha256(yield* echoOf(ws, binary))).toBe(sha256(binary))
      }))

    it.scopedLive("200 visitors one after another", () =>
      Effect.gen(function*() {
        const app = yield* localApp
        const tunnel = yield* direction.open(app.port)
        const dispatcher = yield* agent
        let limited = 0
        for (let index = 0; index < 200; index++) {
          const { answer, limited: waits } = yield* getPatiently(dispatcher, `${tunnel.base}/seq-${index}`)
          limited += waits
          expect(answer.status).toBe(200)
          expect((JSON.parse(answer.body.toString()) as Echo).url).toBe(`/seq-${index}`)
        }
        // Spore's front limits no tunnel's requests; NullBore's server does, past its burst of 60.
        if (direction.title.startsWith("NullBore's client")) expect(limited).toBe(0)
      }), 60_000)

    it.scopedLive("a ttl ends the tunnel, and its client does not come back", () =>
      Effect.gen(function*() {
        const app = yield* localApp
        const tunnel = yield* direction.open(app.port, "2s")
        const dispatcher = yield* agent
        expect((yield* send(dispatcher, `${tunnel.base}/before`)).status).toBe(200)
        // NullBore's server reaps expired tunnels every 10 s.
        yield* within("the client's exit after the ttl", 20, tunnel.clientExited)
        expect(tunnel.clientOutput()).toMatch(/tunnel expired|its ttl ran out/)
        expect(tunnel.clientOutput()).not.toMatch(/reconnect(ing|ed)/)
        expect((yield* send(dispatcher, `${tunnel.base}/after`)).status).toBe(404)
      }), 40_000)
  })
}

describe.skipIf(!hasNullbore())("NullBore interop: what NullBore's server refuses or has not", () => {
  it.scopedLive("a second tunnel on one key is NullBore's 403: spore http ends with its words, exit 1; a wrong key too", () =>
    Effect.gen(function*() {
      const server = yield* startNullboreServer
      const app = yield* localApp
      yield* startHttpClient(server.port, app.port, { key: NULLBORE_KEY })
      const second = yield* within("the second spore http's exit", 20, runSpore(["http", String(app.port), "--to", server.url, "--token", NULLBORE_KEY]))
      expect(second.code).toBe(1)
      expect(second.stderr).toMatch(/error: tunnel limit reached \(1\/1/)
      const wrong = yield* within("a wrong key's exit", 20, runSpore(["http", String(app.port), "--to", server.url, "--token", "nbk_wrong_0123456789abcdef"]))
      expect(wrong.code).toBe(1)
      expect(wrong.stderr).toContain("error: invalid API key")
    }))

  it.scopedLive("spore http --host-header against NullBore's server ends with a line saying the server does not apply it", () =>
    Effect.gen(function*() {
      const server = yield* startNullboreServer
      const finished = yield* within("spore http's exit", 20, runSpore([
        "http", "3000", "--to", server.url, "--token", NULLBORE_KEY, "--host-header", "rewrite"
      ]))
      expect(finished.code).toBe(1)
      expect(finished.stderr).toContain("does not rewrite Host to localhost:3000 (a NullBore server has no --host-header")
    }))
})
