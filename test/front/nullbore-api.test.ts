/**
 * The front as NullBore's clients see it, in one process on real sockets (the clock is the
 * TestClock): NullBore's create body and tunnel object, /health, the X-NullBore-API header, a
 * ttl that ends the tunnel with a 1000 close (an idle one moved on by requests), NullBore's
 * channel framing for a client that does not ask for Spore's, and a tunnel's basic auth.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock, TestServices } from "effect"
import { WebSocket } from "ws"
import { dial, LOOPBACK, readAll } from "../support/net.js"
import { api, create, fakeClient, KEY, OTHER_KEY, openWs, startFront, timersArmed, until, visit } from "./front-driver.js"

const NULLBORE_BODY = { device_name: "vm", local_port: 40193, source: "cli", ttl: "1h" }

/** A visitor's GET of tunnel `name`, answered `ok` by a data channel for it; the whole answer. */
const servedVisit = (port: number, client: { nextVisitor: Effect.Effect<string> }, name: string, headers = "", from?: string) =>
  Effect.gen(function*() {
    const page = yield* Effect.fork(visit(port, `GET /t/${name}/ HTTP/1.1\r\nHost: x\r\n${headers}\r\n`, from))
    const data = yield* openWs(port, `/ws/data?id=${yield* client.nextVisitor}`, { key: null, nullbore: true })
    data.send(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    data.close(1000)
    return { answer: yield* Fiber.join(page), data }
  })

describe("HTTP front: NullBore's API", () => {
  it.scoped("takes NullBore's create body and answers with its tunnel object, its header, and /health without a key", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const created = yield* api(port, "POST", "/v1/tunnels", { body: NULLBORE_BODY })
      expect(created.status).toBe(201)
      expect(created.headers.get("x-nullbore-api")).toBe("1")
      const body = created.body as Record<string, unknown>
      expect(body).toMatchObject({
        slug: body.name,
        local_port: 40193,
        ttl: "1h0m0s",
        mode: "relay",
        bytes_in: 0,
        bytes_out: 0,
        requests: 0,
        device_name: "vm",
        source: "cli",
        public_url: `http://${LOOPBACK}:${port}/t/${String(body.name)}/`
      })
      expect(typeof body.client_id).toBe("string")
      expect(Date.parse(String(body.expires_at)) - Date.parse(String(body.created_at))).toBe(3_600_000)

      const health = yield* api(port, "GET", "/health", { key: null })
      expect(health.status).toBe(200)
      expect(health.body).toMatchObject({ status: "ok", api_version: "1" })

      const refusals: Array<[unknown, string]> = [
        [{ local_port: 0 }, "local_port must be 1-65535"],
        [{ local_port: 65536 }, "local_port must be 1-65535"],
        [{ local_port: "80" }, "local_port must be 1-65535"],
        [{ local_port: 1.5 }, "local_port must be 1-65535"],
        [{ ttl: "soon" }, "invalid ttl: \"soon\" is not a duration (such as 90s, 30m, 1h30m)"],
        [{ ttl: "-1h" }, "invalid ttl: \"-1h\" is negative"],
        [{ ttl: 60 }, "ttl must be a duration such as \"1h\""],
        [{ idle_ttl: "yes" }, "idle_ttl must be true or false"],
        [{ auth_user: "u" }, "auth_user and auth_pass go together"],
        [{ auth_user: "a:b", auth_pass: "p" }, "auth_user may not contain a colon"],
        [{ device_name: "x".repeat(300) }, "device_name is longer than 256 characters"],
        [{ host_header: "evil.example\r\nX-Injected: 1" }, "host_header must be a host, with a port if any"],
        [{ host_header: "a/b" }, "host_header must be a host, with a port if any"],
        [{ tier: "pro" }, "unknown field tier"]
      ]
      for (const [body, error] of refusals) {
        const refused = yield* api(port, "POST", "/v1/tunnels", { body })
        expect([refused.status, refused.body.error]).toEqual([400, error])
        expect(refused.headers.get("x-nullbore-api")).toBe("1")
      }
      // "0" is NullBore's "no ttl": the tunnel lives as long as its client.
      const forever = yield* api(port, "POST", "/v1/tunnels", { body: { name: "forever", ttl: "0" } })
      expect(forever.body).not.toHaveProperty("expires_at")
    }))

  it.scoped("a ttl ends the tunnel: its control connection is closed with 1000 and the name is freed", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const created = yield* api(port, "POST", "/v1/tunnels", { body: { name: "brief", local_port: 3000, ttl: "1m" } })
      const client = yield* fakeClient(port, String(created.body.id), { nullbore: true })
      yield* timersArmed("1 minute", "the tunnel's expiry")
      yield* TestClock.adjust("59 seconds")
      expect((yield* api(port, "GET", "/v1/tunnels")).body).toHaveLength(1)
      yield* TestClock.adjust("1 second")
      expect(yield* client.ws.received.closed).toBe(1000)
      expect((yield* api(port, "GET", "/v1/tunnels")).body).toEqual([])
      expect((yield* create(port, "brief")).name).toBe("brief")
    }))

  it.scoped("an idle ttl counts from the last request", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const created = yield* api(port, "POST", "/v1/tunnels", { body: { name: "idle", local_port: 3000, ttl: "1m", idle_ttl: true } })
      const client = yield* fakeClient(port, String(created.body.id), { nullbore: true })
      yield* timersArmed("1 minute", "the tunnel's expiry")
      yield* TestClock.adjust("40 seconds")
      expect((yield* servedVisit(port, client, "idle")).answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
      // Past the first minute: the request at 40 s moved the end to 100 s.
      yield* TestClock.adjust("30 seconds")
      const listed = (yield* api(port, "GET", "/v1/tunnels")).body as unknown as ReadonlyArray<Record<string, unknown>>
      expect(listed.map((tunnel) => tunnel.requests)).toEqual([1])
      yield* TestClock.adjust("30 seconds")
      expect(yield* client.ws.received.closed).toBe(1000)
    }))
})

describe("HTTP front: NullBore's framing", () => {
  it.scoped("a client that does not ask for half-close gets one request per channel, Connection: close, no EOF message, and its close ends the response", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const tunnel = yield* create(port, "nb")
      const client = yield* fakeClient(port, tunnel.id, { nullbore: true })
      const visitor = yield* dial(port)
      visitor.write("GET /t/nb/one HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n")
      const data = yield* openWs(port, `/ws/data?id=${yield* client.nextVisitor}`, { key: null, nullbore: true })
      yield* until("the app has the request", Effect.sync(() => data.received.text().endsWith("\r\n\r\n")))
      expect(data.received.text()).toBe(
        "GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n" +
          "X-Forwarded-Host: x\r\nX-Forwarded-Prefix: /t/nb\r\n\r\n"
      )
      // A response without a length, ended by the channel's close, as NullBore's client ends it.
      data.send(Buffer.from("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"))
      data.terminate()
      expect((yield* readAll(visitor)).toString("latin1")).toBe("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
      // No empty message reached the client: NullBore's does not know it. (Every message the front
      // sent came before the close, which came before the visitor's end.)
      const ended = yield* Effect.either(Effect.timeout(data.received.ended, "20 millis").pipe(TestServices.provideLive))
      expect(ended._tag).toBe("Left")
    }))

  it.scoped("the front answers Spore's framing header on the upgrade only to a client that sends it", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const answered = (headers: Record<string, string>) =>
        Effect.gen(function*() {
          const tunnel = yield* create(port, `t${Object.keys(headers).length}`)
          return yield* Effect.async<string | undefined>((resume) => {
            const ws = new WebSocket(`ws://${LOOPBACK}:${port}/ws/control?tunnel_id=${tunnel.id}`, { headers: { Authorization: `Bearer ${KEY}`, ...headers } })
            ws.once("upgrade", (response) => {
              resume(Effect.succeed(response.headers["x-spore-framing"] as string | undefined))
              ws.terminate()
            })
            ws.once("error", () => {})
          })
        })
      expect(yield* answered({ "X-Spore-Framing": "half-close" })).toBe("half-close")
      expect(yield* answered({})).toBeUndefined()
    }))
})

describe("HTTP front: a tunnel's basic auth", () => {
  it.scoped("visitors without the user and password get a 401; with them, the app never sees the credential", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const created = yield* api(port, "POST", "/v1/tunnels", { body: { name: "locked", auth_user: "ann", auth_pass: "s3cret:x" } })
      expect(created.body).toMatchObject({ basic_auth: true })
      const client = yield* fakeClient(port, String(created.body.id))
      const good = `Basic ${Buffer.from("ann:s3cret:x").toString("base64")}`
      for (const headers of ["", `Authorization: Basic ${Buffer.from("ann:wrong").toString("base64")}\r\n`, `Authorization: Bearer ${KEY}\r\n`]) {
        const refused = yield* visit(port, `GET /t/locked/ HTTP/1.1\r\nHost: x\r\n${headers}\r\n`)
        expect(refused).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/)
        expect(refused).toContain(`WWW-Authenticate: Basic realm="locked", charset="UTF-8"\r\n`)
      }
      const { answer, data } = yield* servedVisit(port, client, "locked", `Authorization: ${good}\r\n`)
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
      expect(data.received.text()).toMatch(/^GET \/ HTTP\/1\.1\r\nHost: x\r\n/)
      expect(data.received.text()).not.toMatch(/authorization/i)
    }))

  it.scoped("five wrong passwords lock that address out for a minute, right password or not; other visitors are served meanwhile", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const created = yield* api(port, "POST", "/v1/tunnels", { body: { name: "locked", auth_user: "ann", auth_pass: "s3cret" } })
      const client = yield* fakeClient(port, String(created.body.id))
      const basic = (credential: string) => `Authorization: Basic ${Buffer.from(credential).toString("base64")}\r\n`
      const attempt = (from: string, credential: string | undefined) =>
        visit(port, `GET /t/locked/ HTTP/1.1\r\nHost: x\r\n${credential === undefined ? "" : basic(credential)}\r\n`, from)
      // The bare first try a browser makes is no guess.
      for (let round = 0; round < 10; round++) expect(yield* attempt("127.0.0.2", undefined)).toMatch(/^HTTP\/1\.1 401 /)
      for (let guess = 0; guess < 5; guess++) expect(yield* attempt("127.0.0.2", `ann:guess${guess}`)).toMatch(/^HTTP\/1\.1 401 /)
      const locked = yield* attempt("127.0.0.2", "ann:s3cret")
      expect(locked).toMatch(/^HTTP\/1\.1 429 [^]*Retry-After: 60\r\n/)
      expect(yield* attempt("127.0.0.2", "ann:wrong")).toBe(locked)
      for (const honest of ["127.0.0.3", "127.0.0.4"]) {
        expect((yield* servedVisit(port, client, "locked", basic("ann:s3cret"), honest)).answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
      }
      yield* TestClock.adjust("61 seconds")
      expect((yield* servedVisit(port, client, "locked", basic("ann:s3cret"), "127.0.0.2")).answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    }))
})

describe("HTTP front: routing under /t/NAME/", () => {
  it.scoped("redirects /t/NAME to /t/NAME/, links that leave the prefix back in, and keeps the app's redirects and cookies inside it", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const tunnel = yield* create(port, "app")
      const client = yield* fakeClient(port, tunnel.id)
      const noSlash = yield* visit(port, "GET /t/app?q=1 HTTP/1.1\r\nHost: relay.example\r\n\r\n")
      expect(noSlash).toMatch(/^HTTP\/1\.1 308 Permanent Redirect\r\n[^]*Location: \/t\/app\/\?q=1\r\n/)
      const absolute = yield* visit(port, "GET /style.css HTTP/1.1\r\nHost: relay.example\r\nReferer: http://relay.example/t/app/page\r\n\r\n")
      expect(absolute).toMatch(/^HTTP\/1\.1 307 Temporary Redirect\r\n[^]*Location: \/t\/app\/style\.css\r\n/)

      // A path-routed request: the app is told the prefix, gets Connection: close, and its
      // redirect and cookie come back inside the prefix; the body is untouched.
      const page = yield* Effect.fork(visit(port, "GET /t/app/login HTTP/1.1\r\nHost: relay.example\r\nX-Forwarded-Prefix: /forged\r\n\r\n"))
      const data = yield* openWs(port, `/ws/data?id=${yield* client.nextVisitor}`)
      yield* until("the app has the request", Effect.sync(() => data.received.text().endsWith("\r\n\r\n")))
      expect(data.received.text()).toBe(
        "GET /login HTTP/1.1\r\nHost: relay.example\r\nConnection: close\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n" +
          "X-Forwarded-Host: relay.example\r\nX-Forwarded-Prefix: /t/app\r\n\r\n"
      )
      data.send(Buffer.from("HTTP/1.1 302 Found\r\nLocation: http://relay.example/home\r\n"))
      data.send(Buffer.from("Set-Cookie: sid=1; Path=/; HttpOnly\r\nContent-Length: 13\r\nConnection: close\r\n\r\nLocation: /no"))
      // The app's EOF ends the channel: the front's own EOF follows it, and the visitor's connection ends.
      data.send(Buffer.alloc(0))
      yield* data.received.ended
      expect(yield* data.received.closed).toBe(1000)
      expect(yield* Fiber.join(page)).toBe(
        "HTTP/1.1 302 Found\r\nLocation: http://relay.example/t/app/home\r\nSet-Cookie: sid=1; Path=/t/app/; HttpOnly\r\n" +
          "Content-Length: 13\r\nConnection: close\r\n\r\nLocation: /no"
      )
    }))
})

describe("HTTP front: the request log's API", () => {
  it.scoped("lists a tunnel's requests with their status, shows one, refuses to replay a body it did not keep whole, and only to its owner", () =>
    Effect.gen(function*() {
      const port = yield* startFront("spore.test")
      const tunnel = yield* create(port, "app")
      const client = yield* fakeClient(port, tunnel.id)
      const body = "b".repeat(2000)
      const page = yield* Effect.fork(visit(port, `POST /big HTTP/1.1\r\nHost: app.spore.test\r\nContent-Length: ${body.length}\r\n\r\n${body}`))
      const data = yield* openWs(port, `/ws/data?id=${yield* client.nextVisitor}`)
      data.send(Buffer.from("HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"))
      data.send(Buffer.alloc(0))
      expect(yield* Fiber.join(page)).toMatch(/^HTTP\/1\.1 201 Created\r\n/)
      const listed = (yield* api(port, "GET", `/v1/tunnels/${tunnel.id}/requests`)).body as unknown as ReadonlyArray<Record<string, unknown>>
      expect(listed).toHaveLength(1)
      expect(listed[0]).toMatchObject({ id: "1", method: "POST", path: "/big", status: 201, slug: "app", body_size: 2000, replayable: false, bytes_out: 47 })
      const one = yield* api(port, "GET", `/v1/tunnels/${tunnel.id}/requests/1`)
      expect(one.body).toMatchObject({ response_head: "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\n", response_body: "done" })
      expect(((one.body as Record<string, unknown>).request_body as string).length).toBe(1024)
      const replay = yield* api(port, "POST", `/v1/tunnels/${tunnel.id}/requests/1/replay`)
      expect([replay.status, replay.body.error]).toEqual([409, "this request cannot be replayed: its body was over 1 KiB, cut, or it was an upgrade"])
      expect((yield* api(port, "GET", `/v1/tunnels/${tunnel.id}/requests/9`)).status).toBe(404)
      expect((yield* api(port, "GET", `/v1/tunnels/${tunnel.id}/requests`, { key: OTHER_KEY })).status).toBe(404)
    }))
})
