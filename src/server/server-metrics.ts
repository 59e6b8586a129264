/**
 * What `spore server` counts, for `--metrics-addr` (Prometheus text at /metrics). Every server
 * has its own registry; the counts are kept whether or not they are served.
 */
import { Context, Layer } from "effect"
import { makeRegistry, type Registry } from "../metrics/registry.js"
import { makeTraffic } from "../metrics/traffic.js"

/** Seconds from a visitor's arrival to its client's Accept: loopback to a slow far client. */
const CLAIM_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Every reason a label can take, given its zero at start so that rate() works from the first scrape. */
export const VISITOR_REFUSALS = ["visitor-filter", "max-pending", "max-conns-per-tunnel"] as const
export const HANDSHAKE_FAILURES = [
  "timeout", "invalid-secret", "no-secret", "frame-too-long", "malformed", "unknown-id", "unexpected-message",
  "port-unavailable", "no-tunnel-to-resume", "pool-refused", "max-handshakes", "auth-lockout", "max-conns-per-ip", "max-tunnels", "socket-error"
] as const

export const makeServerMetrics = (registry: Registry = makeRegistry()) => {
  const metrics = instruments(registry)
  for (const reason of VISITOR_REFUSALS) metrics.visitorsRefused.inc({ reason }, 0)
  for (const reason of HANDSHAKE_FAILURES) metrics.handshakeFailures.inc({ reason }, 0)
  return metrics
}

const instruments = (registry: Registry) => ({
  registry,
  tunnelsActive: registry.gauge("spore_tunnels_active", "Tunnels open, counting those held for a lost client."),
  tunnelsOpened: registry.counter("spore_tunnels_opened_total", "Tunnels opened (Hello)."),
  resumes: registry.counter("spore_tunnel_resumes_total", "Tunnels taken back by their client with a Resume."),
  visitorsAccepted: registry.counter("spore_visitors_accepted_total", "Visitors accepted on the public ports and announced to their client."),
  visitorsRefused: registry.counter("spore_visitors_refused_total", "Visitors closed at once, by the limit or filter that refused them.", ["reason"]),
  visitorsExpired: registry.counter("spore_visitors_expired_total", "Visitors closed because their client did not claim them within 10 s."),
  visitorsPending: registry.gauge("spore_visitors_pending", "Visitors waiting for their client to claim them."),
  visitorsActive: registry.gauge("spore_visitors_active", "Visitors forwarded to their client right now."),
  visitorsPooled: registry.counter("spore_visitors_pooled_total", "Visitors handed at once to a stream of their client's warm pool (no Accept)."),
  poolIdle: registry.gauge("spore_pool_idle", "Warm pool streams idle, ready for a visitor, over all tunnels."),
  claimSeconds: registry.histogram("spore_visitor_claim_seconds", "Time from a visitor's arrival to its client's Accept.", CLAIM_BUCKETS),
  handshakesInProgress: registry.gauge("spore_handshakes_in_progress", "Connections to the control port that have not sent their first message yet."),
  handshakeFailures: registry.counter("spore_handshake_failures_total", "Connections to the control port that failed or were refused, by reason.", ["reason"]),
  traffic: makeTraffic(registry, "spore_tunnel_bytes_total", "Bytes between visitors and the server, per tunnel port; in is from the visitor.", ["port"])
})

export class ServerMetrics extends Context.Tag("spore/ServerMetrics")<ServerMetrics, ReturnType<typeof instruments>>() {}

export const layer = Layer.sync(ServerMetrics, () => makeServerMetrics())
