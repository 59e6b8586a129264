/**
 * bore's server as a Spore client sees it after the handshake: it answers the first frame with
 * a Hello and a heartbeat, and never answers Spore's extension offer (bore never reads there).
 */
import * as net from "node:net"
import { Effect } from "effect"
import { LOOPBACK } from "./net.js"

/** Listens on 127.0.0.1 for the scope's life; returns its port. */
export const fakeBoreServer = Effect.map(
  Effect.acquireRelease(
    Effect.async<net.Server>((resume) => {
      const server = net.createServer((socket) => {
        socket.once("data", () => void socket.write("{\"Hello\":20999}\0\"Heartbeat\"\0"))
        socket.on("error", () => {})
      })
      server.listen(0, LOOPBACK, () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  ),
  (server) => (server.address() as net.AddressInfo).port
)
