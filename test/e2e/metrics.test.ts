/**
 * `--metrics-addr` on the real executables: after known traffic through a tunnel, and a server
 * restart the client comes back from, both processes' /metrics say exactly what happened.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { echoService, freePort, LOOPBACK, randomPayload, roundTrip, sha256 } from "../support/net.js"
import { type Running, startSpore, within } from "../support/process.js"
import { sampleOf, scrape, scrapeUntil } from "../support/prometheus.js"

const metricsPortOf = (process: Running) =>
  Effect.map(within("metrics address", 15, process.waitFor(/metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics/)), (match) => Number(match[1]))


describe("metrics through the CLI", () => {
  it.live("server and client count visitors, bytes and a reconnection", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const controlPort = String(yield* freePort)
      const serverArgs = ["server", "--bind-addr", LOOPBACK, "--control-port", controlPort, "--min-port", "36000", "--max-port", "36100",
        "--metrics-addr", "127.0.0.1:0"]
      const server = yield* startSpore(serverArgs)
      const serverMetrics = yield* metricsPortOf(server)
      const client = yield* startSpore(["local", String(echo), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", controlPort,
        "--metrics-addr", "127.0.0.1:0"])
      const clientMetrics = yield* metricsPortOf(client)
      const port = Number((yield* within("tunnel", 15, client.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])

      // The client's warm pool (four streams by default) is ready: every visitor is handed to one.
      const tunnel = { tunnel: `${LOOPBACK}:${echo}` }
      yield* scrapeUntil(clientMetrics, (text) => sampleOf(text, "spore_pool_idle", tunnel) === 4)
      yield* scrapeUntil(serverMetrics, (text) => sampleOf(text, "spore_pool_idle") === 4)
      for (let visit = 0; visit < 3; visit++) {
        const payload = randomPayload(10_000)
        expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
      }
      const onServer = yield* scrapeUntil(serverMetrics, (text) =>
        sampleOf(text, "spore_tunnel_bytes_total", { port: String(port), direction: "out" }) === 30_000)
      expect(sampleOf(onServer, "spore_tunnels_active")).toBe(1)
      expect(sampleOf(onServer, "spore_visitors_accepted_total")).toBe(3)
      expect(sampleOf(onServer, "spore_visitors_pooled_total")).toBe(3)
      expect(sampleOf(onServer, "spore_visitor_claim_seconds_count")).toBe(0)
      expect(sampleOf(onServer, "spore_tunnel_bytes_total", { port: String(port), direction: "in" })).toBe(30_000)
      const onClient = yield* scrapeUntil(clientMetrics, (text) =>
        sampleOf(text, "spore_tunnel_bytes_total", { ...tunnel, direction: "out" }) === 30_000)
      expect(sampleOf(onClient, "spore_tunnel_up", tunnel)).toBe(1)
      expect(sampleOf(onClient, "spore_visitors_total", tunnel)).toBe(3)
      expect(sampleOf(onClient, "spore_tunnel_bytes_total", { ...tunnel, direction: "in" })).toBe(30_000)
      expect(sampleOf(onClient, "spore_reconnects_total", tunnel)).toBe(0)

      // The server restarts on the same control port: the client comes back by itself.
      server.child.kill("SIGKILL")
      yield* within("the loss", 15, client.waitFor(/lost the connection to the server/))
      const restarted = yield* startSpore(serverArgs)
      yield* within("the restart", 15, restarted.waitFor(/server listening/))
      yield* within("the reconnection", 30, client.waitFor(/listening at 127\.0\.0\.1:\d+\n[\s\S]*listening at 127\.0\.0\.1:\d+/))
      const back = yield* scrapeUntil(clientMetrics, (text) => sampleOf(text, "spore_reconnects_total", tunnel) === 1)
      expect(sampleOf(back, "spore_reconnects_total", tunnel)).toBe(1)
      expect(sampleOf(back, "spore_control_losses_total", tunnel)).toBe(1)
      expect(sampleOf(back, "spore_tunnel_up", tunnel)).toBe(1)
      expect((yield* Effect.promise(() => scrape(clientMetrics, "/healthz"))).status).toBe(200)
    }).pipe(Effect.scoped))
})

