/**
 * Listening sockets as scoped resources.
 *
 * Each accepted connection is handled by its own fiber, supervised by the listener: closing the
 * listener's scope stops accepting and interrupts every handler.
 *
 * Handler fibers start uninterruptible, so whatever a handler does first (install a finalizer,
 * register the socket somewhere) always happens, even if the listener closes at that instant.
 */
import * as net from "node:net"
import { Effect, ExecutionStrategy, Exit, FiberSet, Scope } from "effect"
import { BindError } from "../errors.js"
import { DescriptorWatch, exhaustionOf } from "./descriptor-watch.js"
import { Drain } from "./drain.js"
import { prepareSocket } from "./socket.js"
import { applyBuffers, DEFAULT_BUFFERS, type SocketBuffers } from "./tuning.js"

export interface ListenOptions {
  readonly host: string
  readonly port: number
  /**
   * Leave accepted sockets unread until someone reads them (visitors wait for their tunnel's
   * client without us buffering what they send).
   */
  readonly pauseOnConnect?: boolean
  /**
   * Who closes accepted sockets. "listener" (the default): the socket is destroyed when its
   * handler ends, and the handler is interruptible. "handler": the handler takes the socket
   * over (a visitor waiting to be claimed outlives the fiber that accepted it); it then runs
   * uninterruptibly and must be short.
   */
  readonly socketOwner?: "listener" | "handler"
  /** SO_SNDBUF / SO_RCVBUF for the listening socket and every socket it accepts. */
  readonly buffers?: SocketBuffers
  /** What an accept error, once bound, becomes (default: a warning); it is never fatal. */
  readonly onAcceptError?: (error: Error) => Effect.Effect<void>
}

export interface Listener {
  /** The port actually bound (differs from the requested one when that was 0). */
  readonly port: number
  /** Stops accepting; connections already accepted are left to their handlers. */
  readonly stopAccepting: () => void
}

/**
 * Binds host:port and runs `handle` for each accepted socket in its own fiber. A failed bind
 * leaves nothing behind in the caller's scope, so callers may retry with other ports.
 */
export const listen = <R>(
  options: ListenOptions,
  handle: (socket: net.Socket) => Effect.Effect<void, never, R>
): Effect.Effect<Listener, BindError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    return yield* bind(options, handle).pipe(
      Scope.extend(scope),
      Effect.onError((cause) => Scope.close(scope, Exit.failCause(cause)))
    )
  })

/**
 * Connections the kernel may hold completed for us before we accept them: Node's default is 511,
 * bore's (tokio's) 1024; a burst of a thousand visitors should not wait out SYN retries. The
 * kernel caps it at net.core.somaxconn.
 */
export const LISTEN_BACKLOG = 4096

/** Binds a server (net or http) to host:port; the errno name of a failure is the BindError's code. */
export const bindServer = (server: net.Server, host: string, port: number): Effect.Effect<void, BindError> =>
  Effect.async<void, BindError>((resume) => {
    const onError = (error: NodeJS.ErrnoException) =>
      resume(Effect.fail(new BindError({ host, port, code: error.code ?? "EUNKNOWN" })))
    server.once("error", onError)
    server.listen({ host, port, backlog: LISTEN_BACKLOG }, () => {
      server.off("error", onError)
      resume(Effect.void)
    })
  })

const bind = <R>(
  options: ListenOptions,
  handle: (socket: net.Socket) => Effect.Effect<void, never, R>
): Effect.Effect<Listener, BindError, R | Scope.Scope> =>
  Effect.gen(function*() {
    const handlers = yield* FiberSet.make<void, never>()
    // Captured while uninterruptible: fibers forked through `run` start uninterruptible.
    const run = yield* Effect.uninterruptible(FiberSet.runtime(handlers)<R>())
    const serve = options.socketOwner === "handler"
      ? handle
      : (socket: net.Socket) =>
        Effect.ensuring(Effect.interruptible(handle(socket)), Effect.sync(() => socket.destroy()))
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: options.pauseOnConnect ?? false })
    const buffers = options.buffers ?? DEFAULT_BUFFERS
    server.on("connection", (socket) => {
      prepareSocket(socket, buffers)
      // A socket error before the handler attaches its own listeners must not crash the process.
      socket.on("error", () => {})
      run(serve(socket))
    })
    yield* Effect.acquireRelease(
      bindServer(server, options.host, options.port).pipe(
        // Set on the listening socket too, so accepted sockets have them from the handshake.
        Effect.tap(() => Effect.forEach(applyBuffers(server, buffers), (warning) => Effect.logWarning(warning)))
      ),
      // Stop accepting at once; the connections still open are the handlers' to close (waiting
      // for them here would deadlock, since the handlers are interrupted after this runs).
      () => Effect.sync(() => server.close())
    )
    // Once bound, accept errors are reported, not fatal.
    const onAcceptError = options.onAcceptError ??
      ((error: Error) => Effect.logWarning(`accept failed on port ${options.port}: ${error.message}`))
    server.on("error", (error) => run(onAcceptError(error)))
    return { port: (server.address() as net.AddressInfo).port, stopAccepting: () => server.close() }
  })

/**
 * `listen` for the listeners of a server program, which has a drain and a descriptor watch:
 * the drain (graceful shutdown) stops it accepting at once, leaving the connections already
 * accepted to their handlers, which the drain waits for; running out of descriptors goes to the
 * watch, which says so once per episode instead of once per failed accept.
 */
export const listenManaged = <R>(
  options: Omit<ListenOptions, "onAcceptError">,
  handle: (socket: net.Socket) => Effect.Effect<void, never, R>
): Effect.Effect<Listener, BindError, R | Drain | DescriptorWatch | Scope.Scope> =>
  Effect.gen(function*() {
    const drain = yield* Drain
    const watch = yield* DescriptorWatch
    const listener = yield* listen({
      ...options,
      onAcceptError: (error) => {
        const exhaustion = exhaustionOf(error)
        return exhaustion !== undefined
          ? watch.report(exhaustion)
          : Effect.logWarning(`accept failed on port ${options.port}: ${error.message}`)
      }
    }, handle)
    yield* drain.onStart(listener.stopAccepting)
    return listener
  })
