/**
 * Serves a metric registry over HTTP for Prometheus to scrape, as a scoped resource.
 *
 *   GET /metrics   the registry in the text exposition format 0.0.4
 *   GET /healthz   "ok"
 *
 * HEAD is answered like GET, without the body; other methods get 405, other paths 404. Query
 * strings are ignored. Closing the scope closes the server and destroys the connections still
 * open (scrapers keep theirs alive), so the port is free again once the scope is closed.
 */
import * as http from "node:http"
import type * as net from "node:net"
import { Context, Effect, Runtime, type Scope } from "effect"
import type { BindError } from "../errors.js"
import { formatHostPort } from "../net/address.js"
import { bindServer } from "../net/listener.js"
import type { Registry } from "./registry.js"


export interface MetricsServer {
  /** The port actually bound (differs from the requested one when that was 0). */
  readonly port: number
}

/** A program's metrics endpoint, serving. */
export class MetricsEndpoint extends Context.Tag("spore/MetricsEndpoint")<MetricsEndpoint, MetricsServer>() {}

/** Binds host:port and serves `registry` there until the scope closes. */
export const serveMetrics = (
  options: { readonly host: string; readonly port: number },
  registry: Registry
): Effect.Effect<MetricsServer, BindError, Scope.Scope> =>
  Effect.gen(function*() {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const routes: Record<string, () => Promise<{ readonly contentType: string; readonly body: string }>> = {
      "/metrics": async () => ({ contentType: registry.contentType, body: await registry.render() }),
      "/healthz": async () => ({ contentType: "text/plain; charset=utf-8", body: "ok\n" })
    }
    const server = http.createServer((request, response) => {
      const reply = (status: number, headers: http.OutgoingHttpHeaders, body: string) => {
        response.writeHead(status, { ...headers, "Content-Length": Buffer.byteLength(body) })
        response.end(request.method === "HEAD" ? undefined : body)
      }
      const text = "text/plain; charset=utf-8"
      const route = routes[(request.url ?? "/").split("?")[0]!]
      if (route === undefined) return reply(404, { "Content-Type": text }, "not found\n")
      if (request.method !== "GET" && request.method !== "HEAD") {
        return reply(405, { "Content-Type": text, "Allow": "GET, HEAD" }, "method not allowed\n")
      }
      route().then(
        (page) => reply(200, { "Content-Type": page.contentType }, page.body),
        (error: unknown) => {
          // A computed metric that throws is a bug; the scrape fails but the server keeps going.
          runFork(Effect.logError(`rendering ${request.url} failed`, error))
          reply(500, { "Content-Type": text }, "internal server error\n")
        }
      )
    })
    yield* Effect.acquireRelease(
      bindServer(server, options.host, options.port),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    // Once bound, server errors are logged, not fatal.
    server.on("error", (error) => runFork(Effect.logWarning(`metrics server on port ${options.port}: ${error.message}`)))
    return { port: (server.address() as net.AddressInfo).port }
  })

/**
 * `serveMetrics` for a program's own endpoint (`--metrics-addr`), with Node's process metrics
 * added to its registry, logging where the metrics are once they are served.
 */
export const serveAndAnnounceMetrics = (options: { readonly host: string; readonly port: number }, registry: Registry) =>
  Effect.tap(Effect.zipRight(Effect.sync(() => registry.withProcessMetrics()), serveMetrics(options, registry)), ({ port }) =>
    Effect.logInfo(`metrics at http://${formatHostPort(options.host, port)}/metrics`))
