/**
 * What the HTTP front counts, beside the server's own metrics (the same registry, so the same
 * `--metrics-addr`): requests by tunnel and status class, the time to a response's first byte,
 * bytes by tunnel, visitors now, and data channels and tunnels by state. The counts per tunnel
 * are read from the tunnels when scraped; a tunnel's series go when it does.
 */
import { Context, Effect, Layer, Option } from "effect"
import type { Registry } from "../metrics/registry.js"
import { HttpTunnels } from "./http-tunnels.js"

/** Seconds from a request's head to its response's head. */
const FIRST_BYTE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/** The status class of a response, `2xx`..`5xx` (`1xx` for a 101 upgrade). */
export const statusClass = (status: number) => `${Math.floor(status / 100)}xx`

export interface FrontInstruments {
  /** A response head came back for a request of `tunnel`, `seconds` after the request's head. */
  readonly responded: (tunnel: string, status: number, seconds: number) => void
  /** In a cluster: a connection for another node's tunnel was handed to it, or got a 503 (unreachable). */
  readonly handedOver: (outcome: "forwarded" | "unavailable") => void
}

export class FrontMetrics extends Context.Tag("spore/FrontMetrics")<FrontMetrics, FrontInstruments>() {}

export const make = (registry: Registry) =>
  Effect.gen(function*() {
    const tunnels = yield* HttpTunnels
    const requests = registry.counter("spore_http_requests_total", "Requests through the HTTP front answered, by tunnel and status class.", ["tunnel", "class"])
    const handovers = registry.counter("spore_cluster_handovers_total", "Connections for a tunnel another node of the cluster holds: forwarded to it, or answered 503 (it, or Redis, unreachable).", ["outcome"])
    const firstByte = registry.histogram("spore_http_first_byte_seconds", "Time from a request's head to its response's head, through the HTTP front.", FIRST_BYTE_BUCKETS)
    registry.computed("spore_http_bytes_total", "Bytes of HTTP visitors, per tunnel; in is from the visitor (counted as each data channel ends).", "counter", ["tunnel", "direction"], () =>
      tunnels.list(Option.none()).flatMap((tunnel) => [
        { labels: { tunnel: tunnel.name, direction: "in" }, value: tunnel.stats.bytesIn },
        { labels: { tunnel: tunnel.name, direction: "out" }, value: tunnel.stats.bytesOut }
      ]))
    registry.computed("spore_http_visitors", "HTTP visitors with a data channel now, per tunnel.", "gauge", ["tunnel"], () =>
      tunnels.list(Option.none()).map((tunnel) => ({ labels: { tunnel: tunnel.name }, value: tunnel.counts.active })))
    registry.computed("spore_http_visitors_waiting", "HTTP visitors waiting for their tunnel's client to open a data channel.", "gauge", [], () =>
      [{ labels: {}, value: tunnels.list(Option.none()).reduce((sum, tunnel) => sum + tunnel.counts.waiting, 0) }])
    registry.computed("spore_http_tunnels", "HTTP tunnels, by whether their client's control WebSocket is connected.", "gauge", ["state"], () => {
      const all = tunnels.list(Option.none())
      const online = all.filter((tunnel) => tunnel.control !== undefined).length
      return [{ labels: { state: "online" }, value: online }, { labels: { state: "offline" }, value: all.length - online }]
    })
    return FrontMetrics.of({
      responded: (tunnel, status, seconds) => {
        requests.inc({ tunnel, class: statusClass(status) })
        firstByte.observe({}, seconds)
      },
      handedOver: (outcome) => handovers.inc({ outcome })
    })
  })

export const layer = (registry: Registry) => Layer.effect(FrontMetrics, make(registry))
