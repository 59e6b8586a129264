/**
 * A test peer that speaks bore frames by hand, to drive a Spore server or client directly.
 */
import type * as net from "node:net"
import { Effect, Option } from "effect"
import { makeFramedSocket } from "../../src/net/framed-socket.js"

export interface WirePeer {
  readonly socket: net.Socket
  /** Sends one frame: the text and a NUL. */
  readonly send: (text: string) => void
  /** The next frame's text, or undefined once the other side has ended the stream. */
  readonly next: Effect.Effect<string | undefined, Error>
  /** The next frame that is not a heartbeat. */
  readonly nextNonHeartbeat: Effect.Effect<string | undefined, Error>
}

export const wirePeer = (socket: net.Socket): WirePeer => {
  const framed = makeFramedSocket(socket)
  const next = Effect.map(framed.readFrame, (frame) => Option.getOrUndefined(Option.map(frame, (body) => body.toString("utf8"))))
  const nextNonHeartbeat: Effect.Effect<string | undefined, Error> = Effect.flatMap(next, (text) =>
    text === "\"Heartbeat\"" ? nextNonHeartbeat : Effect.succeed(text))
  return {
    socket,
    send: (text) => socket.write(`${text}\0`),
    next,
    nextNonHeartbeat
  }
}
