/**
 * The server's control port: the listener every client's control connection, data stream and
 * warm pool stream arrives on (bore's 7835), each served by `handleConnection`; and with a
 * certificate, the TLS control port beside it, served the same way once the TLS is unwrapped.
 *
 * Plaintext and TLS are two ports, not one port that sniffs: a bore client with a secret sends
 * nothing until it has read our challenge, so a port that waited to see whether a TLS ClientHello
 * comes first would cost every bore peer that wait. On two ports neither kind waits for the other.
 */
import type * as net from "node:net"
import { Context, Effect, Layer, Option } from "effect"
import { tlsRequiredText } from "../errors.js"
import { listenManaged } from "../net/listener.js"
import { secureServerSocket } from "../net/tls.js"
import { makeAuthenticator } from "../protocol/auth.js"
import { encodeServerMessage, ServerMessages } from "../protocol/messages.js"
import { OperatorCertificate } from "../net/certificate-store.js"
import type { ServerConfig } from "./config.js"
import { handleConnection } from "./connection.js"

/** The control listener, accepting: the ports it bound. */
export class ControlListener extends Context.Tag("spore/ControlListener")<ControlListener, {
  /** The plaintext control port actually bound (differs from the configured one when that was 0). */
  readonly port: number
  /** The TLS control port actually bound, when the server has a certificate. */
  readonly tlsPort: Option.Option<number>
  /** Reads the certificate files again (what SIGHUP does), when the server has a certificate. */
  readonly reloadCertificate: Effect.Effect<void>
}>() {}

/**
 * With `--require-tls`, the plaintext port's whole answer: bore's Error frame saying where to go
 * (a bore client prints it), then a close. Written at once: a client with a secret waits for us.
 */
const refusePlaintext = (tlsPort: number) => {
  const frame = encodeServerMessage(ServerMessages.error(tlsRequiredText(tlsPort)))
  // Waits for the frame to reach the kernel: the listener destroys the socket when this returns.
  return (socket: net.Socket) =>
    Effect.async<void>((resume) => {
      socket.once("error", () => resume(Effect.void))
      socket.end(frame, () => resume(Effect.void))
    })
}

/** Binds the control port (and the TLS one) and serves them until the scope closes. */
export const make = (config: ServerConfig) =>
  Effect.gen(function*() {
    const auth = Option.map(config.secret, makeAuthenticator)
    const serve = handleConnection(auth)
    const listenOn = <R>(port: number, handle: (socket: net.Socket) => Effect.Effect<void, never, R>) =>
      listenManaged({ host: config.bindAddr, port, buffers: config.buffers }, handle)

    if (Option.isNone(config.tls)) {
      const listener = yield* listenOn(config.controlPort, serve)
      yield* Effect.logInfo(`server listening on ${config.bindAddr}:${listener.port}, tunnel ports ${config.minPort}-${config.maxPort}${secretNote(config)}`)
      return ControlListener.of({ port: listener.port, tlsPort: Option.none(), reloadCertificate: Effect.void })
    }
    const tls = config.tls.value
    // Built from the same files as config.tls (cli/layers.ts), shared with the HTTPS front.
    const certificates = Option.getOrThrowWith(
      yield* OperatorCertificate,
      () => new Error("TLS asked for without its certificate: cli/layers.ts builds both from the same flags")
    )
    const tlsListener = yield* listenOn(tls.port, (socket) =>
      Effect.suspend(() => {
        const secure = secureServerSocket(socket, { context: certificates.current() })
        return Effect.ensuring(serve(secure), Effect.sync(() => secure.destroy()))
      }))
    const plain = yield* listenOn(config.controlPort, tls.require ? refusePlaintext(tlsListener.port) : serve)
    yield* Effect.logInfo(
      `server listening on ${config.bindAddr}:${plain.port}` +
        (tls.require ? " (refusing plaintext: --require-tls)" : "") +
        ` and with TLS on ${config.bindAddr}:${tlsListener.port}, tunnel ports ${config.minPort}-${config.maxPort}${secretNote(config)}`
    )
    return ControlListener.of({ port: plain.port, tlsPort: Option.some(tlsListener.port), reloadCertificate: certificates.reload })
  })

const secretNote = (config: ServerConfig) => Option.isSome(config.secret) ? ", secret required" : ""

export const layer = (config: ServerConfig) => Layer.scoped(ControlListener, make(config))
