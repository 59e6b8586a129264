/**
 * One visitor on the client side: a new stream to the server that claims the visitor with
 * `Accept`, then a connection to the local service, spliced together.
 */
import { Effect, type Option } from "effect"
import { connect } from "../net/socket.js"
import { splice } from "../net/splice.js"
import type { Authenticator } from "../protocol/auth.js"
import { ClientMessages, encodeClientMessage } from "../protocol/messages.js"
import type { Uuid } from "../protocol/uuid.js"
import type { ClientConfig } from "./config.js"
import { openStream } from "./handshake.js"

/**
 * Serves visitor `id` until both directions are done. If the local service cannot be reached the
 * data stream is closed, so the visitor sees a close; the tunnel itself carries on.
 */
export const forwardVisitor = (
  config: ClientConfig,
  auth: Option.Option<Authenticator>,
  id: Uuid
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const stream = yield* openStream(config, auth)
    yield* stream.writeFrame(encodeClientMessage(ClientMessages.accept(id)))
    const local = yield* connect(config.localHost, config.localPort, config.buffers)
    // Visitor bytes that arrived with the server's challenge go to the local service first.
    yield* splice(stream.socket, local, stream.release())
  }).pipe(
    Effect.catchAll((error) => Effect.logWarning(`visitor ${id} dropped: ${error.message}`)),
    Effect.scoped
  )
