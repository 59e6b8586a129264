/**
 * Running clients in tests: what a client needs from its program, and a tunnel opened the way
 * `spore local --no-reconnect` opens it, served in the background.
 */
import { Deferred, Effect, Fiber, Layer } from "effect"
import * as Client from "../../src/client/client.js"
import * as ClientMetrics from "../../src/client/client-metrics.js"
import type { ClientConfig } from "../../src/client/config.js"
import * as LocalRelay from "../../src/client/local-relay.js"
import * as Drain from "../../src/net/drain.js"

/** A drain, metrics nobody serves, and the plain byte splice to the local service (`spore local`'s). */
export const clientLayer = Layer.mergeAll(Drain.layer, ClientMetrics.layer, LocalRelay.spliceLayer)

/**
 * Runs a client without reconnection for the rest of the scope and waits until its tunnel
 * listens: returns the public port and the running client, which fails when the tunnel is lost.
 * Fails as the client does if it never gets that far (a refusal, say).
 */
export const runTunnel = (config: ClientConfig) =>
  Effect.gen(function*() {
    const listening = yield* Deferred.make<number>()
    const running = yield* Effect.forkScoped(
      Client.run({ ...config, reconnect: false }, (status) =>
        status._tag === "Listening" ? Deferred.succeed(listening, status.port) : Effect.void).pipe(Effect.provide(clientLayer))
    )
    const port = yield* Effect.raceFirst(Deferred.await(listening), Fiber.join(running))
    return { port, running }
  })
