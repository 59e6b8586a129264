/**
 * The server's TCP tunnels as the operator's dashboard lists them: a window from the HTTP front
 * (front/) onto the tunnels (server/), which do not import each other; cli/layers.ts joins them.
 * Kafka proxies' tunnels are TCP tunnels here: the server cannot tell them apart.
 */
import { Context, type Effect } from "effect"
import type { Series } from "../metrics/series.js"

export interface TcpTunnelView {
  readonly port: number
  /** The address of its client's control connection, while it has one. */
  readonly client: string | undefined
  /** Epoch ms. */
  readonly openedAt: number
  /** Visitors waiting or connected now, and accepted in all. */
  readonly visitors: number
  readonly totalVisitors: number
  /** Bytes from and to its visitors, the open ones' included. */
  readonly bytesIn: number
  readonly bytesOut: number
  /** Visitors (as `requests`) and bytes over the last 15 minutes. */
  readonly series: Series
}

export class TcpTunnelDirectory extends Context.Tag("spore/TcpTunnelDirectory")<TcpTunnelDirectory, {
  /** Every open TCP tunnel, by port, as of `now` (epoch ms). */
  readonly list: (now: number) => Effect.Effect<ReadonlyArray<TcpTunnelView>>
}>() {}
