/**
 * Named HTTP tunnels end to end, through the real executables: `spore server --http-addr` and
 * `spore http`, a local node:http app behind the tunnel, and visitors that are undici, `ws` and a
 * headless Chromium. Routing by Host and by `/t/NAME/`, X-Forwarded-* headers, large bodies both
 * ways (verified by SHA-256), streaming both ways, keep-alive reuse, WebSocket upgrades, error
 * pages, API keys, reconnection after a server restart (names kept, random ones too), the
 * dashboards, and the CLI's usage errors. Everything is on 127.0.0.1 and every wait is bounded.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { Readable } from "node:stream"
import { join } from "node:path"
import { Effect } from "effect"
import { type Agent, fetch, request } from "undici"
import { hasChromium, withPage } from "../support/browser.js"
import {
  callApi,
  DOMAIN,
  type Echo,
  KEY_A,
  KEY_B,
  localApp,
  loopbackAgent,
  loopbackLookup,
  startHttpClient,
  startHttpServer,
  STREAM_CHUNKS,
  writeKeys
} from "../support/http.js"
import { freePort, LOOPBACK, sha256 } from "../support/net.js"
import { runSpore, within } from "../support/process.js"
import { nextMessage, openWebSocket } from "../support/websocket.js"

// ---------------------------------------------------------------------------------------------
// Helpers

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

/** A request through `agent` (every host resolves to 127.0.0.1), its whole body read. */
const send = (agent: Agent, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
  within(`${init.method ?? "GET"} ${url}`, 5, Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(url, { ...init, dispatcher: agent })
    return { status: response.status, headers: response.headers as unknown as Headers, text: await response.text() }
  }))

/** A GET that must answer 200 with JSON. */
const getJson = <A>(agent: Agent, url: string) =>
  Effect.map(send(agent, url), (answer) => {
    expect(answer.status, answer.text).toBe(200)
    return JSON.parse(answer.text) as A
  })

const api = callApi

const tunnelsOf = (port: number, key: string) =>
  Effect.map(api(port, "GET", "/v1/status", { key }), (answer) => {
    expect(answer.status).toBe(200)
    return answer.body?.tunnels ?? []
  })

/** The local app, a server with two keys, and `spore http` exposing the app as `app` with KEY_A. */
const appTunnel = (options: { dashboard?: boolean; clientFlags?: ReadonlyArray<string> } = {}) =>
  Effect.gen(function*() {
    const app = yield* localApp
    const server = yield* startHttpServer({ keysFile: writeKeys(KEY_A, KEY_B), ...(options.dashboard === undefined ? {} : { dashboard: options.dashboard }) })
    const client = yield* startHttpClient(server.port, app.port, { key: KEY_A, name: "app", extra: options.clientFlags ?? [] })
    const agent = yield* loopbackAgent()
    const host = `app.${DOMAIN}:${server.port}`
    return {
      app,
      server,
      client,
      agent,
      host,
      /** The tunnel's URL by Host header. */
      byHost: (path: string) => `http://${host}${path}`,
      /** The tunnel's URL by path prefix, on 127.0.0.1. */
      byPath: (path: string) => `http://${LOOPBACK}:${server.port}/t/app${path}`
    }
  })

/**
 * Reads `/stream`'s body up to the chunk before the last (which the app holds until `/release`):
 * what was read, and `rest` to read the remainder once released.
 */
const readUntilLastChunkHeld = async (body: AsyncIterable<unknown>) => {
  const chunks = body[Symbol.asyncIterator]()
  let text = ""
  while (!text.includes(`chunk ${STREAM_CHUNKS - 1}\n`)) {
    const next = await chunks.next()
    if (next.done === true) throw new Error(`the body ended early: ${text}`)
    text += Buffer.from(next.value as Buffer).toString()
  }
  const rest = async () => {
    let more = ""
    for (let next = await chunks.next(); next.done !== true; next = await chunks.next()) {
      more += Buffer.from(next.value as Buffer).toString()
    }
    return more
  }
  return { text, rest }
}

/** A byte stream of `payload` in 1 MiB pieces, for request bodies that are not one buffer. */
async function* pieces(payload: Buffer, size = 1024 * 1024) {
  for (let offset = 0; offset < payload.length; offset += size) yield payload.subarray(offset, offset + size)
}

const writeFile = (name: string, content: string) => {
  const path = join(mkdtempSync(join(tmpdir(), "spore-http-")), name)
  writeFileSync(path, content)
  return path
}

// ---------------------------------------------------------------------------------------------

describe("routing", () => {
  it.live("by Host header: the app's answer, with X-Forwarded-For, -Proto and -Host", () =>
    Effect.gen(function*() {
      const { agent, byHost, client, host, server } = yield* appTunnel()
      expect(client.name).toBe("app")
      expect(client.url).toBe(`http://app.${DOMAIN}:${server.port}`)
      const echo = yield* getJson<Echo>(agent, byHost("/hello?x=1"))
      expect(echo).toMatchObject({
        method: "GET",
        url: "/hello?x=1",
        host,
        forwardedFor: LOOPBACK,
        forwardedProto: "http",
        forwardedHost: host
      })
    }).pipe(Effect.scoped))

  it.live("--host-header rewrite sends the app its own address as Host (a dev server's check passes); X-Forwarded-Host keeps the visitor's", () =>
    Effect.gen(function*() {
      const { agent, app, byHost, byPath, host } = yield* appTunnel({ clientFlags: ["--host-header", "rewrite"] })
      expect(yield* getJson<Echo>(agent, byHost("/vite"))).toMatchObject({ url: "/vite", host: `${LOOPBACK}:${app.port}`, forwardedHost: host })
      expect(yield* getJson<Echo>(agent, byPath("/vite"))).toMatchObject({ url: "/vite", host: `${LOOPBACK}:${app.port}` })
    }).pipe(Effect.scoped))

  it.live("a visitor's own X-Forwarded-Proto and -Host are replaced, its X-Forwarded-For chain extended", () =>
    Effect.gen(function*() {
      const { agent, byHost, host } = yield* appTunnel()
      const answer = yield* send(agent, byHost("/"), {
        headers: { "x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https", "x-forwarded-host": "evil.example" }
      })
      expect(JSON.parse(answer.text)).toMatchObject({ forwardedFor: `203.0.113.9, ${LOOPBACK}`, forwardedProto: "http", forwardedHost: host })
    }).pipe(Effect.scoped))

  it.live("by path: /t/NAME/... reaches the app without the prefix", () =>
    Effect.gen(function*() {
      const { agent, byPath, server } = yield* appTunnel()
      const deep = yield* getJson<Echo>(agent, byPath("/some/path?q=1"))
      expect(deep).toMatchObject({ method: "GET", url: "/some/path?q=1", forwardedFor: LOOPBACK, forwardedHost: `${LOOPBACK}:${server.port}` })
      expect((yield* getJson<Echo>(agent, byPath(""))).url).toBe("/")
      expect((yield* getJson<Echo>(agent, byPath("/"))).url).toBe("/")
      expect((yield* getJson<Echo>(agent, byPath("?q=2"))).url).toBe("/?q=2")
    }).pipe(Effect.scoped))
})

describe("fresh connections", () => {
  // Each visitor connection gets its own data channel; the relay sends the request head down it
  // as soon as the client's channel arrives. Twenty in a row, each answered within 3 s.
  it.live("twenty visitor connections in a row, one request each, are all answered", () =>
    Effect.gen(function*() {
      const { agent, byHost } = yield* appTunnel()
      const lost: Array<number> = []
      for (let index = 0; index < 20; index++) {
        const answered = yield* Effect.promise(async () => {
          // reset: the connection closes after its response, so the next request opens another.
          const response = await request(byHost(`/fresh/${index}`), { dispatcher: agent, reset: true })
          return JSON.parse(await response.body.text()) as Echo
        }).pipe(Effect.timeoutOption("3 seconds"))
        if (answered._tag === "None") lost.push(index)
        else expect(answered.value.url).toBe(`/fresh/${index}`)
      }
      expect(lost, "requests that were never answered").toEqual([])
    }).pipe(Effect.scoped))
})

describe("bodies", () => {
  it.live("a 32 MiB request body, streamed, and a 32 MiB response body arrive intact", () =>
    Effect.gen(function*() {
      const { agent, app, byHost } = yield* appTunnel()
      const payload = randomBytes(32 * 1024 * 1024)
      const upload = yield* within("the upload", 20, Effect.promise(async () => {
        const response = await request(byHost("/hash"), {
          method: "POST",
          headers: { "content-length": String(payload.length), "content-type": "application/octet-stream" },
          body: Readable.from(pieces(payload)),
          dispatcher: agent
        })
        return { status: response.statusCode, text: await response.body.text() }
      }))
      expect(upload.status, upload.text).toBe(200)
      expect(JSON.parse(upload.text)).toEqual({ length: payload.length, sha256: sha256(payload), transferEncoding: null })

      const download = yield* within("the download", 20, Effect.promise(async () => {
        const response = await request(byHost("/download"), { dispatcher: agent })
        const hash = createHash("sha256")
        let length = 0
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          hash.update(chunk)
          length += chunk.length
        }
        return { status: response.statusCode, declared: response.headers["x-sha256"], length, sha256: hash.digest("hex") }
      }))
      expect(download).toEqual({ status: 200, declared: app.download().sha256, length: app.download().bytes.length, sha256: app.download().sha256 })
    }).pipe(Effect.scoped))

  it.live("a chunked response streams: the first chunks arrive while the app still holds the last", () =>
    Effect.gen(function*() {
      const { agent, app, byHost, byPath } = yield* appTunnel()
      const result = yield* within("the stream", 15, Effect.promise(async () => {
        const response = await request(byHost("/stream"), { dispatcher: agent })
        // Every chunk before the last, while the app waits for /release: only streaming gets them here.
        const stream = await readUntilLastChunkHeld(response.body)
        const writtenBeforeRelease = app.streamed()
        const textBeforeRelease = stream.text
        // Another connection (another origin, so another pool) lets the app write its last chunk.
        const release = await fetch(byPath("/release"), { dispatcher: agent })
        await release.text()
        const text = textBeforeRelease + await stream.rest()
        return { status: response.statusCode, encoding: response.headers["transfer-encoding"], writtenBeforeRelease, textBeforeRelease, text }
      }))
      expect(result.status).toBe(200)
      expect(result.encoding).toBe("chunked")
      expect(result.writtenBeforeRelease).toBe(STREAM_CHUNKS - 1)
      expect(result.textBeforeRelease).not.toContain(`chunk ${STREAM_CHUNKS}`)
      expect(result.text).toBe(Array.from({ length: STREAM_CHUNKS }, (_, index) => `chunk ${index + 1}\n`).join(""))
    }).pipe(Effect.scoped))

  it.live("a chunked request body (no Content-Length) arrives whole", () =>
    Effect.gen(function*() {
      const { agent, byHost } = yield* appTunnel()
      const payload = randomBytes(3 * 1024 * 1024 + 17)
      const answer = yield* within("the upload", 15, Effect.promise(async () => {
        const response = await request(byHost("/hash"), {
          method: "POST",
          body: Readable.from(pieces(payload, 200_000)),
          dispatcher: agent
        })
        return { status: response.statusCode, text: await response.body.text() }
      }))
      expect(answer.status, answer.text).toBe(200)
      expect(JSON.parse(answer.text)).toEqual({ length: payload.length, sha256: sha256(payload), transferEncoding: "chunked" })
    }).pipe(Effect.scoped))
})

describe("keep-alive", () => {
  it.live("two requests on one visitor connection reach the app on one connection: one in the stats", () =>
    Effect.gen(function*() {
      const { byHost, server } = yield* appTunnel()
      const agent = yield* loopbackAgent({ connections: 1 })
      const first = yield* getJson<Echo>(agent, byHost("/one"))
      const second = yield* getJson<Echo>(agent, byHost("/two"))
      expect([first.url, second.url]).toEqual(["/one", "/two"])
      expect(second.remotePort).toBe(first.remotePort)
      const [app] = yield* tunnelsOf(server.port, KEY_A)
      expect(app).toMatchObject({ name: "app", online: true, totalConnections: 1 })
    }).pipe(Effect.scoped))
})

describe("WebSocket", () => {
  it.live("an upgrade by Host reaches the app's WebSocket server: text and 1 MiB binary echoed", () =>
    Effect.gen(function*() {
      const { server } = yield* appTunnel()
      const ws = yield* openWebSocket(`ws://app.${DOMAIN}:${server.port}/echo`, { lookup: loopbackLookup as never })
      ws.send("hello through the tunnel")
      const text = yield* nextMessage(ws)
      expect({ isBinary: text.isBinary, data: text.data.toString() }).toEqual({ isBinary: false, data: "hello through the tunnel" })
      const payload = randomBytes(1024 * 1024)
      ws.send(payload)
      const binary = yield* nextMessage(ws)
      expect(binary.isBinary).toBe(true)
      expect(binary.data.length).toBe(payload.length)
      expect(binary.data.equals(payload)).toBe(true)
    }).pipe(Effect.scoped))

  it.live("an upgrade by path (/t/app/echo on 127.0.0.1) works too", () =>
    Effect.gen(function*() {
      const { server } = yield* appTunnel()
      const ws = yield* openWebSocket(`ws://${LOOPBACK}:${server.port}/t/app/echo`)
      const payload = randomBytes(256 * 1024)
      ws.send(payload)
      const reply = yield* nextMessage(ws)
      expect(sha256(reply.data)).toBe(sha256(payload))
    }).pipe(Effect.scoped))
})

describe("error pages", () => {
  it.live("404 for an unknown name, 502 for a tunnel without a client or an unreachable app; the healthy tunnel still works", () =>
    Effect.gen(function*() {
      const { agent, byHost, server } = yield* appTunnel()
      const healthy = () => Effect.map(getJson<Echo>(agent, byHost("/still-here")), (echo) => expect(echo.url).toBe("/still-here"))

      for (const url of [`http://nope.${DOMAIN}:${server.port}/`, `http://${LOOPBACK}:${server.port}/t/nope/`]) {
        const answer = yield* send(agent, url)
        expect(answer.status, url).toBe(404)
        expect(answer.headers.get("content-type")).toMatch(/^text\/html/)
        expect(answer.text).toContain("There is no tunnel named nope.")
        yield* healthy()
      }

      const created = yield* api(server.port, "POST", "/v1/tunnels", { key: KEY_A, body: { name: "idle" } })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({ name: "idle", url: `http://idle.${DOMAIN}:${server.port}`, online: false })
      const offline = yield* send(agent, `http://idle.${DOMAIN}:${server.port}/`)
      expect(offline.status).toBe(502)
      expect(offline.text).toContain("has no client connected")
      yield* healthy()

      const closedPort = yield* freePort
      yield* startHttpClient(server.port, closedPort, { key: KEY_A, name: "dead" })
      const unreachable = yield* send(agent, `http://dead.${DOMAIN}:${server.port}/`)
      expect(unreachable.status).toBe(502)
      expect(unreachable.text).toContain("could not reach its local service")
      yield* healthy()
    }).pipe(Effect.scoped))
})

describe("API keys", () => {
  it.live("spore http with a wrong key exits 1 saying so", () =>
    Effect.gen(function*() {
      const server = yield* startHttpServer({ keysFile: writeKeys(KEY_A) })
      const result = yield* within("spore http", 15, runSpore([
        "http", "3000", "--to", `http://${LOOPBACK}:${server.port}`, "--token", "not-a-key-of-this-server", "--max-reconnect-delay", "1"
      ]))
      expect(result.code).toBe(1)
      expect(result.stderr.trim()).toBe("error: invalid API key")
    }).pipe(Effect.scoped))

  it.live("POST without a key is 401; another key cannot take a name held by the first (409)", () =>
    Effect.gen(function*() {
      const { app, server } = yield* appTunnel()
      const anonymous = yield* api(server.port, "POST", "/v1/tunnels", { body: { name: "mine" } })
      expect(anonymous.status).toBe(401)
      expect(anonymous.headers.get("www-authenticate")).toBe("Bearer")
      expect(anonymous.body).toEqual({ error: "an API key is required (Authorization: Bearer KEY)" })

      const taken = yield* api(server.port, "POST", "/v1/tunnels", { key: KEY_B, body: { name: "app" } })
      expect(taken.status).toBe(409)
      expect(taken.body).toEqual({ error: "the name app is taken" })
      // The owner asking again gets its own tunnel back.
      const again = yield* api(server.port, "POST", "/v1/tunnels", { key: KEY_A, body: { name: "app" } })
      expect(again.status).toBe(200)
      expect(again.body).toMatchObject({ name: "app", online: true })

      const thief = yield* within("spore http", 15, runSpore([
        "http", String(app.port), "--to", `http://${LOOPBACK}:${server.port}`, "--token", KEY_B, "--name", "app"
      ]))
      expect(thief.code).toBe(1)
      expect(thief.stderr.trim()).toBe("error: the name app is taken")
      // Each key sees its own tunnels only.
      expect((yield* tunnelsOf(server.port, KEY_B)).map((t) => t.name)).toEqual([])
      expect((yield* tunnelsOf(server.port, KEY_A)).map((t) => t.name)).toEqual(["app"])
    }).pipe(Effect.scoped))
})

describe("server restart", () => {
  it.live("after SIGKILL and a restart on the same port, named and random tunnels come back under their URLs", () =>
    Effect.gen(function*() {
      const app = yield* localApp
      const keysFile = writeKeys(KEY_A, KEY_B)
      const port = yield* freePort
      const first = yield* startHttpServer({ keysFile, port })
      const fast = ["--max-reconnect-delay", "2"]
      const named = yield* startHttpClient(port, app.port, { key: KEY_A, name: "app", extra: fast })
      const random = yield* startHttpClient(port, app.port, { key: KEY_B, extra: fast })
      expect(random.name).toMatch(/^[a-z][a-z0-9]{9}$/)
      expect(random.url).toBe(`http://${random.name}.${DOMAIN}:${port}`)
      const before = yield* loopbackAgent()
      for (const name of ["app", random.name]) {
        expect((yield* getJson<Echo>(before, `http://${name}.${DOMAIN}:${port}/before`)).url).toBe("/before")
      }

      first.process.child.kill("SIGKILL")
      yield* within("the server's death", 10, first.process.exited)
      yield* startHttpServer({ keysFile, port })
      const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
      for (const client of [named, random]) {
        yield* within(`${client.name} reconnecting`, 15,
          client.process.waitFor(new RegExp(`^reconnected: ${client.name} is online at ${escape(client.url)}$`, "m")))
      }
      const after = yield* loopbackAgent()
      for (const name of ["app", random.name]) {
        expect((yield* getJson<Echo>(after, `http://${name}.${DOMAIN}:${port}/after`)).url).toBe("/after")
      }
    }).pipe(Effect.scoped))
})

describe("graceful shutdown", () => {
  it.live("on SIGTERM the front stops accepting, and a response in flight finishes before the server exits 0", () =>
    Effect.gen(function*() {
      const { agent, app, byHost, server } = yield* appTunnel()
      const stream = yield* within("the stream's first chunks", 10, Effect.promise(async () =>
        readUntilLastChunkHeld((await request(byHost("/stream"), { dispatcher: agent })).body)))
      server.process.child.kill("SIGTERM")
      // The drain says it waits for the one connection in flight.
      yield* within("the drain", 10, server.process.waitFor(/shutting down: waiting up to 10s for 1 open connection/))
      const result = yield* within("the rest of the stream", 10, Effect.promise(async () => {
        // No new visitors once the drain has begun.
        const refused = await fetch(byHost("/echo"), { dispatcher: agent }).then(() => false, () => true)
        // The app is released directly: the last chunk still reaches the visitor.
        await (await fetch(`http://${LOOPBACK}:${app.port}/release`)).text()
        return { text: stream.text + await stream.rest(), refused }
      }))
      expect(result.refused).toBe(true)
      expect(result.text).toBe(Array.from({ length: STREAM_CHUNKS }, (_, index) => `chunk ${index + 1}\n`).join(""))
      const exit = yield* within("the server's exit", 15, server.process.exited)
      expect(exit.code).toBe(0)
    }).pipe(Effect.scoped))

  it.live("on SIGTERM spore http drops its control connection, lets a response in flight finish, and exits 0", () =>
    Effect.gen(function*() {
      const { agent, app, byHost, client, server } = yield* appTunnel()
      const stream = yield* within("the stream's first chunks", 10, Effect.promise(async () =>
        readUntilLastChunkHeld((await request(byHost("/stream"), { dispatcher: agent })).body)))
      client.process.child.kill("SIGTERM")
      yield* within("the drain", 10, client.process.waitFor(/shutting down: waiting up to 10s for 1 open connection/))
      // The server sees the tunnel go offline: new visitors get its 502 page.
      yield* within("the tunnel offline", 10, server.process.waitFor(/http tunnel app offline/))
      const offline = yield* send(agent, byHost("/echo"))
      expect(offline.status).toBe(502)
      const text = yield* within("the rest of the stream", 10, Effect.promise(async () => {
        await (await fetch(`http://${LOOPBACK}:${app.port}/release`)).text()
        return stream.text + await stream.rest()
      }))
      expect(text).toBe(Array.from({ length: STREAM_CHUNKS }, (_, index) => `chunk ${index + 1}\n`).join(""))
      expect((yield* within("the client's exit", 15, client.process.exited)).code).toBe(0)
    }).pipe(Effect.scoped))

  it.live("with --no-reconnect, spore http exits 1 when its server goes away", () =>
    Effect.gen(function*() {
      const app = yield* localApp
      const server = yield* startHttpServer({ keysFile: writeKeys(KEY_A) })
      const client = yield* startHttpClient(server.port, app.port, { key: KEY_A, name: "app", extra: ["--no-reconnect"] })
      server.process.child.kill("SIGKILL")
      const exit = yield* within("the client's exit", 15, client.process.exited)
      expect(exit.code).toBe(1)
      expect(exit.stderr).toMatch(/lost the connection to the server/)
    }).pipe(Effect.scoped))
})

// Never skipped: npm test and CI install Chromium first (scripts/install-chromium.sh), and a
// browser test that does not run proves nothing.
describe("in a browser", () => {
  it("has Debian's Chromium to drive", () => expect(hasChromium()).toBe(true))

  it.live("the app's page renders; the owner's and the operator's dashboards list the tunnels", () =>
    Effect.gen(function*() {
      const { server } = yield* appTunnel({ dashboard: true })
      // KEY_B's tunnel, created over the API and never brought online.
      expect((yield* api(server.port, "POST", "/v1/tunnels", { key: KEY_B, body: { name: "other" } })).status).toBe(201)
      const seen = yield* within("the browser", 40, Effect.promise(() =>
        withPage(async (page) => {
          await page.goto(`http://app.${DOMAIN}:${server.port}/page`)
          const title = await page.locator("#app-title").textContent()

          await page.goto(`http://${LOOPBACK}:${server.port}/#token=${KEY_A}`)
          const ownRow = page.locator('#tunnels tr[data-tunnel="app"]')
          await ownRow.locator('td[data-field="online"]', { hasText: "online" }).waitFor()
          const own = {
            online: await ownRow.locator('td[data-field="online"]').textContent(),
            url: await ownRow.locator('td[data-field="url"] a').getAttribute("href"),
            total: Number(await ownRow.locator('td[data-field="totalConnections"]').getAttribute("data-value")),
            rows: await page.locator("#tunnels tbody tr").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-tunnel"))),
            status: await page.locator("#status").textContent(),
            // The key left the address bar.
            href: page.url()
          }

          await page.goto(`http://${LOOPBACK}:${server.dashboardPort}/`)
          await page.locator('#tunnels tr[data-tunnel="other"]').waitFor()
          const all = {
            rows: await page.locator("#tunnels tbody tr").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-tunnel"))),
            appOnline: await page.locator('tr[data-tunnel="app"] td[data-field="online"]').textContent(),
            otherOnline: await page.locator('tr[data-tunnel="other"] td[data-field="online"]').textContent(),
            // Links to the front, not to the dashboard's own port.
            appUrl: await page.locator('tr[data-tunnel="app"] td[data-field="url"]').textContent()
          }
          return { title, own, all }
        }, 10_000)))
      expect(seen.title).toBe("Hello from the app")
      expect(seen.own.online).toBe("online")
      expect(seen.own.url).toBe(`http://app.${DOMAIN}:${server.port}`)
      expect(seen.own.total).toBeGreaterThanOrEqual(1)
      expect(seen.own.rows).toEqual(["app"])
      expect(seen.own.status).toMatch(/^updated \d\d:\d\d:\d\d$/)
      expect(seen.own.href).toBe(`http://${LOOPBACK}:${server.port}/`)
      expect(seen.all).toEqual({
        rows: ["app", "other"],
        appOnline: "online",
        otherOnline: "offline",
        appUrl: `http://app.${DOMAIN}:${server.port}`
      })
    }).pipe(Effect.scoped))
})

describe("usage errors", () => {
  it.live("bad flags of spore server and spore http exit 2 with a message", () =>
    Effect.gen(function*() {
      const server = ["server", "--bind-addr", LOOPBACK, "--control-port", "0", "--min-port", "38000", "--max-port", "38100"]
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, RegExp]> = [
        [[...server, "--http-addr", `${LOOPBACK}:0`], /^error: --http-addr needs --api-keys FILE/],
        [[...server, "--domain", DOMAIN], /^error: --domain needs --http-addr$/],
        [[...server, "--http-addr", `${LOOPBACK}:0`, "--api-keys", writeFile("short-keys", `${KEY_A}\nshort\n`)],
          /^error: --api-keys: .*short-keys: line 2: a key must be at least 16 characters$/],
        [["http", "3000", "--token", KEY_A], /^error: missing --to: the URL of the server's HTTP front$/],
        [["http", "3000", "--to", "ftp://x", "--token", KEY_A], /^error: --to must be the server's URL, .* not ftp:\/\/x$/]
      ]
      const results = yield* Effect.forEach(cases, ([args]) => runSpore(args, {}, { lifetimeMs: 10_000 }), { concurrency: "unbounded" })
      for (const [index, result] of results.entries()) {
        const [args, message] = cases[index]!
        expect({ args, code: result.code }).toEqual({ args, code: 2 })
        expect(result.stderr.trim(), args.join(" ")).toMatch(message)
      }
    }).pipe(Effect.scoped))
})
