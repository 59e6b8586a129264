/**
 * --sndbuf / --recbuf and TCP_NODELAY reach every socket Spore opens or accepts: read back with
 * getsockopt from the live sockets of a tunnel with a visitor connected.
 */
import { describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { Effect, Either, Option } from "effect"
import { parseApiKeys } from "../../src/front/api-keys.js"
import { getSocketOption, getTcpOption, SocketOption, type SocketBuffers } from "../../src/net/tuning.js"
import { clientConfig, dial, echoService, startRunningServer, startServer, startTunnel } from "../support/net.js"

const TCP_NODELAY = 1

/** Every TCP socket alive in this process (Node's own list of active handles). */
const liveSockets = (): Array<net.Socket> =>
  (process as unknown as { _getActiveHandles: () => Array<unknown> })._getActiveHandles()
    .filter((handle): handle is net.Socket => handle instanceof net.Socket && handle.remotePort !== undefined)

/** Spore's sockets in a tunnel, by kind, told apart by their ports. */
const sporeSockets = (ports: { control: number; tunnel: number; local: number }) => {
  const sockets = liveSockets()
  return {
    "server: control and data streams": sockets.filter((s) => s.localPort === ports.control),
    "client: control and data streams": sockets.filter((s) => s.remotePort === ports.control),
    "server: public visitor": sockets.filter((s) => s.localPort === ports.tunnel),
    "client: local service": sockets.filter((s) => s.remotePort === ports.local)
  }
}
type Kinds = ReturnType<typeof sporeSockets>

/** How many of each kind a tunnel with one visitor has (no warm pool): the control and the data stream at each end. */
const COUNTS: Record<keyof Kinds, number> = {
  "server: control and data streams": 2,
  "client: control and data streams": 2,
  "server: public visitor": 1,
  "client: local service": 1
}

/** Runs `check` on every socket of every kind, once each kind is found as many times as it should be. */
const checkEach = (kinds: Kinds, check: (socket: net.Socket, kind: string) => void) => {
  for (const [kind, sockets] of Object.entries(kinds) as Array<[keyof Kinds, Array<net.Socket>]>) {
    expect(sockets, kind).toHaveLength(COUNTS[kind])
    for (const socket of sockets) check(socket, kind)
  }
}

/** A tunnel with one visitor connected and echoed, so that all six kinds of socket exist. */
const tunnelWithVisitor = (buffers: SocketBuffers) =>
  Effect.gen(function*() {
    const local = yield* echoService
    const control = yield* startServer({ buffers })
    const tunnel = yield* startTunnel(clientConfig(control, local, { buffers }))
    const visitor = yield* dial(tunnel)
    visitor.write("ping")
    yield* Effect.async<void>((resume) => {
      visitor.once("data", () => resume(Effect.void))
    })
    return sporeSockets({ control, tunnel, local })
  })

describe("socket tuning", () => {
  it.scoped("--sndbuf and --recbuf are set on control, data, visitor and local-service sockets", () =>
    Effect.gen(function*() {
      checkEach(yield* tunnelWithVisitor({ sndbuf: 65536, rcvbuf: 98304 }), (socket, kind) => {
        // Linux reports double the value set.
        expect(getSocketOption(socket, SocketOption.SNDBUF), kind).toBe(2 * 65536)
        expect(getSocketOption(socket, SocketOption.RCVBUF), kind).toBe(2 * 98304)
        expect(getTcpOption(socket, TCP_NODELAY), kind).not.toBe(0)
      })
    }))

  it.scoped("without the flags the kernel's own sizes are left alone", () =>
    Effect.gen(function*() {
      checkEach(yield* tunnelWithVisitor({}), (socket, kind) => {
        expect(getSocketOption(socket, SocketOption.SNDBUF), kind).not.toBe(2 * 65536)
        expect(getTcpOption(socket, TCP_NODELAY), kind).not.toBe(0)
      })
    }))

  it.scoped("they reach the HTTP front's visitor sockets too", () =>
    Effect.gen(function*() {
      const keys = Either.getOrThrow(parseApiKeys("buffers-test-key-0123456789\n"))
      const server = yield* startRunningServer({ buffers: { sndbuf: 65536, rcvbuf: 98304 }, http: { keys } })
      const front = Option.getOrThrow(server.http).port
      yield* dial(front)
      // The front's side of the connection, once accepted.
      let accepted: Array<net.Socket> = []
      for (let tries = 0; tries < 50 && accepted.length === 0; tries++) {
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
        accepted = liveSockets().filter((socket) => socket.localPort === front)
      }
      expect(accepted).toHaveLength(1)
      expect(getSocketOption(accepted[0]!, SocketOption.SNDBUF)).toBe(2 * 65536)
      expect(getSocketOption(accepted[0]!, SocketOption.RCVBUF)).toBe(2 * 98304)
    }))
})
