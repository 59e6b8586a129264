/**
 * The server's metrics are real counts: known traffic, driven by hand-written peers with the
 * TestClock standing in for the timeouts, then scrapes of /metrics over HTTP.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option, Redacted, TestClock } from "effect"
import { makeAuthenticator } from "../../src/protocol/auth.js"
import type { Uuid } from "../../src/protocol/uuid.js"
import { makeVisitorFilter, parseCidr } from "../../src/visitors/visitor-filter.js"
import { dial, readExactly, startRunningServer } from "../support/net.js"
import { sampleOf, scrape, scrapeUntil } from "../support/prometheus.js"
import { wirePeer } from "../support/wire.js"

const SECRET = "s3cret"
const settle = Effect.repeatN(Effect.yieldNow(), 20)

/** A connection to the control port that has answered the challenge. */
const authenticated = (control: number, secret = SECRET) =>
  Effect.gen(function*() {
    const peer = wirePeer(yield* dial(control))
    const challenge = JSON.parse((yield* peer.next) ?? "{}").Challenge as Uuid
    peer.send(`{"Authenticate":"${makeAuthenticator(Redacted.make(secret)).answer(challenge)}"}`)
    return peer
  })


const connectionId = (peer: ReturnType<typeof wirePeer>) =>
  Effect.map(peer.nextNonHeartbeat, (frame) => JSON.parse(frame ?? "{}").Connection as string)


describe("server metrics", () => {
  it.scoped("count tunnels, visitors, bytes, expiries, refusals and handshake failures", () =>
    Effect.gen(function*() {
      const server = yield* startRunningServer({
        secret: SECRET,
        metricsPort: 0,
        limits: { visitors: makeVisitorFilter([], [Either.getOrThrow(parseCidr("127.0.0.9"))]) }
      })
      const metricsPort = Option.getOrThrow(server.metricsPort)
      const control = server.controlPort
      expect(yield* Effect.promise(() => scrape(metricsPort, "/healthz"))).toEqual({ status: 200, body: "ok\n" })

      // A tunnel, and a visitor that sends 1000 bytes and gets 500 back.
      const tunnel = yield* authenticated(control)
      tunnel.send("{\"Hello\":0}")
      const port = Number(/\d+/.exec((yield* tunnel.next) ?? "")?.[0])
      const visitor = yield* dial(port)
      const data = yield* authenticated(control)
      data.send(`{"Accept":"${yield* connectionId(tunnel)}"}`)
      visitor.write(Buffer.alloc(1000, 1))
      yield* readExactly(data.socket, 1000)
      data.socket.write(Buffer.alloc(500, 2))
      yield* readExactly(visitor, 500)
      const during = yield* scrapeUntil(metricsPort, (text) => sampleOf(text, "spore_visitors_active") === 1)
      expect(sampleOf(during, "spore_visitors_active")).toBe(1)
      expect(sampleOf(during, "spore_tunnels_active")).toBe(1)
      expect(sampleOf(during, "spore_tunnel_bytes_total", { port: String(port), direction: "in" })).toBe(1000)
      expect(sampleOf(during, "spore_tunnel_bytes_total", { port: String(port), direction: "out" })).toBe(500)
      visitor.destroy()
      data.socket.destroy()

      // A visitor nobody claims, and one from a denied address.
      yield* dial(port)
      yield* connectionId(tunnel)
      yield* dial(port, "127.0.0.1", "127.0.0.9")
      const pending = yield* scrapeUntil(metricsPort, (text) => sampleOf(text, "spore_visitors_pending") === 1)
      expect(sampleOf(pending, "spore_visitors_pending")).toBe(1)

      // Failed handshakes: a wrong secret, an unknown id, and a silent connection (3 s).
      const wrong = yield* authenticated(control, "not-the-secret")
      expect(yield* wrong.next).toBe("{\"Error\":\"invalid secret\"}")
      const unknown = yield* authenticated(control)
      unknown.send("{\"Accept\":\"00000000-0000-0000-0000-000000000001\"}")
      expect(yield* unknown.next).toBeUndefined()
      yield* dial(control)
      yield* scrapeUntil(metricsPort, (text) => sampleOf(text, "spore_handshakes_in_progress") === 1)
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* settle

      const after = yield* scrapeUntil(metricsPort, (text) =>
        sampleOf(text, "spore_visitors_active") === 0 && sampleOf(text, "spore_handshake_failures_total", { reason: "timeout" }) === 1)
      expect(sampleOf(after, "spore_tunnels_opened_total")).toBe(1)
      expect(sampleOf(after, "spore_visitors_accepted_total")).toBe(2)
      expect(sampleOf(after, "spore_visitors_refused_total", { reason: "visitor-filter" })).toBe(1)
      expect(sampleOf(after, "spore_visitors_expired_total")).toBe(1)
      expect(sampleOf(after, "spore_visitors_pending")).toBe(0)
      expect(sampleOf(after, "spore_visitors_active")).toBe(0)
      expect(sampleOf(after, "spore_handshakes_in_progress")).toBe(0)
      expect(sampleOf(after, "spore_visitor_claim_seconds_count")).toBe(1)
      expect(sampleOf(after, "spore_handshake_failures_total", { reason: "invalid-secret" })).toBe(1)
      expect(sampleOf(after, "spore_handshake_failures_total", { reason: "unknown-id" })).toBe(1)
      expect(sampleOf(after, "spore_handshake_failures_total", { reason: "timeout" })).toBe(1)
      // Closed connections keep their bytes in the tunnel's counters.
      expect(sampleOf(after, "spore_tunnel_bytes_total", { port: String(port), direction: "in" })).toBe(1000)
      expect(sampleOf(after, "spore_tunnel_bytes_total", { port: String(port), direction: "out" })).toBe(500)

      tunnel.socket.destroy()
      const closed = yield* scrapeUntil(metricsPort, (text) => sampleOf(text, "spore_tunnels_active") === 0)
      expect(sampleOf(closed, "spore_tunnels_active")).toBe(0)
    }))
})
