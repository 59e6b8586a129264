/**
 * The cluster's node channel (src/cluster/node-link.ts) on real loopback sockets, two or three
 * nodes in one process: a link carries the header and the visitor's bytes both ways; the dialer
 * keeps ready links and a visitor takes one; both sides prove the secret and the header is signed;
 * a node that goes away empties its pool at once; an unused pool ends (on the TestClock).
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, createHmac } from "node:crypto"
import { readFileSync } from "node:fs"
import * as net from "node:net"
import { Effect, Either, Exit, Layer, Redacted, Scope, TestClock } from "effect"
import { type ForwardHeader, formatNodeAddress, make, POOL_SIZE } from "../../src/cluster/node-link.js"
import * as DescriptorWatch from "../../src/net/descriptor-watch.js"
import * as Drain from "../../src/net/drain.js"
import { eventually, letIoHappen } from "../support/io.js"
import { dial as dialTcp, LOOPBACK, readExactly } from "../support/net.js"

const SECRET = "the-cluster-secret-for-tests"

const HEADER: ForwardHeader = { kind: "front", client: "127.0.0.9", proto: "http", hops: 1 }

/**
 * A node of its own in the current scope. What it is handed it answers with the header's JSON and
 * a newline, then echoes the visitor's bytes.
 */
const startNode = (secret = SECRET) =>
  Effect.gen(function*() {
    const services = yield* Layer.build(Layer.mergeAll(Drain.layer, DescriptorWatch.layer))
    const link = yield* Effect.provide(make({ address: { host: LOOPBACK, port: 0 }, secret: Redacted.make(secret) }), services)
    const seen: Array<ForwardHeader> = []
    yield* link.serve((socket, header) =>
      Effect.async<void>((resume) => {
        seen.push(header)
        socket.write(`${JSON.stringify(header)}\n`)
        socket.pipe(socket)
        socket.once("close", () => resume(Effect.void))
      })
    )
    return { link, seen, addr: formatNodeAddress(link.address) }
  })

/** Sends `text` on a link and reads what the node answers: its header line, then the echo. */
const visit = (socket: net.Socket, text: string, header = HEADER) =>
  Effect.gen(function*() {
    const line = `${JSON.stringify(header)}\n`
    socket.write(text)
    const answer = yield* readExactly(socket, Buffer.byteLength(line) + Buffer.byteLength(text))
    return answer.toString("utf8")
  })

/**
 * The dialers' ports of the connections open on 127.0.0.1:`port` (the kernel's table, from the
 * listener's side): which links exist, so that a replaced one shows as a new port.
 */
const linksAt = (port: number) =>
  readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1).flatMap((line) => {
    const [, local, remote, state] = line.trim().split(/\s+/)
    const ESTABLISHED = "01"
    return local?.endsWith(`:${port.toString(16).toUpperCase().padStart(4, "0")}`) && state === ESTABLISHED
      ? [parseInt(remote!.split(":")[1]!, 16)]
      : []
  })

const mac = (secret: string, role: string, nonce: Buffer, header = Buffer.alloc(0)) =>
  createHmac("sha256", createHash("sha256").update(secret).digest())
    .update("spore node link v2").update(role).update(nonce).update(header).digest()

describe("the node channel", () => {
  it.scoped("a link carries the signed header and the visitor's bytes both ways; the next visitor takes a ready link", () =>
    Effect.gen(function*() {
      const a = yield* startNode()
      const b = yield* startNode()
      const first = yield* Effect.scoped(Effect.flatMap(b.link.dial(a.addr, HEADER), (socket) => visit(socket, "hello")))
      expect(first).toBe(`${JSON.stringify(HEADER)}\nhello`)
      expect(a.seen).toEqual([HEADER])

      yield* eventually(() => b.link.ready(a.addr) === POOL_SIZE, "a full pool of ready links")
      const other: ForwardHeader = { kind: "front", client: "127.0.0.10", before: ["10.1.1.1"], proto: "https", hops: 2 }
      yield* Effect.scoped(Effect.gen(function*() {
        const socket = yield* b.link.dial(a.addr, other)
        // Taken from the pool, not dialed: one fewer ready until its slot has opened the next.
        expect(b.link.ready(a.addr)).toBe(POOL_SIZE - 1)
        expect(yield* visit(socket, "x".repeat(100_000), other)).toBe(`${JSON.stringify(other)}\n${"x".repeat(100_000)}`)
      }))
      expect(a.seen).toEqual([HEADER, other])
      yield* eventually(() => b.link.ready(a.addr) === POOL_SIZE, "the pool refilled")
      // The node it dials keeps none to itself.
      expect(a.link.ready(b.addr)).toBe(0)
    }))

  it.scoped("a burst beyond the pool dials fresh links: every visitor is carried", () =>
    Effect.gen(function*() {
      const a = yield* startNode()
      const b = yield* startNode()
      const answers = yield* Effect.forEach(
        Array.from({ length: 3 * POOL_SIZE }, (_, n) => `visitor ${n}`),
        (text) => Effect.scoped(Effect.flatMap(b.link.dial(a.addr, HEADER), (socket) => visit(socket, text))),
        { concurrency: "unbounded" }
      )
      expect(answers).toEqual(Array.from({ length: 3 * POOL_SIZE }, (_, n) => `${JSON.stringify(HEADER)}\nvisitor ${n}`))
      expect(a.seen).toHaveLength(3 * POOL_SIZE)
    }))

  it.scoped("a node that goes away takes its ready links with it: the pool empties at once, and a dial fails instead of hanging", () =>
    Effect.gen(function*() {
      const b = yield* startNode()
      const scope = yield* Scope.make()
      const a = yield* Scope.extend(startNode(), scope)
      yield* Effect.scoped(Effect.flatMap(b.link.dial(a.addr, HEADER), (socket) => visit(socket, "before")))
      yield* eventually(() => b.link.ready(a.addr) === POOL_SIZE, "a full pool of ready links")

      yield* Scope.close(scope, Exit.void)
      yield* eventually(() => b.link.ready(a.addr) === 0, "the closed links out of the pool")
      const after = yield* Effect.either(Effect.scoped(b.link.dial(a.addr, HEADER)))
      expect(Either.isLeft(after) && after.left._tag).toBe("ConnectError")
    }))

  it.scoped("both sides prove the secret, and the header is signed: a wrong secret either way, or a forged header, carries nothing", () =>
    Effect.gen(function*() {
      const a = yield* startNode()
      const stranger = yield* startNode("not-the-cluster-secret-000")
      const refused = yield* Effect.either(Effect.scoped(stranger.link.dial(a.addr, HEADER)))
      expect(Either.isLeft(refused) ? refused.left.reason : "").toMatch(/^node channel: refused \(is SPORE_CLUSTER_SECRET the same on every node\?\)$/)

      // A listener that does not know the secret (it answers the proof with anything): not used.
      const impostor = net.createServer((socket) => {
        socket.write(Buffer.alloc(16, 7))
        socket.once("data", () => socket.write(Buffer.alloc(32)))
        socket.on("error", () => {})
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void impostor.listen(0, LOOPBACK, () => resume(Effect.void))),
        () => Effect.sync(() => impostor.close())
      )
      const impostorAddr = `${LOOPBACK}:${(impostor.address() as net.AddressInfo).port}`
      const fooled = yield* Effect.either(Effect.scoped(a.link.dial(impostorAddr, HEADER)))
      expect(Either.isLeft(fooled) ? fooled.left.reason : "").toBe("node channel: the node at this address does not hold the cluster secret")

      // The right proof, then a header signed with another key: closed, never served.
      const socket = yield* dialTcp(a.link.address.port)
      const nonce = yield* readExactly(socket, 16)
      socket.write(Buffer.concat([Buffer.from("SPN2"), mac(SECRET, "dial", nonce)]))
      expect((yield* readExactly(socket, 32)).equals(mac(SECRET, "accept", nonce))).toBe(true)
      const header = Buffer.from(JSON.stringify({ ...HEADER, client: "10.6.6.6" }))
      const length = Buffer.alloc(2)
      length.writeUInt16BE(header.length)
      // Half-open sockets: the node's FIN is an end, not yet a close.
      const closed = Effect.async<void>((resume) => {
        socket.once("end", () => resume(Effect.void))
        socket.resume()
      })
      socket.write(Buffer.concat([length, mac("not-the-cluster-secret-000", "use", nonce, header), header, Buffer.from("GET / HTTP/1.1\r\n\r\n")]))
      yield* closed
      expect(a.seen).toEqual([])
    }))

  it.scoped("ready links last at most 20 s, so visitors are carried past the listener's 60 s idle limit; a pool nobody dials ends 60-80 s after its last use", () =>
    Effect.gen(function*() {
      const a = yield* startNode()
      const b = yield* startNode()
      const port = a.link.address.port
      const full = () => b.link.ready(a.addr) === POOL_SIZE && linksAt(port).length === POOL_SIZE
      const empty = () => b.link.ready(a.addr) === 0 && linksAt(port).length === 0
      /** Full again, none of `old` left: every link older than 20 s retired and replaced. */
      const renewedSince = (old: ReadonlyArray<number>) => () => full() && linksAt(port).every((link) => !old.includes(link))
      yield* Effect.scoped(Effect.flatMap(b.link.dial(a.addr, HEADER), (socket) => visit(socket, "first")))
      yield* eventually(full, "a full pool of ready links")

      // Two minutes of a visitor every 15 s: twice past the listener's READY_TIMEOUT.
      const snapshots = [linksAt(port)]
      let carried = 0
      for (let visitor = 1; visitor <= 8; visitor++) {
        yield* TestClock.adjust("15 seconds")
        // A link the listener closed as it was taken would fail this visitor: none may.
        const answer = yield* Effect.scoped(Effect.flatMap(b.link.dial(a.addr, HEADER), (socket) => visit(socket, `visitor ${visitor}`)))
        if (answer.endsWith(`visitor ${visitor}`)) carried++
        // The links there were 30 s ago are all gone by now.
        yield* eventually(renewedSince(visitor >= 2 ? snapshots[visitor - 2]! : []), `links of 30 s before visitor ${visitor} replaced`)
        snapshots.push(linksAt(port))
      }
      expect(carried).toBe(8)

      // Nobody dials now. After each 20 s step, once the links being replaced are (the same for
      // 100 ms of real time; each slot ends on its own, so some may be gone before the rest):
      // renewed and full under 60 s, and all gone by 80 s.
      const state = () => `${b.link.ready(a.addr)} ${linksAt(port).join(",")}`
      const settled = Effect.gen(function*() {
        for (let check = 0; check < 50; check++) {
          const seen = state()
          yield* Effect.repeatN(letIoHappen, 20)
          if (state() === seen) return
        }
        return yield* Effect.dieMessage("the pool never settled")
      })
      let endedAt: number | undefined
      for (let second = 20; second <= 120 && endedAt === undefined; second += 20) {
        const before = linksAt(port)
        yield* TestClock.adjust("20 seconds")
        yield* settled
        if (empty()) endedAt = second
        else if (second < 60) expect(renewedSince(before)()).toBe(true)
      }
      expect(endedAt).toBeGreaterThanOrEqual(60)
      expect(endedAt).toBeLessThanOrEqual(80)
      // Dialed again, it starts again.
      yield* Effect.scoped(Effect.flatMap(b.link.dial(a.addr, HEADER), (socket) => visit(socket, "again")))
      yield* eventually(full, "a new pool")
    }))
})
