/**
 * `--metrics-addr` on the real executables: after known traffic through a tunnel, and a server
 * restart the client comes back from, both processes' /metrics say exactly what happened.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { Effect } from "effect"
import { KEY_A, localApp, startHttpClient, startHttpServer, writeKeys } from "../support/http.js"
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


const PROMTOOL = "/usr/bin/promtool"

/** `promtool check metrics` on a scrape: its exit code and what it said. */
const promtool = (text: string) =>
  Effect.promise(() =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(PROMTOOL, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] })
      let output = ""
      child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
      child.once("close", (code) => resolve({ code, output }))
      child.stdin.end(text)
    }))

describe.skipIf(!existsSync(PROMTOOL))("every metrics endpoint, checked by promtool", () => {
  it.scopedLive("server (with the HTTP front's series), spore local, spore http and spore kafka-proxy: promtool check metrics passes; process metrics are there", () =>
    Effect.gen(function*() {
      const app = yield* localApp
      const server = yield* startHttpServer({ keysFile: writeKeys(KEY_A), extra: ["--metrics-addr", "127.0.0.1:0"] })
      const serverMetrics = yield* metricsPortOf(server.process)
      const controlPort = (yield* within("the control port", 15, server.process.waitFor(/server listening on 127\.0\.0\.1:(\d+)/)))[1]!
      const http = yield* startHttpClient(server.port, app.port, { key: KEY_A, name: "app", extra: ["--metrics-addr", "127.0.0.1:0"] })
      const httpMetrics = yield* metricsPortOf(http.process)
      const local = yield* startSpore(["local", String(app.port), "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", controlPort, "--metrics-addr", "127.0.0.1:0"])
      const localMetrics = yield* metricsPortOf(local)
      const kafka = yield* startSpore(["kafka-proxy", "--bootstrap-server", "127.0.0.1:9", "--to", LOOPBACK, "--control-port", controlPort, "--metrics-addr", "127.0.0.1:0"])
      const kafkaMetrics = yield* metricsPortOf(kafka)
      yield* Effect.promise(async () => (await fetch(`http://${LOOPBACK}:${server.port}/t/app/page`)).text())

      const front = yield* scrapeUntil(serverMetrics, (text) => text.includes(`spore_http_requests_total{tunnel="app",class="2xx"} 1`))
      expect(sampleOf(front, "spore_http_first_byte_seconds_count")).toBe(1)
      expect(sampleOf(front, "spore_http_tunnels", { state: "online" })).toBe(1)
      const clientScrape = yield* scrapeUntil(httpMetrics, (text) => sampleOf(text, "spore_visitors_total", { tunnel: `${LOOPBACK}:${app.port}` }) === 1)
      expect(sampleOf(clientScrape, "spore_tunnel_up", { tunnel: `${LOOPBACK}:${app.port}` })).toBe(1)
      for (const [name, port] of [["server", serverMetrics], ["spore http", httpMetrics], ["spore local", localMetrics], ["spore kafka-proxy", kafkaMetrics]] as const) {
        const text = (yield* Effect.promise(() => scrape(port))).body
        expect(text, name).toContain("# TYPE process_open_fds gauge")
        expect(text, name).toContain("# TYPE nodejs_eventloop_lag_seconds gauge")
        const checked = yield* promtool(text)
        expect(checked, name).toEqual({ code: 0, output: "" })
      }
    }), 60_000)
})
