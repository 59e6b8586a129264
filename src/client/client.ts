/**
 * `spore local`: keeps a tunnel open and serves every visitor the server announces.
 */
import { Effect, FiberSet, Option } from "effect"
import { ControlConnectionLost } from "../errors.js"
import { readMessage } from "../net/framed-socket.js"
import { makeAuthenticator } from "../protocol/auth.js"
import { decodeServerMessage } from "../protocol/messages.js"
import type { ClientConfig } from "./config.js"
import { forwardVisitor } from "./data-connection.js"
import { requestTunnel, type TunnelHandshake } from "./handshake.js"

export interface ClientTunnel {
  /** The public port the server gave us. */
  readonly remotePort: number
  /**
   * Serves visitors until the control connection ends (that is a failure: the tunnel is gone).
   * Visitors already connected keep flowing until the scope closes.
   */
  readonly serve: Effect.Effect<never, ControlConnectionLost>
}

/** Opens the tunnel; its sockets live as long as the scope. */
export const openTunnel = (config: ClientConfig) =>
  Effect.gen(function*() {
    const auth = Option.map(config.secret, makeAuthenticator)
    const handshake = yield* requestTunnel(config, auth)
    const visitors = yield* FiberSet.make<void, never>()
    return {
      remotePort: handshake.remotePort,
      serve: serveControl(handshake, (id) => FiberSet.run(visitors, forwardVisitor(config, auth, id)))
    } satisfies ClientTunnel
  })

/** The control loop: ignore heartbeats, start a data connection for each `Connection`. */
const serveControl = (
  { control }: TunnelHandshake,
  onVisitor: (id: Parameters<typeof forwardVisitor>[2]) => Effect.Effect<unknown>
): Effect.Effect<never, ControlConnectionLost> =>
  Effect.gen(function*() {
    while (true) {
      const next = yield* readMessage(control, decodeServerMessage)
      if (Option.isNone(next)) return yield* new ControlConnectionLost({ reason: "the server closed it" })
      const message = next.value
      switch (message._tag) {
        case "Heartbeat":
          break
        case "Connection":
          yield* Effect.logDebug(`new visitor ${message.id}`)
          yield* onVisitor(message.id)
          break
        case "Error":
          yield* Effect.logError(`server error: ${message.message}`)
          break
        default:
          yield* Effect.logWarning(`unexpected ${message._tag} on the control connection; ignored`)
      }
    }
  }).pipe(
    Effect.catchTags({
      FrameTooLong: (error) => new ControlConnectionLost({ reason: error.message }),
      MessageParseError: (error) => new ControlConnectionLost({ reason: `${error.message}: ${error.reason}` }),
      SocketError: (error) => new ControlConnectionLost({ reason: error.message })
    })
  )
