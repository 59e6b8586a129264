/**
 * What the two replays of the golden transcripts share (test/interop/client-replay.test.ts plays
 * bore's server against a Spore client, server-replay.test.ts bore's clients against a Spore
 * server): the transcripts, the scripted sockets of the side we play by connection name, the other
 * side's closes noted until the script is over, and the run of a whole transcript. What each
 * direction connects, sends, expects of a frame and checks at the end stays in its own test.
 */
import type * as net from "node:net"
import { Effect, type Scope } from "effect"
import {
  closeKind,
  type Direction,
  loadTranscripts,
  Peer,
  play,
  ReplayMismatch,
  type ReplaySide,
  show,
  type SkipOptions,
  type Transcript,
  type TranscriptEvent
} from "./transcript.js"

/** Every golden transcript, from `../shared/bore-wire/` beside the project. */
export const goldenTranscripts = loadTranscripts(new URL("../../../shared/bore-wire/", import.meta.url))

/** The side of a replay that we play: its scripted sockets, one per connection of the transcript. */
export abstract class ScriptedSide implements ReplaySide {
  abstract readonly plays: Direction
  abstract skips(conn: string): boolean
  abstract open(event: TranscriptEvent): Effect.Effect<void, ReplayMismatch, Scope.Scope>
  abstract send(events: ReadonlyArray<TranscriptEvent>): Effect.Effect<void, ReplayMismatch>
  /** Checks the other side's next frame on `peer` against the recorded one. */
  protected abstract expectFrame(event: TranscriptEvent, peer: Peer): Effect.Effect<void, ReplayMismatch>
  /** Checks the aftermath, once the script is over. */
  abstract readonly finish: Effect.Effect<void, ReplayMismatch>

  private readonly peers = new Map<string, Peer>()
  /** The other side's closes, checked once the script is over. */
  protected readonly closes: Array<TranscriptEvent> = []

  peer(conn: string): Peer {
    const peer = this.peers.get(conn)
    if (peer === undefined) throw new Error(`${conn} was never opened`)
    return peer
  }

  close(event: TranscriptEvent) {
    return this.peer(event.conn).close(closeKind(event))
  }

  /** Raw bytes must come exactly as recorded; a frame is the direction's to judge. */
  expectData(event: TranscriptEvent) {
    return Effect.suspend(() => {
      const peer = this.peer(event.conn)
      return event.kind === "FRAME" ? this.expectFrame(event, peer) : peer.expectBytes(event.bytes)
    })
  }

  expectClose(event: TranscriptEvent) {
    return Effect.sync(() => void this.closes.push(event))
  }

  /** Whether `conn` has been opened. */
  protected isOpen(conn: string): boolean {
    return this.peers.has(conn)
  }

  /** Takes `socket` over as connection `conn` for the rest of the scope. */
  protected own(conn: string, socket: net.Socket): Effect.Effect<void, never, Scope.Scope> {
    return Effect.map(Peer.own(conn, socket), (peer) => void this.peers.set(conn, peer))
  }

  /** Fails if a connection holds bytes nobody expected, once what `skips` allows it is passed over. */
  protected nothingLeft(skips: (conn: string) => SkipOptions): Effect.Effect<void, ReplayMismatch> {
    return Effect.suspend(() => {
      for (const [conn, peer] of this.peers) {
        const left = peer.leftover(skips(conn))
        if (left.length > 0) return Effect.fail(new ReplayMismatch({ message: `${conn}: unexpected bytes ${show(left)}` }))
      }
      return Effect.void
    })
  }
}

/** Plays the whole of `transcript` against the side `make` sets up, then checks the aftermath. */
export const replayWhole = <E, R>(transcript: Transcript, make: Effect.Effect<ScriptedSide, E, R>) =>
  Effect.gen(function*() {
    const side = yield* make
    yield* play(transcript.events, side)
    yield* side.finish
  }).pipe(Effect.scoped)
