/**
 * The server's control port: the listener every client's control connection, data stream and
 * warm pool stream arrives on (bore's 7835), each served by `handleConnection`.
 */
import { Context, Effect, Layer, Option } from "effect"
import { listenManaged } from "../net/listener.js"
import { makeAuthenticator } from "../protocol/auth.js"
import type { ServerConfig } from "./config.js"
import { handleConnection } from "./connection.js"

/** The control listener, accepting: the port it bound. */
export class ControlListener extends Context.Tag("spore/ControlListener")<ControlListener, {
  /** The control port actually bound (differs from the configured one when that was 0). */
  readonly port: number
}>() {}

/** Binds the control port and serves it until the scope closes. */
export const make = (config: ServerConfig) =>
  Effect.gen(function*() {
    const auth = Option.map(config.secret, makeAuthenticator)
    const listener = yield* listenManaged({ host: config.bindAddr, port: config.controlPort, buffers: config.buffers }, handleConnection(auth))
    yield* Effect.logInfo(
      `server listening on ${config.bindAddr}:${listener.port}, tunnel ports ${config.minPort}-${config.maxPort}` +
        (Option.isSome(config.secret) ? ", secret required" : "")
    )
    return ControlListener.of({ port: listener.port })
  })

export const layer = (config: ServerConfig) => Layer.scoped(ControlListener, make(config))
