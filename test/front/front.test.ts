/**
 * The server's HTTP front in one process: the API's rules, the data-channel protocol driven by a
 * hand-written client (exact bytes), and every timeout (pending expiry, pings, offline names,
 * rate limits) under the TestClock. Real sockets on 127.0.0.1.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, Option, TestClock } from "effect"
import { WebSocket } from "ws"
import { REQUEST_HEAD_TIMEOUT_SECONDS } from "../../src/front/visitor.js"
import { PING_INTERVAL } from "../../src/front/ws-endpoints.js"
import { BURST } from "../../src/limits/rate-limit.js"
import { PENDING_TIMEOUT } from "../../src/visitors/pending-registry.js"
import { makeVisitorFilter, parseCidr } from "../../src/visitors/visitor-filter.js"
import { eventually } from "../support/io.js"
import type { TunnelView } from "../support/http.js"
import { dial, LOOPBACK, readAll, startRunningServer } from "../support/net.js"
import {
  api,
  create,
  fakeClient,
  frontHasRead,
  hasReceived,
  heldOpen,
  keys,
  OTHER_KEY,
  openWs,
  readUntil,
  startFront,
  startLoggedFront,
  status,
  timersArmed,
  timersDue,
  until,
  visit
} from "./front-driver.js"

const HEAD_TIMEOUT = `${REQUEST_HEAD_TIMEOUT_SECONDS} seconds`

describe("HTTP front: the API", () => {
  it.scoped("creates, reclaims, refuses taken and bad names, lists and deletes per owner", () =>
    Effect.gen(function*() {
      const port = yield* startFront("spore.test")
      const created = yield* api(port, "POST", "/v1/tunnels", { body: { name: "App" } })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({ name: "app", url: `http://app.spore.test:${port}`, online: false })
      // The same owner asking again gets the same tunnel: how a client reclaims its name.
      const again = yield* api(port, "POST", "/v1/tunnels", { body: { name: "app" } })
      expect(again.status).toBe(200)
      expect(again.body.id).toBe(created.body.id)
      const taken = yield* api(port, "POST", "/v1/tunnels", { key: OTHER_KEY, body: { name: "app" } })
      expect(taken.status).toBe(409)
      expect(taken.body.error).toBe("the name app is taken")
      for (const name of ["-x", "a_b", "x".repeat(64), "www"]) {
        expect((yield* api(port, "POST", "/v1/tunnels", { body: { name } })).status).toBe(400)
      }
      expect((yield* api(port, "POST", "/v1/tunnels", { body: { name: 7 } })).status).toBe(400)
      expect((yield* api(port, "POST", "/v1/tunnels", { body: { nom: "x" } })).body.error).toBe("unknown field nom")
      const random = yield* api(port, "POST", "/v1/tunnels", { key: OTHER_KEY })
      expect(random.status).toBe(201)
      expect(random.body.name).toMatch(/^[a-z][a-z0-9]{9}$/)

      const mine = yield* api(port, "GET", "/v1/tunnels")
      expect(mine.status).toBe(200)
      // A bare array, as NullBore's API answers.
      expect((mine.body as unknown as ReadonlyArray<TunnelView>).map((t) => t.name)).toEqual(["app"])
      const one = yield* api(port, "GET", `/v1/tunnels/${created.body.id}`)
      expect(one.body).toMatchObject({ id: created.body.id, name: "app", slug: "app" })
      expect((yield* api(port, "GET", `/v1/tunnels/${created.body.id}`, { key: OTHER_KEY })).status).toBe(404)
      // Another owner's tunnel cannot be deleted, nor told apart from a missing one.
      expect((yield* api(port, "DELETE", `/v1/tunnels/${created.body.id}`, { key: OTHER_KEY })).status).toBe(404)
      const deleted = yield* api(port, "DELETE", `/v1/tunnels/${created.body.id}`)
      expect([deleted.status, deleted.body]).toEqual([200, { status: "closed" }])
      expect((yield* api(port, "GET", "/v1/tunnels")).body).toEqual([])
      // Its name is free again, for anyone.
      expect((yield* api(port, "POST", "/v1/tunnels", { key: OTHER_KEY, body: { name: "app" } })).status).toBe(201)
      const path = yield* api(port, "POST", "/v1/tunnels", { body: { name: "plain" } })
      expect(path.body.url).toBe(`http://plain.spore.test:${port}`)
    }))

  it.scoped("without --domain, a tunnel's URL is its path on the front", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const created = yield* api(port, "POST", "/v1/tunnels", { body: { name: "app" } })
      expect(created.body.url).toBe(`http://${LOOPBACK}:${port}/t/app/`)
    }))

  it.scoped("refuses missing and wrong keys, then locks the address out", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const missing = yield* api(port, "GET", "/v1/tunnels", { key: null })
      expect(missing.status).toBe(401)
      expect(missing.headers.get("www-authenticate")).toBe("Bearer")
      const wrong = yield* api(port, "GET", "/v1/tunnels", { key: "wrong-key-0123456789" })
      expect(wrong.body.error).toBe("invalid API key")
      for (let attempt = 1; attempt < 5; attempt++) {
        expect((yield* api(port, "GET", "/v1/tunnels", { key: "wrong-key-0123456789" })).status).toBe(401)
      }
      // The fifth wrong key within a minute (the missing one is no guess and did not count) locks
      // the address out, good keys included, for a minute.
      expect((yield* api(port, "GET", "/v1/tunnels")).status).toBe(429)
      yield* TestClock.adjust("61 seconds")
      expect((yield* api(port, "GET", "/v1/tunnels")).status).toBe(200)
    }))

  it.scoped("rate limits each key, and lets it go on as tokens come back", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      for (let call = 0; call < BURST; call++) expect((yield* api(port, "GET", "/v1/tunnels")).status).toBe(200)
      const limited = yield* api(port, "GET", "/v1/tunnels")
      expect(limited.status).toBe(429)
      expect(limited.headers.get("retry-after")).toBe("1")
      // Another key has its own bucket.
      expect((yield* api(port, "GET", "/v1/tunnels", { key: OTHER_KEY })).status).toBe(200)
      yield* TestClock.adjust("1 second")
      expect((yield* api(port, "GET", "/v1/tunnels")).status).toBe(200)
      expect((yield* api(port, "GET", "/v1/tunnels")).status).toBe(429)
    }))

  it.scoped("forgets a tunnel left offline for five minutes, and keeps one that is online", () =>
    Effect.gen(function*() {
      const { log, port } = yield* startLoggedFront()
      expect((yield* api(port, "POST", "/v1/tunnels", { body: { name: "idle" } })).status).toBe(201)
      const busy = (yield* create(port, "busy"))
      yield* fakeClient(port, busy.id)
      // Logged once the control connection is attached and busy's offline timer cancelled.
      yield* log.logged("http tunnel busy online")
      yield* TestClock.adjust("299 seconds")
      expect((yield* status(port)).map((t) => t.name)).toEqual(["busy", "idle"])
      yield* TestClock.adjust("2 seconds")
      const left = (yield* status(port))
      expect(left.map((t) => [t.name, t.online])).toEqual([["busy", true]])
      expect((yield* api(port, "POST", "/v1/tunnels", { key: OTHER_KEY, body: { name: "idle" } })).status).toBe(201)
    }))
})

describe("HTTP front: control and data channels", () => {
  it.scoped("forwards the rewritten request and the raw response, then honours both EOFs", () =>
    Effect.gen(function*() {
      const port = yield* startFront("spore.test")
      const tunnel = (yield* create(port, "app"))
      const client = yield* fakeClient(port, tunnel.id)
      const visitor = yield* dial(port)
      visitor.write("POST /upload?x=1 HTTP/1.1\r\nHost: app.spore.test\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nContent-Length: 5\r\n\r\nhello")
      const id = yield* client.nextVisitor
      const data = yield* openWs(port, `/ws/data?id=${id}`)
      const received = data.received
      const response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      data.send(Buffer.from(response))
      expect(yield* readUntil(visitor, "ok")).toBe(response)
      yield* hasReceived(data, "\r\n\r\nhello", "the app has the request and its body")
      expect(received.text()).toBe(
        "POST /upload?x=1 HTTP/1.1\r\nHost: app.spore.test\r\nContent-Length: 5\r\n" +
          "X-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: app.spore.test\r\n\r\nhello"
      )
      // The app closes: its EOF reaches the visitor as a FIN, and the visitor's FIN comes back.
      data.send(Buffer.alloc(0))
      visitor.end()
      yield* received.ended
      expect(yield* data.received.closed).toBe(1000)
    }))

  it.scoped("a keep-alive connection moves to another tunnel once the first tunnel's response is through", () =>
    Effect.gen(function*() {
      // By host (a proxy may send several hosts' requests down one connection): a path-routed
      // request has a channel of its own.
      const port = yield* startFront("spore.test")
      const a = yield* fakeClient(port, (yield* create(port, "a")).id)
      const b = yield* fakeClient(port, (yield* create(port, "b")).id)
      const visitor = yield* dial(port)
      visitor.write("GET /one HTTP/1.1\r\nHost: a.spore.test\r\n\r\n")
      const channelA = yield* openWs(port, `/ws/data?id=${yield* a.nextVisitor}`)
      channelA.send(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"))
      expect(yield* readUntil(visitor, "\r\n\r\nA")).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
      // The next request names another tunnel: tunnel a's channel is ended first (the app
      // answers the EOF with its own), and the visitor's connection stays open for b's answer.
      visitor.write("GET /two HTTP/1.1\r\nHost: b.spore.test\r\n\r\n")
      yield* channelA.received.ended
      expect(channelA.received.text()).toBe(
        "GET /one HTTP/1.1\r\nHost: a.spore.test\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a.spore.test\r\n\r\n"
      )
      channelA.send(Buffer.alloc(0))
      expect(yield* channelA.received.closed).toBe(1000)
      const channelB = yield* openWs(port, `/ws/data?id=${yield* b.nextVisitor}`)
      channelB.send(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB"))
      expect(yield* readUntil(visitor, "\r\n\r\nB")).toMatch(/^HTTP\/1\.1 200 OK\r\nContent-Length: 1\r\n\r\nB$/)
      yield* hasReceived(channelB, "\r\n\r\n", "tunnel b's app has the second request")
      expect(channelB.received.text()).toMatch(/^GET \/two HTTP\/1\.1\r\n/)
      expect(visitor.readableEnded).toBe(false)
    }))

  it.scoped("a visitor nobody opens a channel for gets a 504 after 10 s; a late channel is refused", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const tunnel = (yield* create(port, "slow"))
      const client = yield* fakeClient(port, tunnel.id)
      const answer = yield* Effect.fork(visit(port, "GET /t/slow/ HTTP/1.1\r\nHost: x\r\n\r\n"))
      const id = yield* client.nextVisitor
      yield* timersArmed(PENDING_TIMEOUT, "the visitor's 10 s expiry")
      yield* TestClock.adjust("9 seconds")
      // Not expired: its timer is still to come.
      yield* timersArmed("1 second", "the visitor's expiry, still pending at 9 s")
      expect((yield* status(port))[0].connections).toBe(0)
      yield* TestClock.adjust("1 second")
      const page = yield* Fiber.join(answer)
      expect(page).toMatch(/^HTTP\/1\.1 504 Gateway Timeout\r\n/)
      // Its id is no capability any more: refused before the upgrade.
      expect(yield* Effect.either(openWs(port, `/ws/data?id=${id}`))).toEqual(Either.left(new Error("refused 404")))
    }))

  it.scoped("404 for unknown names, 502 for an offline tunnel and for one whose client leaves", () =>
    Effect.gen(function*() {
      const port = yield* startFront("spore.test")
      expect(yield* visit(port, "GET / HTTP/1.1\r\nHost: nope.spore.test\r\n\r\n")).toMatch(/^HTTP\/1\.1 404 /)
      expect(yield* visit(port, "GET /t/nope/ HTTP/1.1\r\nHost: x\r\n\r\n")).toMatch(/^HTTP\/1\.1 404 /)
      expect(yield* visit(port, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")).toMatch(/^HTTP\/1\.1 404 /)
      const tunnel = (yield* create(port, "app"))
      expect(yield* visit(port, "GET / HTTP/1.1\r\nHost: app.spore.test\r\n\r\n")).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[^]*offline/)
      // A visitor waiting when the client goes: let go with a 502 at once, not at the expiry.
      const client = yield* fakeClient(port, tunnel.id)
      const answer = yield* Effect.fork(visit(port, "GET / HTTP/1.1\r\nHost: app.spore.test\r\n\r\n"))
      yield* client.nextVisitor
      client.ws.terminate()
      expect(yield* Fiber.join(answer)).toMatch(/^HTTP\/1\.1 502 /)
    }))

  it.scoped("a newer control connection replaces the older; other owners and unknown ids are refused", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const tunnel = (yield* create(port, "app"))
      const first = yield* fakeClient(port, tunnel.id)
      const second = yield* fakeClient(port, tunnel.id)
      expect(yield* first.ws.received.closed).toBe(4000)
      const answer = yield* Effect.fork(visit(port, "GET /t/app/ HTTP/1.1\r\nHost: x\r\n\r\n"))
      const id = yield* second.nextVisitor
      const data = yield* openWs(port, `/ws/data?id=${id}`)
      data.send(Buffer.from("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"))
      data.send(Buffer.alloc(0))
      expect(yield* Fiber.join(answer)).toBe("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
      expect(yield* Effect.either(openWs(port, `/ws/control?tunnel_id=${tunnel.id}`, { key: OTHER_KEY }))).toEqual(
        Either.left(new Error("refused 404"))
      )
      expect(yield* Effect.either(openWs(port, "/ws/control?tunnel_id=nope"))).toEqual(Either.left(new Error("refused 404")))
      expect(yield* Effect.either(openWs(port, `/ws/control?tunnel_id=${tunnel.id}`, { key: "bad-key-0123456789abc" }))).toEqual(
        Either.left(new Error("refused 401"))
      )
    }))

  it.scoped("pings every 30 s and drops a client that answers none for 60 s", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const live = (yield* create(port, "live"))
      const mute = (yield* create(port, "mute"))
      // Timers 30 s ahead so far: the API connections' head timeouts.
      const before = yield* timersDue(PING_INTERVAL)
      const answering = yield* fakeClient(port, live.id)
      const silent = yield* fakeClient(port, mute.id, { autoPong: false })
      let pings = 0
      silent.ws.on("ping", () => pings++)
      let answered = 0
      answering.ws.on("ping", () => answered++)
      // Each control connection arms two: its head timeout (done with, but listed until its time)
      // and its pinger.
      yield* timersArmed(PING_INTERVAL, "both control connections' pingers", before + 4)
      /** The answering client has its `n`-th ping and the front has read its pong (it pongs at once). */
      const pongRead = (n: number) =>
        Effect.gen(function*() {
          yield* eventually(() => answered === n, `ping ${n} reaches the answering client`)
          expect(yield* frontHasRead(answering.ws)).toBe(true)
        })
      for (let tick = 1; tick <= 2; tick++) {
        yield* TestClock.adjust("30 seconds")
        yield* eventually(() => pings === tick, `ping ${tick} reaches the silent client`)
        yield* pongRead(tick)
        yield* timersArmed(PING_INTERVAL, `both pingers, again after ping ${tick}`, 2)
      }
      expect(pings).toBe(2)
      expect((yield* status(port)).map((t) => t.online)).toEqual([true, true])
      yield* TestClock.adjust("30 seconds")
      expect(yield* silent.ws.received.closed).toBe(1006)
      yield* pongRead(3)
      yield* timersArmed(PING_INTERVAL, "the answering client's pinger, after ping 3")
      yield* TestClock.adjust("60 seconds")
      // Still served (the front would have closed it at once), and mute's connection let go.
      expect(yield* frontHasRead(answering.ws)).toBe(true)
      yield* until(
        "the front lets mute's control connection go",
        Effect.map(Effect.orDie(status(port)), (tunnels) => tunnels.some((t) => t.name === "mute" && !t.online))
      )
      expect((yield* status(port)).map((t) => [t.name, t.online])).toEqual([["live", true], ["mute", false]])
      expect(answering.ws.readyState).toBe(WebSocket.OPEN)
    }))
})

describe("HTTP front: bad requests", () => {
  it.scoped("answers malformed, oversized and ambiguous requests with their status, and keeps serving", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      yield* api(port, "POST", "/v1/tunnels", { body: { name: "app" } })
      expect(yield* visit(port, "GARBAGE\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 /)
      expect(yield* visit(port, `GET /t/app/ HTTP/1.1\r\nX: ${"a".repeat(70_000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431 /)
      expect(yield* visit(port, "POST /t/app/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 /)
      expect(yield* visit(port, "POST /t/app/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")).toMatch(/^HTTP\/1\.1 501 /)
      expect(yield* visit(port, "GET /t/app/ HTTP/2.0\r\n\r\n")).toMatch(/^HTTP\/1\.1 505 /)
      // A connection that ends inside its head is answered too.
      const cut = yield* Effect.scoped(Effect.gen(function*() {
        const socket = yield* dial(port)
        socket.end("GET /t/app/ HTTP/1.1\r\nHost")
        return (yield* readAll(socket)).toString("latin1")
      }))
      expect(cut).toMatch(/^HTTP\/1\.1 400 /)
      expect((yield* api(port, "GET", "/v1/tunnels")).body).toHaveLength(1)
    }))

  it.scoped("one address may hold --max-http-conns-per-ip connections; more get a 429 until one closes", () =>
    Effect.gen(function*() {
      const server = yield* startRunningServer({ http: { keys }, limits: { maxHttpConnsPerIp: 2 } })
      const port = Option.getOrThrow(server.http).port
      const first = yield* dial(port)
      yield* dial(port)
      // The front arms a connection's head timeout once it has its slot.
      yield* timersArmed(HEAD_TIMEOUT, "both connections hold their slots, waiting for a head", 2)
      expect(yield* visit(port, "GET /t/app/ HTTP/1.1\r\n\r\n")).toMatch(/^HTTP\/1\.1 429 Too Many Requests\r\n/)
      // Another address is not affected.
      const other = yield* Effect.scoped(Effect.gen(function*() {
        const socket = yield* dial(port, LOOPBACK, "127.0.0.2")
        socket.write("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
        return (yield* readAll(socket)).toString("latin1")
      }))
      expect(other).toMatch(/^HTTP\/1\.1 404 /)
      const firstPort = first.localPort
      first.destroy()
      // The front's end is destroyed once the connection's scope, with its slot, has closed.
      yield* until(
        "the front lets the first connection and its slot go",
        Effect.sync(() => !heldOpen(port).some((socket) => socket.remotePort === firstPort))
      )
      expect(yield* visit(port, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")).toMatch(/^HTTP\/1\.1 404 /)
    }))

  it.scoped("--deny-visitor keeps an address from the tunnels, not from the API", () =>
    Effect.gen(function*() {
      const server = yield* startRunningServer({
        http: { keys },
        limits: { visitors: makeVisitorFilter([], [Either.getOrThrow(parseCidr("127.0.0.0/8"))]) }
      })
      const port = Option.getOrThrow(server.http).port
      expect((yield* api(port, "POST", "/v1/tunnels", { body: { name: "app" } })).status).toBe(201)
      expect(yield* visit(port, "GET /t/app/ HTTP/1.1\r\nHost: x\r\n\r\n")).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/)
    }))

  it.scoped("a silent visitor is closed after 30 s without a request", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const socket = yield* dial(port)
      let ended = false
      socket.once("end", () => (ended = true))
      yield* timersArmed(HEAD_TIMEOUT, "the connection's head timeout")
      yield* TestClock.adjust("29 seconds")
      // Not closed: its timer is still to come.
      yield* timersArmed("1 second", "the head timeout, still pending at 29 s")
      expect(ended).toBe(false)
      yield* TestClock.adjust("1 second")
      yield* eventually(() => ended, "the front closes the silent connection")
    }))
})
