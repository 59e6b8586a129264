/**
 * `--trusted-proxy`: behind a load balancer the front takes the client's address from the
 * balancer's PROXY header or X-Forwarded-For, for the lockout, the visitor filter, the
 * per-address cap and the X-Forwarded-For the local app sees; from anyone else those are not
 * believed. In one process on 127.0.0.0/8: 127.0.0.2 is the trusted proxy, 127.0.0.3 is not.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber } from "effect"
import { encodeProxyHeader } from "../../src/client/proxy-header.js"
import { makeVisitorFilter, parseCidr } from "../../src/visitors/visitor-filter.js"
import { dial } from "../support/net.js"
import { apiFrom, create, fakeClient, heldOpen, KEY, openWs, startFront, visit } from "./front-driver.js"

const PROXY = "127.0.0.2"
const STRANGER = "127.0.0.3"
const WRONG = "wrong-key-0123456789abcdef"
const cidr = (text: string) => Either.getOrThrow(parseCidr(text))

/** The PROXY header a balancer sends for a client at `address`. */
const proxyHeader = (version: "v1" | "v2", address: string) =>
  encodeProxyHeader(version, { source: { address, port: 51234 }, destination: { address: "192.0.2.1", port: 80 } })

const behindProxy = (options: { deny?: string; maxHttpConnsPerIp?: number; proxies?: ReadonlyArray<string> } = {}) =>
  startFront(undefined, {
    http: { trustedProxies: (options.proxies ?? [`${PROXY}/32`]).map(cidr) },
    limits: {
      visitors: makeVisitorFilter([], options.deny === undefined ? [] : [cidr(options.deny)]),
      ...(options.maxHttpConnsPerIp === undefined ? {} : { maxHttpConnsPerIp: options.maxHttpConnsPerIp })
    }
  })

const lockOut = (port: number, from: string, options: { forwardedFor?: string; prefix?: Buffer }) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 5; attempt++) expect(yield* apiFrom(port, from, { ...options, key: WRONG })).toBe(401)
  })

/** A visitor's request for tunnel `app`, after `prefix`, with `forwardedFor` if given. */
const visitorRequest = (options: { prefix?: Buffer; forwardedFor?: string }) =>
  Buffer.concat([
    options.prefix ?? Buffer.alloc(0),
    Buffer.from(
      `GET /t/app/ HTTP/1.1\r\nHost: x\r\n${options.forwardedFor === undefined ? "" : `X-Forwarded-For: ${options.forwardedFor}\r\n`}\r\n`,
      "latin1"
    )
  ])

describe("HTTP front: --trusted-proxy", () => {
  it.scoped("wrong keys through a trusted proxy lock out the client X-Forwarded-For or the PROXY header names, not the proxy", () =>
    Effect.gen(function*() {
      const port = yield* behindProxy()
      yield* lockOut(port, PROXY, { forwardedFor: "203.0.113.7" })
      expect(yield* apiFrom(port, PROXY, { key: KEY, forwardedFor: "203.0.113.7" })).toBe(429)
      // The rightmost entry is the one the proxy vouches for; what the client claimed before it is not.
      expect(yield* apiFrom(port, PROXY, { key: KEY, forwardedFor: "198.51.100.1, 203.0.113.7" })).toBe(429)
      expect(yield* apiFrom(port, PROXY, { key: KEY, forwardedFor: "203.0.113.7, 203.0.113.8" })).toBe(200)
      expect(yield* apiFrom(port, PROXY, { key: KEY, forwardedFor: "203.0.113.8" })).toBe(200)
      // The proxy's own requests, and requests straight from elsewhere, are fine.
      expect(yield* apiFrom(port, PROXY, { key: KEY })).toBe(200)
      expect(yield* apiFrom(port, STRANGER, { key: KEY })).toBe(200)

      for (const version of ["v1", "v2"] as const) {
        const port = yield* behindProxy()
        yield* lockOut(port, PROXY, { prefix: proxyHeader(version, "203.0.113.9") })
        expect(yield* apiFrom(port, PROXY, { key: KEY, prefix: proxyHeader(version, "203.0.113.9") })).toBe(429)
        // With a PROXY header, the request's X-Forwarded-For is the client's own claim.
        expect(yield* apiFrom(port, PROXY, { key: KEY, prefix: proxyHeader(version, "203.0.113.9"), forwardedFor: "203.0.113.8" })).toBe(429)
        expect(yield* apiFrom(port, PROXY, { key: KEY, prefix: proxyHeader(version, "203.0.113.8") })).toBe(200)
        expect(yield* apiFrom(port, PROXY, { key: KEY, forwardedFor: "203.0.113.9" })).toBe(429)
        expect(yield* apiFrom(port, PROXY, { key: KEY })).toBe(200)
      }
    }))

  it.scoped("an untrusted peer's X-Forwarded-For is not believed: the lockout lands on the peer", () =>
    Effect.gen(function*() {
      const port = yield* behindProxy()
      yield* lockOut(port, STRANGER, { forwardedFor: "203.0.113.7" })
      expect(yield* apiFrom(port, STRANGER, { key: KEY, forwardedFor: "203.0.113.8" })).toBe(429)
      expect(yield* apiFrom(port, STRANGER, { key: KEY })).toBe(429)
      expect(yield* apiFrom(port, PROXY, { key: KEY, forwardedFor: "203.0.113.7" })).toBe(200)
    }))

  it.scoped("the PROXY header or X-Forwarded-For of a trusted proxy decide the visitor filter; a stranger's PROXY header is a 400", () =>
    Effect.gen(function*() {
      const port = yield* behindProxy({ deny: "203.0.113.7/32" })
      // The tunnel is offline: a 502 says the visitor got past the filter.
      yield* create(port, "app")
      const status = (from: string, options: { prefix?: Buffer; forwardedFor?: string }) =>
        Effect.map(visit(port, visitorRequest(options), from), (answer) => answer.slice(0, 12))
      expect(yield* status(PROXY, { prefix: proxyHeader("v1", "203.0.113.7") })).toBe("HTTP/1.1 403")
      expect(yield* status(PROXY, { prefix: proxyHeader("v2", "203.0.113.7") })).toBe("HTTP/1.1 403")
      expect(yield* status(PROXY, { forwardedFor: "203.0.113.7" })).toBe("HTTP/1.1 403")
      expect(yield* status(PROXY, { prefix: proxyHeader("v1", "203.0.113.8") })).toBe("HTTP/1.1 502")
      expect(yield* status(PROXY, { prefix: proxyHeader("v2", "203.0.113.8"), forwardedFor: "203.0.113.7" })).toBe("HTTP/1.1 502")
      expect(yield* status(PROXY, {})).toBe("HTTP/1.1 502")
      // A LOCAL header (the balancer's own health check) leaves the proxy's address.
      expect(yield* status(PROXY, { prefix: encodeProxyHeader("v2", undefined) })).toBe("HTTP/1.1 502")
      expect(yield* status(STRANGER, { forwardedFor: "203.0.113.7" })).toBe("HTTP/1.1 502")
      expect(yield* status(STRANGER, { prefix: proxyHeader("v1", "203.0.113.8") })).toBe("HTTP/1.1 400")
      expect(yield* status(STRANGER, { prefix: proxyHeader("v2", "203.0.113.8") })).toBe("HTTP/1.1 400")
      // A trusted proxy's malformed header is refused too.
      expect(yield* status(PROXY, { prefix: Buffer.from("PROXY TCP4 203.0.113.8 nonsense\r\n") })).toBe("HTTP/1.1 400")
    }))

  it.scoped("the local app sees the real client in X-Forwarded-For through a trusted proxy, and the chain as sent otherwise", () =>
    Effect.gen(function*() {
      const port = yield* behindProxy({ proxies: [`${PROXY}/32`, "10.0.0.0/8"] })
      const client = yield* fakeClient(port, (yield* create(port, "app")).id)
      const forwarded = (from: string, options: { prefix?: Buffer; forwardedFor?: string }) =>
        Effect.scoped(Effect.gen(function*() {
          const page = yield* Effect.fork(visit(port, visitorRequest(options), from))
          const data = yield* openWs(port, `/ws/data?id=${yield* client.nextVisitor}`)
          // The next message, or a short real pause for one that came before the listener.
          for (let wait = 0; wait < 100 && !data.received.text().includes("\r\n\r\n"); wait++) {
            yield* Effect.promise(() => new Promise((resolve) => (data.once("message", resolve), setTimeout(resolve, 50))))
          }
          expect(data.received.text()).toContain("\r\n\r\n")
          data.send(Buffer.from("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"))
          data.send(Buffer.alloc(0))
          yield* Fiber.join(page)
          return /\r\nX-Forwarded-For: ([^\r]*)\r\n/.exec(data.received.text())?.[1]
        }))
      expect(yield* forwarded(PROXY, { forwardedFor: "203.0.113.7" })).toBe("203.0.113.7")
      // The trusted hops are the operator's own and are dropped; the client's own claims stay.
      expect(yield* forwarded(PROXY, { forwardedFor: "198.51.100.1, 203.0.113.7, 10.1.2.3" })).toBe("198.51.100.1, 203.0.113.7")
      expect(yield* forwarded(PROXY, { prefix: proxyHeader("v1", "203.0.113.7") })).toBe("203.0.113.7")
      expect(yield* forwarded(PROXY, { prefix: proxyHeader("v2", "203.0.113.7"), forwardedFor: "198.51.100.1" })).toBe("198.51.100.1, 203.0.113.7")
      expect(yield* forwarded(PROXY, {})).toBe(PROXY)
      expect(yield* forwarded(STRANGER, { forwardedFor: "203.0.113.7" })).toBe(`203.0.113.7, ${STRANGER}`)
    }))

  it.scoped("--max-http-conns-per-ip counts a trusted proxy's connections by their clients", () =>
    Effect.gen(function*() {
      const port = yield* behindProxy({ maxHttpConnsPerIp: 2 })
      const client = yield* fakeClient(port, (yield* create(port, "app")).id)
      // Two clients' connections through the proxy, each waiting for its tunnel.
      for (let index = 0; index < 2; index++) {
        (yield* dial(port, "127.0.0.1", PROXY)).write(visitorRequest({ prefix: proxyHeader("v1", "203.0.113.7") }))
        yield* client.nextVisitor
        ;(yield* dial(port, "127.0.0.1", PROXY)).write(visitorRequest({ forwardedFor: "203.0.113.8" }))
        yield* client.nextVisitor
      }
      // Four connections from the proxy, but two per client: a third from either is refused.
      const tooMany = /^HTTP\/1\.1 429 Too Many Requests\r\n/
      expect(yield* visit(port, visitorRequest({ prefix: proxyHeader("v2", "203.0.113.7") }), PROXY)).toMatch(tooMany)
      expect(yield* visit(port, visitorRequest({ forwardedFor: "203.0.113.8" }), PROXY)).toMatch(tooMany)
      // Another client through the same proxy is not affected.
      const other = yield* dial(port, "127.0.0.1", PROXY)
      other.write(visitorRequest({ forwardedFor: "203.0.113.9" }))
      // Announced to the client, so admitted: the front holds it open, waiting for its channel.
      yield* client.nextVisitor
      expect(heldOpen(port, PROXY).filter((socket) => socket.remotePort === other.localPort)).toHaveLength(1)
      expect(other.destroyed).toBe(false)
    }))
})
