/**
 * WebSocket visitors for the HTTP tunnels' tests (the `ws` package, as a browser would speak it).
 */
import { Effect, type Scope } from "effect"
import { WebSocket } from "ws"
import { within } from "./process.js"

/** A WebSocket, open, closed at the end of the scope (or at once if it does not open in time). */
export const openWebSocket = (
  url: string,
  options: ConstructorParameters<typeof WebSocket>[2] = { maxPayload: 8 * 1024 * 1024 }
): Effect.Effect<WebSocket, Error, Scope.Scope> =>
  within(`WebSocket ${url}`, 10, Effect.async<WebSocket, Error>((resume) => {
    const ws = new WebSocket(url, options)
    ws.once("open", () => resume(Effect.succeed(ws)))
    ws.once("error", (error) => resume(Effect.fail(error)))
    ws.once("unexpected-response", (_request, response) =>
      resume(Effect.fail(new Error(`WebSocket refused with ${response.statusCode}`))))
    // Not an acquireRelease: its acquisition could not be interrupted by the timeout.
    return Effect.sync(() => ws.terminate())
  })).pipe(Effect.tap((ws) => Effect.addFinalizer(() => Effect.sync(() => ws.terminate()))))

/** The next message on `ws`. */
export const nextMessage = (ws: WebSocket) =>
  within("a WebSocket message", 10, Effect.async<{ data: Buffer; isBinary: boolean }>((resume) => {
    ws.once("message", (data: Buffer, isBinary: boolean) => resume(Effect.succeed({ data, isBinary })))
  }))

/** Sends `data` and answers what comes back: one round trip through an echo. */
export const echoOf = (ws: WebSocket, data: string | Buffer) =>
  Effect.map(Effect.zipRight(Effect.sync(() => ws.send(data)), nextMessage(ws)), (message) => message.data)
