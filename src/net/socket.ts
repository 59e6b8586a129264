/**
 * TCP sockets as scoped resources: closing the scope that opened a socket destroys it.
 */
import * as net from "node:net"
import { Duration, Effect, Scope } from "effect"
import { ConnectError } from "../errors.js"
import { applyBuffers, DEFAULT_BUFFERS, type SocketBuffers } from "./tuning.js"

/** bore's NETWORK_TIMEOUT: for connects and for the first frame expected on any stream. */
export const NETWORK_TIMEOUT = Duration.seconds(3)

/**
 * Options every Spore socket gets before data flows: Nagle off (control frames are tiny and
 * latency-sensitive, and payload is written in large chunks anyway), and the buffer sizes asked
 * for. (Half-close is kept open where each socket is made: `allowHalfOpen`.)
 */
export const prepareSocket = (socket: net.Socket, buffers: SocketBuffers): net.Socket => {
  socket.setNoDelay(true)
  applyBuffers(socket, buffers)
  return socket
}

/** Connects to host:port within NETWORK_TIMEOUT; the socket lives as long as the scope. */
export const connect = (
  host: string,
  port: number,
  buffers: SocketBuffers = DEFAULT_BUFFERS
): Effect.Effect<net.Socket, ConnectError, Scope.Scope> =>
  // Not acquireRelease: its acquire is uninterruptible, so the timeout could never stop a
  // connect that hangs. Only the dial is interruptible; the finalizer is added before anything
  // else can interrupt.
  Effect.uninterruptibleMask((restore) =>
    restore(dial(host, port, buffers)).pipe(
      Effect.tap((socket) => Effect.addFinalizer(() => Effect.sync(() => socket.destroy())))
    )
  )

/**
 * Calls `settle` once, with the socket prepared when it has connected, or with the connect's
 * error (the socket then destroyed).
 */
const whenConnected = (
  socket: net.Socket,
  target: { readonly host: string; readonly port: number; readonly buffers: SocketBuffers },
  settle: (outcome: net.Socket | ConnectError) => void
) => {
  const onConnect = () => {
    socket.off("error", onError)
    settle(prepareSocket(socket, target.buffers))
  }
  const onError = (error: NodeJS.ErrnoException) => {
    socket.off("connect", onConnect)
    socket.destroy()
    settle(new ConnectError({ host: target.host, port: target.port, reason: error.code ?? error.message }))
  }
  socket.once("connect", onConnect)
  socket.once("error", onError)
}

const timedOut = (host: string, port: number) => new ConnectError({ host, port, reason: "timed out" })

const asEffect = (outcome: net.Socket | ConnectError) =>
  outcome instanceof ConnectError ? Effect.fail(outcome) : Effect.succeed(outcome)

const dial = (host: string, port: number, buffers: SocketBuffers): Effect.Effect<net.Socket, ConnectError> =>
  Effect.async<net.Socket, ConnectError>((resume) => {
    const socket = net.connect({ host, port, allowHalfOpen: true })
    whenConnected(socket, { host, port, buffers }, (outcome) => resume(asEffect(outcome)))
    return Effect.sync(() => socket.destroy())
  }).pipe(
    Effect.timeoutFail({ duration: NETWORK_TIMEOUT, onTimeout: () => timedOut(host, port) })
  )

/** A connect begun in the background; see `beginConnect`. */
export interface PendingConnect {
  /**
   * The connected socket: at once if the connect has finished, else within NETWORK_TIMEOUT from
   * now. Fails with the connect's error either way.
   */
  readonly connected: Effect.Effect<net.Socket, ConnectError>
}

/**
 * Starts connecting to host:port now and returns without waiting, so that other work (a data
 * stream's own connect and handshake) overlaps it without a fiber of its own; the socket lives
 * as long as the scope. Cheaper than forking `connect`: no fiber, and no timer at all when the
 * connect has finished by the time it is needed, as a local service's nearly always has.
 */
export const beginConnect = (
  host: string,
  port: number,
  buffers: SocketBuffers = DEFAULT_BUFFERS
): Effect.Effect<PendingConnect, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(Effect.sync(() => net.connect({ host, port, allowHalfOpen: true })), (socket) => Effect.sync(() => socket.destroy())),
    (socket) => {
      let outcome: net.Socket | ConnectError | undefined
      const waiting: Array<() => void> = []
      whenConnected(socket, { host, port, buffers }, (settled) => {
        outcome = settled
        for (const wake of waiting.splice(0)) wake()
      })
      const connected = Effect.suspend(() => {
        if (outcome !== undefined) return asEffect(outcome)
        return Effect.async<void>((resume) => {
          const wake = () => resume(Effect.void)
          waiting.push(wake)
          return Effect.sync(() => {
            const index = waiting.indexOf(wake)
            if (index >= 0) waiting.splice(index, 1)
          })
        }).pipe(
          Effect.timeoutFail({ duration: NETWORK_TIMEOUT, onTimeout: () => timedOut(host, port) }),
          Effect.flatMap(() => asEffect(outcome!))
        )
      })
      return { connected }
    }
  )

/** Writes bytes and waits until Node has handed them to the kernel. */
export const write = (socket: net.Socket, bytes: Uint8Array): Effect.Effect<void, Error> =>
  Effect.async<void, Error>((resume) => {
    socket.write(bytes, (error) => resume(error ? Effect.fail(error) : Effect.void))
  })

/**
 * Resolves when the peer has ended or closed the socket (or it failed), discarding anything it
 * sends meanwhile. A server watches a tunnel's control stream this way: bore never reads it after
 * the Hello, so its content does not matter, but its end frees the tunnel at once.
 */
export const untilPeerEnded = (socket: net.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (socket.destroyed || socket.readableEnded) return resume(Effect.void)
    const ignore = () => {}
    const done = () => {
      stop()
      resume(Effect.void)
    }
    const stop = () => {
      socket.off("data", ignore)
      socket.off("end", done)
      socket.off("close", done)
      socket.off("error", done)
    }
    socket.on("data", ignore)
    socket.once("end", done)
    socket.once("close", done)
    socket.once("error", done)
    socket.resume()
    return Effect.sync(stop)
  })

/**
 * Resolves when the socket has closed (at once if it has been destroyed), adding no reader: for
 * a socket whose bytes another reader consumes (the front hands API connections to Node's HTTP
 * server and waits for them here).
 */
export const untilSocketClosed = (socket: net.Socket): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (socket.destroyed) return resume(Effect.void)
    socket.once("close", () => resume(Effect.void))
  })
