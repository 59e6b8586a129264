/**
 * How a visitor's data stream and its connection to the local service are joined. By default
 * as raw bytes (`splice`); a program that understands the local service's protocol may provide
 * its own join (`spore kafka-proxy` follows Kafka frames to rewrite broker addresses).
 */
import type * as net from "node:net"
import { Context, type Effect, Layer } from "effect"
import { splice } from "../net/splice.js"

export class LocalRelay extends Context.Tag("spore/LocalRelay")<LocalRelay, {
  /**
   * Joins `stream` (from the server) and `local` until both directions are done; `firstToLocal`
   * are bytes already read from the stream. Interrupting it destroys both sockets.
   */
  readonly join: (stream: net.Socket, local: net.Socket, firstToLocal: Buffer) => Effect.Effect<void>
}>() {}

/** The default join: raw bytes both ways (`splice`), for a local service Spore need not understand. */
export const spliceLayer = Layer.succeed(LocalRelay, LocalRelay.of({ join: splice }))
