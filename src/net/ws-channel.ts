/**
 * A data channel: one visitor's bytes over a WebSocket, as binary messages both ways.
 *
 * WebSocket has no half-close, but HTTP needs one (a visitor that sends its request and FIN, a
 * local app that closes after its response, the relay moving a keep-alive connection to another
 * tunnel). A channel is framed one of two ways, agreed on the control connection (FRAMING_HEADER):
 *
 * - "half-close", Spore's own: "no more bytes from this side" is an empty binary message, and once
 *   both sides have sent theirs the channel is closed normally (1000). Any other close, or a
 *   socket error, ends both sides at once. Keep-alive requests share the channel.
 * - "close-ends", NullBore's: no EOF message (its peers do not know it); the client closes the
 *   channel when the local app has ended its response, and that close is the response's end.
 *   The front sends one request per channel, with `Connection: close`.
 *
 * Spore's client asks for half-close on its control connection and gets it only when the server
 * answers with the same header: a NullBore server ignores the header, a NullBore client never
 * sends it, so each side knows what the other speaks and neither guesses.
 *
 * Backpressure both ways: a sender stops reading its socket while more than HIGH_WATER bytes
 * are queued on the WebSocket, and a receiver pauses the WebSocket while its socket's write
 * buffer is full. Bytes never pass through an Effect Stream or Queue (DESIGN.md).
 */
import type * as net from "node:net"
import { Effect } from "effect"
import type { WebSocket } from "ws"

/** Queued bytes on a WebSocket above which its source socket is paused. */
export const HIGH_WATER = 1024 * 1024

/** The largest message the front accepts (Spore sends at most a socket read, 64 KiB; NullBore 32 KiB). */
export const MAX_MESSAGE_BYTES = 1024 * 1024

/**
 * The largest message `spore http` accepts from its server. A NullBore server sends a request's
 * head and whole body as one message (its bodies go up to 25 MiB self-hosted, more on paid plans);
 * the client chose that server, so it is trusted this far.
 */
export const MAX_SERVER_MESSAGE_BYTES = 128 * 1024 * 1024

/** The close code of a control connection whose tunnel's time is up: its client must not come back (NullBore's). */
export const EXPIRED_CLOSE_CODE = 1000

/** How a channel marks its ends (see above). */
export type Framing = "half-close" | "close-ends"

/** The header on the control connection's upgrade, both ways, by which Spore's peers agree on half-close. */
export const FRAMING_HEADER = "X-Spore-Framing"

/** What a request or response with FRAMING_HEADER says (absent: NullBore's close-ends). */
export const framingOf = (value: string | ReadonlyArray<string> | undefined): Framing =>
  (Array.isArray(value) ? value[0] : value)?.trim().toLowerCase() === "half-close" ? "half-close" : "close-ends"

const EOF = new Uint8Array(0)

/** The sending half of a channel, with its backpressure. */
export interface ChannelSender {
  /** Queues bytes; false when the caller should wait for `whenDrained` before sending more. */
  readonly send: (bytes: Uint8Array) => boolean
  /** Calls `resume` once the queue is below HIGH_WATER (at once if it is). */
  readonly whenDrained: (resume: () => void) => void
  /** No more bytes from this side. */
  readonly end: () => void
  /** Bytes sent so far. */
  readonly sent: () => number
}

/**
 * A WebSocket whose messages are held from the moment it exists until a channel takes them. The
 * far side may send as soon as the handshake is done, and between that and the channel being set
 * up (a claim, a fiber resuming) a message with no listener would be lost.
 */
export interface HeldWebSocket {
  readonly ws: WebSocket
  /** Hands every message, the held ones first, to `handler` from now on. */
  readonly takeMessages: (handler: (data: Buffer, isBinary: boolean) => void) => void
}

export const holdMessages = (ws: WebSocket): HeldWebSocket => {
  const held: Array<[Buffer, boolean]> = []
  let handler: ((data: Buffer, isBinary: boolean) => void) | undefined
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    if (handler === undefined) held.push([data, isBinary])
    else handler(data, isBinary)
  })
  return {
    ws,
    takeMessages: (next) => {
      handler = next
      for (const [data, isBinary] of held.splice(0)) next(data, isBinary)
    }
  }
}

/** Runs `f` once the WebSocket has closed (at once if it has), with its close code. */
export const onClosed = (ws: WebSocket, f: (code: number) => void) => {
  if (ws.readyState === ws.CLOSED) f(1006)
  else ws.once("close", (code: number) => f(code))
}

/** An open channel: our sending half and what we know of the far side. */
export interface ChannelState {
  readonly sender: ChannelSender
  /** Bytes received so far. */
  readonly received: () => number
  /** Whether the far side has sent its EOF. */
  readonly farEnded: () => boolean
  /** Whether both sides have sent their EOF (the channel ended cleanly). */
  readonly bothEnded: () => boolean
  readonly framing: Framing
}

/**
 * Starts a channel over `ws`: the far side's bytes go into `socket`, and the returned sender
 * carries ours. With half-close, `onFarEof` runs when the far side has sent everything (default:
 * end the socket's write half). With close-ends there is no EOF message: our end sends nothing,
 * and the far side's end is the channel's close, which the caller handles. `transform` may
 * rewrite the far side's bytes on their way into the socket (a response head, response-head.ts);
 * what it still holds at the far end is written out then.
 */
export const openChannel = (
  { takeMessages, ws }: HeldWebSocket,
  socket: net.Socket,
  onFarEof?: () => void,
  framing: Framing = "half-close",
  transform?: { readonly push: (chunk: Buffer) => Buffer; readonly flush: () => Buffer }
): ChannelState => {
  const halfClose = framing === "half-close"
  let queued = 0
  let sent = 0
  let received = 0
  let ourEof = false
  let farEof = false
  const waiting: Array<() => void> = []

  const closeIfDone = () => {
    if (halfClose && ourEof && farEof && ws.readyState === ws.OPEN) ws.close(1000)
  }

  const sender: ChannelSender = {
    send: (bytes) => {
      if (ourEof || ws.readyState !== ws.OPEN || bytes.length === 0) return true
      queued += bytes.length
      sent += bytes.length
      ws.send(bytes, { binary: true }, () => {
        queued -= bytes.length
        if (queued < HIGH_WATER) for (const resume of waiting.splice(0)) resume()
      })
      return queued < HIGH_WATER
    },
    whenDrained: (resume) => {
      if (queued < HIGH_WATER) resume()
      else waiting.push(resume)
    },
    end: () => {
      if (ourEof) return
      ourEof = true
      if (halfClose && ws.readyState === ws.OPEN) ws.send(EOF, { binary: true })
      closeIfDone()
    },
    sent: () => sent
  }

  takeMessages((data, isBinary) => {
    if (farEof || !isBinary) return
    if (data.length === 0 && !halfClose) return
    if (data.length === 0) {
      farEof = true
      const rest = transform?.flush()
      if (rest !== undefined && rest.length > 0 && !socket.destroyed) socket.write(rest)
      if (onFarEof !== undefined) onFarEof()
      else if (!socket.destroyed) socket.end()
      closeIfDone()
      return
    }
    received += data.length
    if (socket.destroyed) return
    const bytes = transform === undefined ? data : transform.push(data)
    if (bytes.length > 0 && !socket.write(bytes)) {
      ws.pause()
      socket.once("drain", () => ws.resume())
    }
  })
  ws.on("error", () => {})
  if (!halfClose) {
    onClosed(ws, () => {
      farEof = true
      const rest = transform?.flush()
      if (rest !== undefined && rest.length > 0 && !socket.destroyed) socket.write(rest)
    })
  }

  return { sender, received: () => received, farEnded: () => farEof, bothEnded: () => ourEof && farEof, framing }
}

/** Sends what `socket` reads into the channel, with backpressure, and its EOF at the end. */
export const pipeSocketInto = (socket: net.Socket, sender: ChannelSender): void => {
  socket.on("data", (chunk: Buffer) => {
    if (!sender.send(chunk)) {
      socket.pause()
      sender.whenDrained(() => socket.resume())
    }
  })
  socket.once("end", () => sender.end())
}

/** Resolves when the WebSocket has closed (at once if it has). */
export const untilWebSocketClosed = (ws: WebSocket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (ws.readyState === ws.CLOSED) return resume(Effect.void)
    ws.once("close", () => resume(Effect.void))
  })

/**
 * The client's side: the local service's socket and the channel copied into each other until
 * both are done. A channel closed before both EOFs, or a socket error, aborts both.
 * Interrupting it aborts both too.
 *
 * With close-ends (a NullBore server) the local app ending its response closes the channel
 * (once what it sent has gone out), and a channel the server closes first aborts the socket: its
 * visitor has gone.
 */
export const spliceChannel = (socket: net.Socket, held: HeldWebSocket, framing: Framing = "half-close"): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const { ws } = held
    let open = 2
    const abort = () => {
      socket.destroy()
      if (ws.readyState !== ws.CLOSED) ws.terminate()
    }
    const done = () => {
      open -= 1
      if (open === 0) resume(Effect.void)
    }
    const channel = openChannel(held, socket, undefined, framing)
    pipeSocketInto(socket, channel.sender)
    // The close frame is queued behind the messages already sent.
    if (framing === "close-ends") socket.once("end", () => ws.readyState === ws.OPEN && ws.close(1000))
    socket.once("close", (hadError) => {
      if (hadError) abort()
      done()
    })
    onClosed(ws, () => {
      // A clean end (both EOFs sent) leaves the socket to finish its own close; with close-ends,
      // after our close that followed the app's end, the socket's own half is ended here (no EOF
      // message will do it). Anything else means the far side is gone.
      if (!channel.bothEnded()) socket.destroy()
      else if (framing === "close-ends") socket.end()
      done()
    })
    socket.on("error", abort)
    return Effect.sync(abort)
  })
