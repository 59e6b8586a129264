/**
 * HTTP visitors waiting for their tunnel's client to open a data channel: the same scoped
 * pending registry as TCP tunnels (same 10 s timeout, same counts), holding a Deferred that the
 * channel's WebSocket completes. A visitor let go unclaimed learns why: it expired (504) or its
 * tunnel's control connection closed (502).
 */
import { Context, Deferred, Exit, Layer } from "effect"
import type { HeldWebSocket } from "../net/ws-channel.js"
import { makeTable, type PendingEvents, type PendingTable, type ReleaseReason } from "./pending-registry.js"

export interface WaitingVisitor {
  readonly channel: Deferred.Deferred<HeldWebSocket, ReleaseReason>
}

export class WaitingVisitors extends Context.Tag("spore/WaitingVisitors")<WaitingVisitors, PendingTable<WaitingVisitor>>() {}

export const layer = (events?: PendingEvents) =>
  Layer.effect(
    WaitingVisitors,
    makeTable<WaitingVisitor>((visitor, reason) => Deferred.unsafeDone(visitor.channel, Exit.fail(reason)), events)
  )
