/**
 * A socket read as bore frames until the caller switches it to raw bytes.
 *
 * Frames are pulled only while someone waits for one; between reads the socket is paused, so what
 * a peer sends meanwhile stays in Node's own buffer (which stops reading at its high-water mark)
 * or in the kernel. `release` ends framing and hands back the bytes already read past the last
 * frame: they belong to the payload that follows `Accept`.
 */
import type * as net from "node:net"
import { Effect, type Either, Option } from "effect"
import { FrameTooLong, HandshakeTimeout, type MessageParseError, SocketError } from "../errors.js"
import { encodeFrame, FrameBuffer } from "../protocol/framing.js"
import { NETWORK_TIMEOUT, write } from "./socket.js"

export interface FramedSocket {
  readonly socket: net.Socket
  /** The next frame body, or None once the peer has ended the stream. */
  readonly readFrame: Effect.Effect<Option.Option<Buffer>, FrameTooLong | SocketError>
  /** Writes one frame (text plus NUL) and waits until it is handed to the kernel. */
  readonly writeFrame: (text: string) => Effect.Effect<void, SocketError>
  /** Writes frames in one write, so that they travel together (one TCP segment when small). */
  readonly writeFrames: (texts: ReadonlyArray<string>) => Effect.Effect<void, SocketError>
  /**
   * The next frame if it has already arrived, without waiting for more: what a peer pipelined
   * behind the frame just read.
   */
  readonly takeArrivedFrame: () => Option.Option<Buffer>
  /** Stops framing: the bytes read past the last frame, with the socket left paused. */
  readonly release: () => Buffer
}

export const makeFramedSocket = (socket: net.Socket): FramedSocket => {
  const frames = new FrameBuffer()
  let ended = false

  const takeFrame = (): Option.Option<Buffer> | FrameTooLong | undefined => {
    if (ended) {
      const last = frames.takeFinalFrame()
      return last === "TooLong" ? new FrameTooLong() : Option.fromNullable(last)
    }
    const next = frames.takeFrame()
    if (next._tag === "Frame") return Option.some(next.body)
    if (next._tag === "TooLong") return new FrameTooLong()
    return undefined
  }

  const readFrame = Effect.async<Option.Option<Buffer>, FrameTooLong | SocketError>((resume) => {
    const settle = (result: Option.Option<Buffer> | FrameTooLong | SocketError) => {
      stop()
      resume(Option.isOption(result) ? Effect.succeed(result) : Effect.fail(result))
    }
    const onData = (chunk: Buffer) => {
      frames.push(chunk)
      const result = takeFrame()
      if (result !== undefined) settle(result)
    }
    const onEnd = () => {
      ended = true
      settle(takeFrame() ?? Option.none())
    }
    const onError = (error: Error) => settle(new SocketError({ reason: error.message, cause: error }))
    const onClose = () => onEnd()
    const stop = () => {
      socket.pause()
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("error", onError)
      socket.off("close", onClose)
    }

    if (socket.destroyed || socket.readableEnded) ended = true
    const ready = takeFrame()
    if (ready !== undefined || ended) {
      const result = ready ?? Option.none()
      resume(Option.isOption(result) ? Effect.succeed(result) : Effect.fail(result))
      return
    }
    socket.on("data", onData)
    socket.once("end", onEnd)
    socket.once("error", onError)
    socket.once("close", onClose)
    socket.resume()
    return Effect.sync(stop)
  })

  const writeFrames = (texts: ReadonlyArray<string>) =>
    write(socket, Buffer.concat(texts.map(encodeFrame))).pipe(
      Effect.mapError((error) => new SocketError({ reason: error.message, cause: error }))
    )

  return {
    socket,
    readFrame,
    writeFrame: (text) => writeFrames([text]),
    writeFrames,
    takeArrivedFrame: () => {
      // What Node holds for the paused socket joins what the frame buffer has.
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) frames.push(chunk)
      const next = frames.takeFrame()
      return next._tag === "Frame" ? Option.some(next.body) : Option.none()
    },
    release: () => {
      socket.pause()
      return frames.takeRemaining()
    }
  }
}

/** Reads the next frame as a message; None once the peer has ended the stream. */
export const readMessage = <A>(
  stream: FramedSocket,
  decode: (body: Uint8Array) => Either.Either<A, MessageParseError>
): Effect.Effect<Option.Option<A>, FrameTooLong | MessageParseError | SocketError> =>
  Effect.flatMap(stream.readFrame, (frame) =>
    Option.isNone(frame) ? Effect.succeedNone : Effect.asSome(decode(frame.value)))

/** Like `readMessage`, for the first message of a stream: it must come within NETWORK_TIMEOUT. */
export const readFirstMessage = <A>(
  stream: FramedSocket,
  decode: (body: Uint8Array) => Either.Either<A, MessageParseError>
): Effect.Effect<Option.Option<A>, HandshakeTimeout | FrameTooLong | MessageParseError | SocketError> =>
  readMessage(stream, decode).pipe(
    Effect.timeoutFail({ duration: NETWORK_TIMEOUT, onTimeout: () => new HandshakeTimeout() })
  )
