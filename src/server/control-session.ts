/**
 * What a tunnel's control connection carries, for as long as it is attached: `Hello(port)`, then
 * bore's loop of `Heartbeat` and a wait of up to 500 ms for a visitor, announced with
 * `Connection(id)`.
 *
 * Unlike bore, the control stream is read: its end is noticed at once, and a Spore client's offer
 * of extensions (`{"Spore":n}`) is answered with the tunnel's lease token, and for n >= 2 first
 * with `{"Spore":min(n, 3)}`: from then on visitors are announced with `Visitor` frames that
 * carry their addresses, and from 3 the client's warm pool streams are taken (see WarmPool).
 * Anything else the client sends there is ignored, as bore ignores it.
 */
import { Clock, Duration, Effect, Option, Queue, Ref } from "effect"
import type { SocketError } from "../errors.js"
import { type FramedSocket, readMessage } from "../net/framed-socket.js"
import { untilPeerEnded } from "../net/socket.js"
import { tuneControlSocket } from "../net/tuning.js"
import { decodeClientMessage, encodeServerMessage, type ServerMessage, ServerMessages } from "../protocol/messages.js"
import type { VisitorAnnouncement } from "../protocol/messages.js"
import type { Uuid } from "../protocol/uuid.js"
import type { WarmPool } from "./warm-pool.js"

/** How often an idle control stream gets a heartbeat (bore: 500 ms). */
export const HEARTBEAT_INTERVAL = Duration.millis(500)

/** A visitor waiting to be announced, with the addresses a `Visitor` frame carries. */
export type Arrival = VisitorAnnouncement

/** A visitor of the tunnel that has not been claimed yet. */
export interface WaitingArrival {
  readonly arrival: Arrival
  /** Whether it has been announced on some control connection (perhaps one that is dead now). */
  announced: boolean
}

/** What a control connection needs to know about its tunnel. */
export interface TunnelState {
  readonly port: number
  /** Visitors to announce, in arrival order; they wait here while no control is attached. */
  readonly arrivals: Queue.Dequeue<Arrival>
  /** Every visitor still waiting to be claimed, in arrival order. */
  readonly waiting: ReadonlyMap<Uuid, WaitingArrival>
  /** The token that resumes this tunnel. */
  readonly token: string
  /** Whether the client asked for extensions, and so holds a lease. */
  readonly leased: Ref.Ref<boolean>
  /** Whether the client speaks version 2 and so is told visitors' addresses. */
  readonly announcesAddresses: Ref.Ref<boolean>
  /** Streams the client keeps ready for visitors (version 3); closed when the control ends. */
  readonly pool: WarmPool
}

/** Serves one control connection of a tunnel until it ends (which is not an error). */
export const serveControlSession = (
  tunnel: TunnelState,
  control: FramedSocket
): Effect.Effect<void, SocketError> =>
  Effect.gen(function*() {
    const send = (message: ServerMessage) => control.writeFrame(encodeServerMessage(message))
    tuneControlSocket(control.socket)

    /** A visitor's announcement: with its addresses to a client that speaks version 2. */
    const announcementOf = (arrival: Arrival) =>
      Effect.map(Ref.get(tunnel.announcesAddresses), (withAddresses) =>
        withAddresses ? ServerMessages.visitor(arrival) : ServerMessages.connection(arrival.id))

    yield* send(ServerMessages.hello(tunnel.port))

    // Visitors announced on an earlier control connection and still waiting are announced again:
    // that connection may have died silently (a black hole) with the announcements unread.
    // (`waiting` holds only visitors still waiting to be claimed.)
    for (const entry of tunnel.waiting.values()) {
      if (entry.announced) yield* send(yield* announcementOf(entry.arrival))
    }

    // bore's loop, frame for frame: a heartbeat, then up to 500 ms waiting for a visitor, who is
    // announced (and the loop goes round, so a heartbeat follows at once). Here the announcement
    // and the heartbeat after it go in one write, and the 500 ms are a deadline that a second
    // fiber keeps, rather than a timeout raced against every wait (two fibers per visitor).
    let lastBeat = 0
    const beatAfter = (frames: ReadonlyArray<ServerMessage>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        lastBeat = now
        return control.writeFrames([...frames, ServerMessages.heartbeat].map(encodeServerMessage))
      })
    const announceVisitors = Effect.forever(Effect.flatMap(Queue.take(tunnel.arrivals), (visitor) =>
      Effect.suspend(() => {
        // A visitor that expired while no control was attached is not announced.
        const entry = tunnel.waiting.get(visitor.id)
        if (entry === undefined) return Effect.void
        entry.announced = true
        return Effect.flatMap(announcementOf(visitor), (announcement) => beatAfter([announcement]))
      })))
    const heartbeats = Effect.gen(function*() {
      yield* beatAfter([])
      while (true) {
        const wait = lastBeat + Duration.toMillis(HEARTBEAT_INTERVAL) - (yield* Clock.currentTimeMillis)
        if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
        else yield* beatAfter([])
      }
    })

    const readOffers: Effect.Effect<void, SocketError> = Effect.gen(function*() {
      while (true) {
        const message = yield* readMessage(control, decodeClientMessage).pipe(
          Effect.catchTag("MessageParseError", () => Effect.succeed(Option.some(undefined)))
        )
        if (Option.isNone(message)) return
        if (message.value?._tag === "Spore") {
          // Open before the lease goes out: the client's pool streams name the tunnel by it.
          if (message.value.version >= 3) tunnel.pool.open()
          if (message.value.version >= 2) {
            yield* send(ServerMessages.extensions(message.value.version))
            yield* Ref.set(tunnel.announcesAddresses, true)
          }
          yield* Ref.set(tunnel.leased, true)
          yield* send(ServerMessages.lease(tunnel.token))
        }
      }
    }).pipe(
      // Past the frame limit it cannot be an offer: just wait for the end, discarding.
      Effect.catchTag("FrameTooLong", () => untilPeerEnded(control.socket))
    )

    // Whichever ends first, by success or failure, ends the connection (raceAll would wait for a
    // success, and a failed heartbeat write is how a silent client is noticed).
    yield* Effect.raceFirst(announceVisitors, Effect.raceFirst(heartbeats, readOffers))
  }).pipe(
    // The pool belongs to this control connection: its client closes its own when it ends.
    Effect.ensuring(Effect.sync(() => tunnel.pool.close()))
  )
