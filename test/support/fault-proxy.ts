/**
 * A TCP proxy on 127.0.0.1 that can misbehave on command, to stand between a client and a server:
 * - `cut()`: destroys the connections it holds (both sides see a reset or close);
 * - `blackHole()`: stops forwarding in both directions and leaves every socket open (new
 *   connections are accepted and then ignored), as a dead network would look to an application;
 * - `silence(which)`: the same for some connections only (a NAT that forgot one flow);
 * - `delay(ms)`: forwards each chunk after a delay;
 * - `restore()`: forwards normally again (connections black-holed so far stay dead).
 * Connections are numbered in accept order, so a test can single out the control connection.
 */
import * as net from "node:net"
import { Duration, Effect, FiberSet } from "effect"
import { listen } from "../../src/net/listener.js"
import { LOOPBACK } from "./net.js"

type Mode = { readonly _tag: "Forward"; readonly delay: Duration.Duration } | { readonly _tag: "BlackHole" }

interface ProxiedConnection {
  readonly index: number
  readonly downstream: net.Socket
  readonly upstream: net.Socket
  /** Set once the connection was black-holed: it never forwards again. */
  dead: boolean
  /** The first bytes forwarded from the server to the client (enough for control frames). */
  fromServer: string
}

/** How much of each connection's server-to-client bytes is kept for `fromServer`. */
const KEPT = 4096

export interface FaultProxy {
  readonly port: number
  /** Connections accepted so far, in order (including closed ones). */
  readonly connections: () => ReadonlyArray<ProxiedConnection>
  /** Destroys the given connections (all open ones by default). */
  readonly cut: (which?: (connection: ProxiedConnection) => boolean) => Effect.Effect<void>
  readonly blackHole: Effect.Effect<void>
  /**
   * Black-holes only the given connections, for good (their sockets stay open, nothing more is
   * forwarded either way); others, and new ones, forward as before.
   */
  readonly silence: (which: (connection: ProxiedConnection) => boolean) => Effect.Effect<void>
  readonly delay: (duration: Duration.Duration) => Effect.Effect<void>
  readonly restore: Effect.Effect<void>
}

/** A proxy from an ephemeral port on 127.0.0.1 to 127.0.0.1:targetPort, for the scope's life. */
export const faultProxy = (targetPort: number) =>
  Effect.gen(function*() {
    let mode: Mode = { _tag: "Forward", delay: Duration.zero }
    const connections: Array<ProxiedConnection> = []
    const forwarders = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(forwarders)()

    /**
     * Copies `from` into `to` chunk by chunk, obeying the mode at the time of each chunk. Under a
     * delay, chunks and the final end go through one queue per direction, so nothing overtakes.
     */
    const forward = (connection: ProxiedConnection, from: net.Socket, to: net.Socket) => {
      const queue: Array<Buffer | "end"> = []
      let draining = false
      const deliver = (item: Buffer | "end") => {
        if (connection.dead) return
        if (item === "end") to.end()
        else to.write(item)
      }
      const drain = Effect.gen(function*() {
        while (queue.length > 0) {
          if (mode._tag === "Forward") yield* Effect.sleep(mode.delay)
          deliver(queue.shift()!)
        }
        draining = false
      })
      const enqueue = (item: Buffer | "end") => {
        const immediate = mode._tag === "Forward" && Duration.toMillis(mode.delay) === 0
        if (immediate && !draining) return deliver(item)
        queue.push(item)
        if (!draining) {
          draining = true
          run(drain)
        }
      }
      from.on("data", (chunk: Buffer) => {
        if (connection.dead || mode._tag === "BlackHole") {
          connection.dead = true
          return
        }
        if (from === connection.upstream && connection.fromServer.length < KEPT) {
          connection.fromServer += chunk.toString("latin1").slice(0, KEPT)
        }
        enqueue(chunk)
      })
      from.on("end", () => enqueue("end"))
      from.on("error", () => to.destroy())
      from.on("close", () => {
        // After a clean end, `to` was ended in order and still flushes what it holds (destroying
        // it here would drop that tail); after a reset or a cut, the reset goes through.
        if (connection.dead || draining || from.readableEnded) return
        to.destroy()
      })
    }

    const listener = yield* listen({ host: LOOPBACK, port: 0 }, (downstream) =>
      Effect.async<void>((resume) => {
        const upstream = net.connect({ host: LOOPBACK, port: targetPort, allowHalfOpen: true })
        const connection: ProxiedConnection = {
          index: connections.length,
          downstream,
          upstream,
          dead: mode._tag === "BlackHole",
          fromServer: ""
        }
        connections.push(connection)
        upstream.on("error", () => downstream.destroy())
        forward(connection, downstream, upstream)
        forward(connection, upstream, downstream)
        let open = 2
        const onClose = () => {
          open -= 1
          if (open === 0) resume(Effect.void)
        }
        downstream.once("close", onClose)
        upstream.once("close", onClose)
        return Effect.sync(() => {
          downstream.destroy()
          upstream.destroy()
        })
      }))

    return {
      port: listener.port,
      connections: () => connections,
      cut: (which = () => true) =>
        Effect.sync(() => {
          for (const connection of connections.filter(which)) {
            connection.downstream.destroy()
            connection.upstream.destroy()
          }
        }),
      blackHole: Effect.sync(() => {
        mode = { _tag: "BlackHole" }
        for (const connection of connections) connection.dead = true
      }),
      silence: (which) =>
        Effect.sync(() => {
          for (const connection of connections.filter(which)) connection.dead = true
        }),
      delay: (duration) =>
        Effect.sync(() => {
          mode = { _tag: "Forward", delay: duration }
        }),
      restore: Effect.sync(() => {
        mode = { _tag: "Forward", delay: Duration.zero }
      })
    } satisfies FaultProxy
  })
