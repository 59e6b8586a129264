import * as net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Scope } from "effect"
import { BindError } from "../../src/errors.js"
import { serveMetrics } from "../../src/metrics/http.js"
import { makeRegistry } from "../../src/metrics/registry.js"
import { listen } from "../../src/net/listener.js"
import { connect } from "../../src/net/socket.js"
import { LOOPBACK } from "../support/net.js"

const sampleRegistry = () => {
  const registry = makeRegistry()
  registry.counter("spore_accepted_total", "Connections accepted.").inc(undefined, 3)
  registry.gauge("spore_tunnels", "Tunnels open.", ["port"]).set({ port: "4000" }, 1)
  return registry
}

/** Fetches and reads the whole body. */
const get = (port: number, path: string, init: RequestInit = {}) =>
  Effect.promise(async () => {
    const response = await fetch(`http://${LOOPBACK}:${port}${path}`, init)
    return { status: response.status, headers: response.headers, body: await response.text() }
  })

describe("serveMetrics", () => {
  it.scoped("serves the registry's render at /metrics with the 0.0.4 content type", () =>
    Effect.gen(function*() {
      const registry = sampleRegistry()
      const { port } = yield* serveMetrics({ host: LOOPBACK, port: 0 }, registry)
      expect(port).toBeGreaterThan(0)
      const response = yield* get(port, "/metrics")
      expect(response.status).toBe(200)
      expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
      expect(response.body).toBe(yield* Effect.promise(() => registry.render()))
      expect(response.body).toContain("\nspore_accepted_total 3\n")
      // Rendered afresh at every scrape; the query string does not change the route.
      registry.counter("spore_late_total", "Registered after start.").inc()
      const again = yield* get(port, "/metrics?x=1")
      expect(again.status).toBe(200)
      expect(again.body).toBe(yield* Effect.promise(() => registry.render()))
      expect(again.body).toContain("\nspore_late_total 1\n")
    }))

  it.scoped("answers /healthz with ok, and HEAD like GET without a body", () =>
    Effect.gen(function*() {
      const registry = sampleRegistry()
      const { port } = yield* serveMetrics({ host: LOOPBACK, port: 0 }, registry)
      const health = yield* get(port, "/healthz")
      expect(health.status).toBe(200)
      expect(health.body).toBe("ok\n")
      const head = yield* get(port, "/metrics", { method: "HEAD" })
      expect(head.status).toBe(200)
      expect(head.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
      expect(head.headers.get("content-length")).toBe(String(Buffer.byteLength(yield* Effect.promise(() => registry.render()))))
      expect(head.body).toBe("")
    }))

  it.scoped("answers 404 for other paths and 405 with Allow for other methods", () =>
    Effect.gen(function*() {
      const { port } = yield* serveMetrics({ host: LOOPBACK, port: 0 }, sampleRegistry())
      for (const path of ["/", "/metricsx", "/metrics/", "/nope?metrics"]) {
        expect((yield* get(port, path)).status).toBe(404)
      }
      for (const method of ["POST", "PUT", "DELETE"]) {
        const response = yield* get(port, "/metrics", { method })
        expect(response.status).toBe(405)
        expect(response.headers.get("allow")).toBe("GET, HEAD")
      }
      const post = yield* get(port, "/healthz?y", { method: "POST", body: "ignored" })
      expect(post.status).toBe(405)
      expect(post.headers.get("allow")).toBe("GET, HEAD")
    }))

  it.scoped("answers 500 when rendering throws, and keeps serving", () =>
    Effect.gen(function*() {
      const registry = makeRegistry()
      let broken = true
      registry.computed("spore_flaky", "Flaky.", "gauge", [], () => {
        if (broken) throw new Error("boom")
        return [{ labels: {}, value: 1 }]
      })
      const { port } = yield* serveMetrics({ host: LOOPBACK, port: 0 }, registry)
      expect((yield* get(port, "/metrics")).status).toBe(500)
      broken = false
      expect((yield* get(port, "/metrics")).body).toContain("\nspore_flaky 1\n")
    }))

  it.effect("frees the port and drops open connections when the scope closes", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { port } = yield* serveMetrics({ host: LOOPBACK, port: 0 }, sampleRegistry()).pipe(Scope.extend(scope))
      const open = () => {
        const socket = net.connect({ host: LOOPBACK, port })
        socket.on("error", () => {})
        const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
        const data = new Promise<string>((resolve) => socket.once("data", (chunk) => resolve(chunk.toString())))
        return { socket, closed, data }
      }
      // One halfway through its request: server.close() alone would wait for it (60 s headersTimeout).
      const busy = open()
      busy.socket.write(`GET /metrics HTTP/1.1\r\nHost: ${LOOPBACK}\r\n`)
      // One kept alive after a response, as scrapers do (opened second: once it is answered, the
      // server has accepted the first one too).
      const idle = open()
      idle.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${LOOPBACK}\r\nConnection: keep-alive\r\n\r\n`)
      expect(yield* Effect.promise(() => idle.data)).toMatch(/^HTTP\/1\.1 200 OK\r\n/)

      yield* Scope.close(scope, Exit.void)
      yield* Effect.promise(() => Promise.all([idle.closed, busy.closed]))
      const refused = yield* Effect.either(Effect.scoped(connect(LOOPBACK, port)))
      expect(Either.isLeft(refused) && refused.left.reason).toBe("ECONNREFUSED")
    }))

  it.scoped("fails with BindError EADDRINUSE on a port already taken", () =>
    Effect.gen(function*() {
      const taken = yield* listen({ host: LOOPBACK, port: 0 }, () => Effect.void)
      const result = yield* Effect.either(serveMetrics({ host: LOOPBACK, port: taken.port }, makeRegistry()))
      expect(result).toEqual(Either.left(new BindError({ host: LOOPBACK, port: taken.port, code: "EADDRINUSE" })))
      expect(Either.isLeft(result) && result.left.message).toBe(
        `could not listen on ${LOOPBACK}:${taken.port}: EADDRINUSE`
      )
    }))
})
