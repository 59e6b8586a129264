/**
 * What the clients report as they go, one line each time it changes: `spore local` and every
 * tunnel of `spore kafka-proxy` (a bore-protocol tunnel), and `spore http` (an HTTP tunnel).
 * They differ only in how a tunnel that is up looks; the way back after a loss is the same.
 */
import type { Duration } from "effect"

/** A bore-protocol tunnel is open at `host:port`; `resumed` when a Spore server gave it back by its lease. */
export interface Listening {
  readonly _tag: "Listening"
  readonly host: string
  readonly port: number
  readonly resumed: boolean
}

/** An HTTP tunnel is online at `url` under `name`; `again` after a loss. */
export interface Online {
  readonly _tag: "Online"
  readonly url: string
  readonly name: string
  readonly again: boolean
}

/** The control connection to the server is gone. */
export interface Lost {
  readonly _tag: "Lost"
  readonly reason: string
}

/** An attempt to open the tunnel failed and will be repeated; `reason` is the server's own text for a refusal. */
export interface AttemptFailed {
  readonly _tag: "AttemptFailed"
  readonly reason: string
}

/** The next attempt comes after `delay`. */
export interface Retrying {
  readonly _tag: "Retrying"
  readonly delay: Duration.Duration
}

/** A loss and the way back, as every client reports it (see `reconnecting`). */
export type ReconnectStatus = Lost | AttemptFailed | Retrying

/** What a bore-protocol tunnel reports (`spore local`, each tunnel of `spore kafka-proxy`). */
export type ClientStatus = Listening | ReconnectStatus

/** What `spore http`'s tunnel reports. */
export type HttpClientStatus = Online | ReconnectStatus
