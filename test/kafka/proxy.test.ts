/**
 * The Kafka proxy as an operator runs it, in one process over real sockets with a Spore server
 * and a hand-written broker that answers Metadata with the broker list a test sets: public ports
 * fixed by flag, a decommissioned broker's tunnel closed after the grace (and kept when it comes
 * back in time), and a broker whose advertised name does not resolve named with the flag to use.
 * The grace runs on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { Effect, Logger, Option, TestClock } from "effect"
import * as KafkaProxy from "../../src/kafka/proxy.js"
import type { ClientStatus } from "../../src/client/status.js"
import { clientLayer } from "../support/client.js"
import { until } from "../front/front-driver.js"
import { clientConfig, LOOPBACK, startRunningServer, TEST_PORT_RANGE } from "../support/net.js"
import { encodeMetadata, i16, i32 } from "./encode.js"
import { metadata } from "./fixtures.js"

type Broker = { readonly nodeId: number; readonly host: string; readonly port: number }

/** A broker that answers every Metadata request (v12) with `brokers()`; its port. */
const fakeBroker = (brokers: () => ReadonlyArray<Broker>) =>
  Effect.acquireRelease(
    Effect.async<net.Server & { port: number }>((resume) => {
      const server = net.createServer((socket) => {
        let pending = Buffer.alloc(0)
        socket.on("data", (chunk: Buffer) => {
          pending = Buffer.concat([pending, chunk])
          while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
            const frame = pending.subarray(4, 4 + pending.readInt32BE(0))
            pending = pending.subarray(4 + frame.length)
            if (frame.readInt16BE(0) !== 3) continue
            const body = encodeMetadata(12, {
              ...metadata,
              correlationId: frame.readInt32BE(4),
              brokers: brokers().map((broker) => ({ ...broker, rack: null, tags: [] }))
            })
            socket.write(Buffer.concat([i32(body.length), body]))
          }
        })
        socket.on("error", () => socket.destroy())
      })
      server.listen(0, LOOPBACK, () => resume(Effect.succeed(Object.assign(server, { port: (server.address() as net.AddressInfo).port }))))
    }),
    (server) => Effect.sync(() => server.close())
  )

/** A Metadata v12 request through `port`, as a Kafka client sends it; the node ids and ports it names. */
const askMetadata = (port: number) =>
  Effect.async<ReadonlyArray<readonly [number, number]>>((resume) => {
    const socket = net.connect(port, LOOPBACK)
    const request = Buffer.concat([i16(3), i16(12), i32(99), i16(6), Buffer.from("client"), Buffer.from([0, 1, 0, 0, 0])])
    socket.write(Buffer.concat([i32(request.length), request]))
    let got = Buffer.alloc(0)
    socket.on("data", (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      if (got.length < 4 || got.length < 4 + got.readInt32BE(0)) return
      socket.destroy()
      const text = got.toString("latin1")
      // The rewritten hosts are 127.0.0.1: each followed by its int32 port.
      const found: Array<readonly [number, number]> = []
      for (let at = text.indexOf("127.0.0.1"); at !== -1; at = text.indexOf("127.0.0.1", at + 1)) {
        found.push([got.readInt32BE(at - 5), got.readInt32BE(at + 9)])
      }
      resume(Effect.succeed(found))
    })
    socket.on("error", () => resume(Effect.succeed([])))
  })

/** A free port inside the test server's tunnel port range (a fixed public port must be in it). */
const freeTunnelPort = Effect.async<number>((resume) => {
  const tryPort = () => {
    const port = TEST_PORT_RANGE.minPort + Math.floor(Math.random() * (TEST_PORT_RANGE.maxPort - TEST_PORT_RANGE.minPort))
    const probe = net.createServer()
    probe.once("error", tryPort)
    probe.listen(port, LOOPBACK, () => probe.close(() => resume(Effect.succeed(port))))
  }
  tryPort()
})

const refuses = (port: number) =>
  Effect.async<boolean>((resume) => {
    const socket = net.connect(port, LOOPBACK)
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(false))
    })
    socket.once("error", () => resume(Effect.succeed(true)))
  })

/**
 * A Spore server and the proxy of the cluster whose bootstrap broker listens on `brokerPort`,
 * once its bootstrap tunnel listens: that tunnel's public port, and what the proxy logged.
 */
const startProxy = (brokerPort: number, brokerPorts: ReadonlyMap<number, number> = new Map()) =>
  Effect.gen(function*() {
    const server = yield* startRunningServer()
    const { localHost: _host, localPort: _local, port: _port, proxyProtocol: _proxy, ...tunnel } = clientConfig(server.controlPort, 0)
    const bootstrapPort = yield* freeTunnelPort
    const statuses: Array<ClientStatus> = []
    const lines: Array<string> = []
    yield* Effect.forkScoped(KafkaProxy.run(
      { tunnel, bootstrap: { host: LOOPBACK, port: brokerPort }, brokerAddresses: new Map(), port: bootstrapPort, brokerPorts },
      (label, status) => Effect.sync(() => Option.isNone(label.nodeId) && statuses.push(status))
    ).pipe(Effect.provide(clientLayer), Effect.provide(Logger.add(Logger.make(({ message }) => lines.push(String(message)))))))
    yield* until("the bootstrap tunnel", Effect.sync(() => statuses.some((status) => status._tag === "Listening")))
    return { bootstrapPort, lines }
  })

const GONE = "broker 2 has been gone from the cluster's metadata for 1m"

describe("the Kafka proxy, operated", () => {
  it.scoped("fixed ports for the bootstrap and a broker; a broker gone from the metadata keeps its tunnel for the grace, then loses it", () =>
    Effect.gen(function*() {
      let listed: ReadonlyArray<Broker> = []
      const broker = yield* fakeBroker(() => listed)
      listed = [{ nodeId: 1, host: LOOPBACK, port: broker.port }, { nodeId: 2, host: LOOPBACK, port: broker.port }]
      const brokerOnePort = yield* freeTunnelPort
      const { bootstrapPort, lines } = yield* startProxy(broker.port, new Map([[1, brokerOnePort]]))
      const first = yield* askMetadata(bootstrapPort)
      expect(first.map(([id]) => id)).toEqual([1, 2])
      expect(first[0]![1]).toBe(brokerOnePort)
      const brokerTwoPort = first[1]![1]

      // Broker 2 is decommissioned: the metadata stops naming it.
      listed = [{ nodeId: 1, host: LOOPBACK, port: broker.port }]
      expect((yield* askMetadata(bootstrapPort)).map(([id]) => id)).toEqual([1])
      yield* TestClock.adjust("59 seconds")
      expect(yield* refuses(brokerTwoPort)).toBe(false)
      yield* TestClock.adjust("2 seconds")
      yield* until("broker 2's tunnel closed", Effect.sync(() => lines.some((line) => line.startsWith(GONE))))
      // Its client is gone; the server then holds the port for the client's lease, as for any
      // Spore client that leaves, and frees it after.
      yield* TestClock.adjust("31 seconds")
      yield* until("broker 2's port freed", refuses(brokerTwoPort))
      expect(yield* refuses(brokerOnePort)).toBe(false)
    }))

  it.scoped("a broker back in the metadata within the grace keeps its tunnel and its port", () =>
    Effect.gen(function*() {
      let listed: ReadonlyArray<Broker> = []
      const broker = yield* fakeBroker(() => listed)
      const both = [{ nodeId: 1, host: LOOPBACK, port: broker.port }, { nodeId: 2, host: LOOPBACK, port: broker.port }]
      listed = both
      const { bootstrapPort, lines } = yield* startProxy(broker.port)
      const port = (yield* askMetadata(bootstrapPort))[1]![1]
      listed = [both[0]!]
      yield* askMetadata(bootstrapPort)
      yield* TestClock.adjust("30 seconds")
      listed = both
      expect((yield* askMetadata(bootstrapPort))[1]![1]).toBe(port)
      yield* TestClock.adjust("60 seconds")
      expect(yield* refuses(port)).toBe(false)
      expect(lines.filter((line) => line.startsWith(GONE))).toEqual([])
    }))
})

describe("the Kafka proxy, a broker that does not resolve", () => {
  it.scopedLive("a visitor of a broker advertising a name that does not resolve is dropped with a line that names --broker-address", () =>
    Effect.gen(function*() {
      const broker = yield* fakeBroker(() => [{ nodeId: 9, host: "kafka-9.invalid", port: 9092 }])
      const { bootstrapPort, lines } = yield* startProxy(broker.port)
      const [[nodeId, port]] = (yield* askMetadata(bootstrapPort)) as unknown as [[number, number]]
      expect(nodeId).toBe(9)
      const visitor = net.connect(port, LOOPBACK)
      visitor.on("error", () => {})
      yield* Effect.addFinalizer(() => Effect.sync(() => visitor.destroy()))
      const hint = "broker 9 advertises kafka-9.invalid, which this machine cannot resolve: give its address with --broker-address 9=HOST:PORT"
      for (let waited = 0; waited < 300 && !lines.some((line) => line.includes(hint)); waited++) yield* Effect.sleep("50 millis")
      expect(lines.find((line) => line.includes(hint))).toMatch(/dropped: could not connect to kafka-9\.invalid:9092: (ENOTFOUND|EAI_AGAIN); broker 9 advertises/)
    }), 30_000)
})
