/**
 * What `spore local` counts, for `--metrics-addr` (Prometheus text at /metrics), per tunnel:
 * the `tunnel` label is the local service it exposes (`localhost:3000`).
 */
import { Context, Effect, Layer } from "effect"
import { makeRegistry, type Registry } from "../metrics/registry.js"
import { makeTraffic } from "../metrics/traffic.js"
import type { ClientStatus } from "./status.js"
import type { ClientConfig } from "./config.js"

export const makeClientMetrics = (registry: Registry = makeRegistry()) => ({
  registry,
  up: registry.gauge("spore_tunnel_up", "1 while the tunnel is open on the server, else 0.", ["tunnel"]),
  losses: registry.counter("spore_control_losses_total", "Control connections to the server lost.", ["tunnel"]),
  reconnects: registry.counter("spore_reconnects_total", "Tunnels opened again after a loss (resumed or not).", ["tunnel"]),
  resumes: registry.counter("spore_resumes_total", "Tunnels taken back on their old port with a lease token.", ["tunnel"]),
  attemptsFailed: registry.counter("spore_connect_attempts_failed_total", "Attempts to reach the server that failed.", ["tunnel"]),
  visitors: registry.counter("spore_visitors_total", "Visitors forwarded to the local service.", ["tunnel"]),
  visitorsActive: registry.gauge("spore_visitors_active", "Visitors forwarded to the local service right now.", ["tunnel"]),
  poolIdle: registry.gauge("spore_pool_idle", "Warm pool streams open to the server and idle, ready for a visitor.", ["tunnel"]),
  visitorsFailed: registry.counter("spore_visitors_failed_total", "Visitors that could not be forwarded (local service or server unreachable).", ["tunnel"]),
  traffic: makeTraffic(registry, "spore_tunnel_bytes_total", "Bytes between the client and the local service; in is toward the local service.", ["tunnel"])
})

export type ClientMetricsShape = ReturnType<typeof makeClientMetrics>

export class ClientMetrics extends Context.Tag("spore/ClientMetrics")<ClientMetrics, ClientMetricsShape>() {}

/** Metrics in a registry of their own, for a program that serves them (or, without --metrics-addr, nobody reads). */
export const layer = Layer.sync(ClientMetrics, () => makeClientMetrics())

/** The `tunnel` label of a client's metrics. */
export const tunnelLabel = (config: Pick<ClientConfig, "localHost" | "localPort">) => ({
  tunnel: `${config.localHost}:${config.localPort}`
})

/** Gives every series of a tunnel its zero, so a scrape shows it before anything happens. */
export const registerTunnel = (config: Pick<ClientConfig, "localHost" | "localPort">) =>
  Effect.map(ClientMetrics, (metrics) => {
    const labels = tunnelLabel(config)
    for (const counter of [metrics.losses, metrics.reconnects, metrics.resumes, metrics.attemptsFailed, metrics.visitors, metrics.visitorsFailed]) {
      counter.inc(labels, 0)
    }
    metrics.up.set(labels, 0)
    metrics.visitorsActive.set(labels, 0)
    metrics.poolIdle.set(labels, 0)
  })

/** Counts what a status report says. */
export const countStatus = (config: ClientConfig, status: ClientStatus, afterLoss: boolean) =>
  Effect.map(ClientMetrics, (metrics) => {
    const labels = tunnelLabel(config)
    switch (status._tag) {
      case "Listening":
        metrics.up.set(labels, 1)
        if (afterLoss) metrics.reconnects.inc(labels)
        if (status.resumed) metrics.resumes.inc(labels)
        return
      case "Lost":
        metrics.up.set(labels, 0)
        metrics.losses.inc(labels)
        return
      case "AttemptFailed":
        metrics.attemptsFailed.inc(labels)
        return
      case "Retrying":
        return
    }
  })
