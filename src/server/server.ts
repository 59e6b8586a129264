/**
 * `spore server`: the control listener, serving tunnels and data streams until interrupted.
 */
import { Effect, Layer, Option, type Scope } from "effect"
import type { BindError } from "../errors.js"
import * as DescriptorWatch from "../net/descriptor-watch.js"
import { listen } from "../net/listener.js"
import { makeAuthenticator } from "../protocol/auth.js"
import * as Admission from "./admission.js"
import type { ServerConfig } from "./config.js"
import { handleConnection } from "./connection.js"
import * as PendingRegistry from "./pending-registry.js"
import * as Tunnels from "./tunnels.js"

export interface RunningServer {
  /** The control port actually bound (useful when the config asked for 0). */
  readonly controlPort: number
}

/** Starts the server; it serves until the scope closes, which closes every socket it opened. */
export const start = (config: ServerConfig): Effect.Effect<RunningServer, BindError, Scope.Scope> =>
  Effect.gen(function*() {
    const auth = Option.map(config.secret, makeAuthenticator)
    // Built in the server's scope: tunnels and waiting visitors live as long as the server.
    const services = yield* Layer.build(Layer.mergeAll(
      Tunnels.layer(config).pipe(Layer.provideMerge(PendingRegistry.layer)),
      Admission.layer(config.limits),
      DescriptorWatch.layer
    ))
    const control = yield* listen({ host: config.bindAddr, port: config.controlPort, buffers: config.buffers }, handleConnection(auth)).pipe(
      Effect.provide(services)
    )
    yield* Effect.logInfo(
      `server listening on ${config.bindAddr}:${control.port}, tunnel ports ${config.minPort}-${config.maxPort}` +
        (Option.isSome(config.secret) ? ", secret required" : "")
    )
    return { controlPort: control.port }
  })
