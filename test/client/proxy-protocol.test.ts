/**
 * `--proxy-protocol`: the local service learns each visitor's real address from a PROXY header,
 * which the client builds from the `Visitor` frames of a Spore server (extensions version 2).
 * Against a server that never answers the extension offer (bore), the client refuses to start.
 * Real sockets on 127.0.0.1; the TestClock stands in for the 3 s wait.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"
import { Deferred, Effect, Exit, Fiber, TestClock } from "effect"
import * as Client from "../../src/client/client.js"
import type { ClientStatus } from "../../src/client/status.js"
import type { ProxyProtocolVersion } from "../../src/client/proxy-header.js"
import { clientLayer } from "../support/client.js"
import { fakeBoreServer } from "../support/fake-bore.js"
import { clientConfig, dial, LOOPBACK, startServer } from "../support/net.js"
import { type ParsedProxyHeader, parseProxyHeader } from "../support/proxy-header-parser.js"

interface Received {
  readonly header: ParsedProxyHeader
  readonly payloadHash: string
}

/** A local service that reads a PROXY header, then hashes the payload that follows it. */
const headerReadingService = Effect.acquireRelease(
  Effect.async<{ server: net.Server; port: number; received: Array<Received> }>((resume) => {
    const received: Array<Received> = []
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      const chunks: Array<Buffer> = []
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("end", () => {
        const data = Buffer.concat(chunks)
        const header = parseProxyHeader(data)
        received.push({ header, payloadHash: createHash("sha256").update(data.subarray(header.length)).digest("hex") })
        socket.end()
      })
      socket.on("error", () => socket.destroy())
    })
    server.listen(0, LOOPBACK, () =>
      resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, received })))
  }),
  ({ server }) => Effect.sync(() => server.close())
)

/** Runs the client in the background; resolves with the public port once it reports listening. */
const runClient = (controlPort: number, localPort: number, proxyProtocol: ProxyProtocolVersion) =>
  Effect.gen(function*() {
    const listening = yield* Deferred.make<number>()
    const report = (status: ClientStatus) =>
      status._tag === "Listening" ? Deferred.succeed(listening, status.port) : Effect.void
    const fiber = yield* Effect.forkScoped(
      Client.run(clientConfig(controlPort, localPort, { proxyProtocol }), report).pipe(Effect.provide(clientLayer))
    )
    return { fiber, listening }
  })

/** A visitor from `from` that sends `payload` and half-closes; resolves when the service has answered with its close. */
const visit = (port: number, from: string, payload: Buffer) =>
  Effect.gen(function*() {
    const socket = yield* dial(port, LOOPBACK, from)
    const ownPort = socket.localPort!
    socket.end(payload)
    yield* Effect.async<void>((resume) => {
      socket.on("data", () => {})
      socket.once("end", () => resume(Effect.void))
    })
    return ownPort
  })

describe("--proxy-protocol", () => {
  for (const version of ["v1", "v2"] as const) {
    it.scoped(`${version}: the local service gets the visitor's address and port, then every byte`, () =>
      Effect.gen(function*() {
        const service = yield* headerReadingService
        const controlPort = yield* startServer()
        const { listening } = yield* runClient(controlPort, service.port, version)
        const port = yield* Deferred.await(listening)
        const payload = randomBytes(256 * 1024)
        const visitorPort = yield* visit(port, "127.0.0.7", payload)
        expect(service.received).toHaveLength(1)
        expect(service.received[0]).toEqual({
          header: expect.objectContaining({
            version: version === "v1" ? 1 : 2,
            kind: "TCP4",
            source: { address: "127.0.0.7", port: visitorPort },
            destination: { address: "127.0.0.1", port }
          }),
          payloadHash: createHash("sha256").update(payload).digest("hex")
        })
      }))
  }

  it.scoped("against a server that never answers the offer (bore), the client stops at start with a clear error", () =>
    Effect.gen(function*() {
      const borePort = yield* fakeBoreServer
      const { fiber, listening } = yield* runClient(borePort, 9, "v1")
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
      yield* TestClock.adjust("3 seconds")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(String(Exit.isFailure(exit) ? exit.cause : "")).toMatch(/--proxy-protocol needs a Spore server/)
      // It never claimed to be listening.
      expect(yield* Deferred.isDone(listening)).toBe(false)
    }))
})
