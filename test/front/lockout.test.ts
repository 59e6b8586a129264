/**
 * The API-key lockout of the HTTP front: only wrong keys count, and it never cuts a live tunnel's
 * data channels: those need no key at all (the visitor's id is the capability, as NullBore's
 * client expects), so whatever key they carry is ignored. In one process, real sockets, the
 * window on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, TestClock } from "effect"
import { randomUUID } from "node:crypto"
import { apiFrom, create, fakeClient, KEY, openWs, startFront, statusOf, upgradeFrom, visit } from "./front-driver.js"

const CLIENT = "127.0.0.1"
const VISITOR = "127.0.0.5"
const WRONG = "wrong-key-0123456789abcdef"

/** A visitor of tunnel `name` from VISITOR, answered through a channel that `serve` opens. */
const visitor = (port: number, name: string) => visit(port, `GET /t/${name}/ HTTP/1.1\r\nHost: x\r\n\r\n`, VISITOR)

/** Answers the visitor `id` through a data channel opened from CLIENT with `key`; the channel. */
const answer = (port: number, id: string, key: string | null = KEY) =>
  Effect.gen(function*() {
    const data = yield* openWs(port, `/ws/data?id=${id}`, { key, from: CLIENT })
    data.send(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
    data.send(Buffer.alloc(0))
    return data
  })

describe("HTTP front: the API-key lockout", () => {
  it.scoped("five wrong keys lock the client's address out of the API, yet its online tunnel's visitors are served; no key never counts", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const tunnel = yield* create(port, "app")
      const client = yield* fakeClient(port, tunnel.id)
      // Twenty requests without a key, or with a header no key can match, are no guesses.
      for (let call = 0; call < 20; call++) expect(yield* apiFrom(port, CLIENT)).toBe(401)
      for (const authorization of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer "]) {
        expect(yield* apiFrom(port, CLIENT, { authorization })).toBe(401)
      }
      expect(yield* apiFrom(port, CLIENT, { key: KEY })).toBe(200)

      for (let attempt = 0; attempt < 5; attempt++) expect(yield* apiFrom(port, CLIENT, { key: WRONG })).toBe(401)
      expect(yield* apiFrom(port, CLIENT, { key: KEY })).toBe(429)
      // A new control connection is refused too: only data channels are spared.
      expect(yield* Effect.either(openWs(port, `/ws/control?tunnel_id=${tunnel.id}`, { from: CLIENT }))).toEqual(
        Either.left(new Error("refused 429"))
      )
      // Another address is not affected.
      expect(yield* apiFrom(port, VISITOR, { key: KEY })).toBe(200)

      // The tunnel that is online keeps serving: its visitors' data channels still open.
      for (let round = 0; round < 2; round++) {
        const page = yield* Effect.fork(visitor(port, "app"))
        const data = yield* answer(port, yield* client.nextVisitor)
        expect(yield* Fiber.join(page)).toBe("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        // The front is through with the visitor once it closes the channel (the visitor gone, both
        // EOFs sent). Until then it may be waiting up to 30 s for a next request on the visitor's
        // connection, a wait the clock move below would end.
        yield* data.received.closed
      }

      yield* TestClock.adjust("61 seconds")
      expect(yield* apiFrom(port, CLIENT, { key: KEY })).toBe(200)
    }))

  it.scoped("/ws/data is admitted by the visitor's id alone: any key or none, locked out or not; unknown ids are a 404 and count for nothing", () =>
    Effect.gen(function*() {
      const port = yield* startFront()
      const tunnel = yield* create(port, "app")
      const client = yield* fakeClient(port, tunnel.id)
      // Unknown ids, with a wrong key, no key or the right one: 404 before any upgrade, never a guess.
      for (let attempt = 0; attempt < 10; attempt++) {
        for (const key of [WRONG, KEY]) {
          expect(statusOf(yield* upgradeFrom(port, CLIENT, `/ws/data?id=${randomUUID()}`, key))).toBe(404)
        }
      }
      expect(statusOf(yield* upgradeFrom(port, CLIENT, "/ws/data?id=not-a-uuid", WRONG))).toBe(404)
      expect(statusOf(yield* upgradeFrom(port, CLIENT, "/ws/data", WRONG))).toBe(404)
      expect(yield* apiFrom(port, CLIENT, { key: KEY })).toBe(200)

      // A wrong key on a waiting visitor's channel is ignored: the visitor is served.
      const first = yield* Effect.fork(visitor(port, "app"))
      yield* answer(port, yield* client.nextVisitor, WRONG)
      expect(yield* Fiber.join(first)).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*ok$/)
      // No key at all, as NullBore's client dials it.
      const second = yield* Effect.fork(visitor(port, "app"))
      yield* answer(port, yield* client.nextVisitor, null)
      expect(yield* Fiber.join(second)).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*ok$/)

      // Locked out for the API, the address still serves its visitors by id.
      for (let attempt = 0; attempt < 5; attempt++) expect(yield* apiFrom(port, CLIENT, { key: WRONG })).toBe(401)
      expect(yield* apiFrom(port, CLIENT, { key: KEY })).toBe(429)
      const third = yield* Effect.fork(visitor(port, "app"))
      yield* answer(port, yield* client.nextVisitor, WRONG)
      expect(yield* Fiber.join(third)).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*ok$/)
    }))
})
