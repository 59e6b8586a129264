/**
 * The node-to-node channel of a cluster (`spore server --cluster ... --node-addr IP:PORT`): how a
 * node hands a visitor's connection to the node that holds the visitor's tunnel.
 *
 * Every node listens on its `--node-addr`. A node forwarding a connection dials the holder's
 * address, and the two prove they share the cluster secret before a byte of the visitor's passes:
 *
 *   listener → dialer   NONCE (16 random bytes, new for each connection)
 *   dialer → listener   "SPN1", MAC("dial") (32), HEADER's length (u16 BE), HEADER (JSON: who the
 *                       visitor is, see ForwardHeader)
 *   listener → dialer   MAC("accept") (32): the listener knows the secret too
 *   then                the visitor's bytes, as it sent them, both ways, until both ends close
 *
 * where MAC(ROLE) = HMAC-SHA256(SHA-256(secret), "spore node link v1" ROLE NONCE HEADER). The MAC
 * covers the header, so what a node is told about the visitor (its address, whether it came by
 * https) cannot be altered on the way, and a recorded exchange cannot be replayed against a new
 * nonce. Each side proves the secret: a refused dialer learns it before it sends a visitor's byte
 * (the visitor gets a 503), and a dialer never hands a visitor to a stranger at a node's address. The bytes after it are not encrypted: keep node addresses on a private network.
 * After the header the connection is a plain splice (Node's piping, with backpressure and
 * half-close), so bodies and WebSocket upgrades pass untouched.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import type * as net from "node:net"
import { Context, Deferred, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { type BindError, ConnectError } from "../errors.js"
import type { DescriptorWatch } from "../net/descriptor-watch.js"
import type { Drain } from "../net/drain.js"
import { formatHostPort } from "../net/address.js"
import { listenManaged } from "../net/listener.js"
import { connect } from "../net/socket.js"

const MAGIC = Buffer.from("SPN1", "latin1")
const CONTEXT = Buffer.from("spore node link v1", "latin1")
const NONCE_BYTES = 16
const MAC_BYTES = 32
const MAX_HEADER_BYTES = 4096
/** A dialer that has not authenticated by then is closed. */
const AUTH_TIMEOUT = Duration.seconds(5)

/** What the forwarding node says of the visitor whose bytes follow. */
export interface ForwardHeader {
  /** "front": serve it as a connection to the HTTP front (a tunnel's visitor, or the API). */
  readonly kind: "front"
  /** The visitor's address, and the X-Forwarded-For entries before it (a trusted proxy's). */
  readonly client: string
  readonly before?: ReadonlyArray<string>
  /** How it reached the first node. */
  readonly proto: "http" | "https"
  /** Nodes it has been forwarded through so far: a loop between stale records ends here. */
  readonly hops: number
}

/** A node's address on the node-to-node channel, as other nodes dial it. */
export interface NodeAddress {
  readonly host: string
  readonly port: number
}

export const formatNodeAddress = (address: NodeAddress) => formatHostPort(address.host, address.port)

/** What serves an authenticated connection: it owns the socket until it returns. */
export type ForwardedHandler = (socket: net.Socket, header: ForwardHeader) => Effect.Effect<void>

export class NodeLink extends Context.Tag("spore/NodeLink")<NodeLink, {
  /** This node's address (the bound port when --node-addr asked for 0). */
  readonly address: NodeAddress
  /** Sets who serves forwarded connections (the front); until then they wait. */
  readonly serve: (handler: ForwardedHandler) => Effect.Effect<void>
  /** Dials `address` and authenticates; the socket is the caller's, closed with its scope. */
  readonly dial: (address: string, header: ForwardHeader) => Effect.Effect<net.Socket, ConnectError, Scope.Scope>
}>() {}

const keyOf = (secret: Redacted.Redacted<string>) => createHash("sha256").update(Redacted.value(secret), "utf8").digest()

const macOf = (key: Buffer, role: "dial" | "accept", nonce: Buffer, header: Buffer) =>
  createHmac("sha256", key).update(CONTEXT).update(role).update(nonce).update(header).digest()

/**
 * Reads exactly `size` bytes (or fails when the socket ends first); what came after them is put
 * back for whoever reads next.
 */
const readExactly = (socket: net.Socket, size: number) =>
  Effect.async<Buffer, string>((resume) => {
    let buffered = Buffer.alloc(0)
    const done = () => {
      socket.off("data", onData)
      socket.off("end", onEnd)
      socket.off("close", onEnd)
      socket.pause()
    }
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      if (buffered.length < size) return
      done()
      if (buffered.length > size) socket.unshift(buffered.subarray(size))
      resume(Effect.succeed(buffered.subarray(0, size)))
    }
    const onEnd = () => {
      done()
      resume(Effect.fail("closed"))
    }
    socket.on("data", onData)
    socket.once("end", onEnd)
    socket.once("close", onEnd)
    socket.resume()
    return Effect.sync(done)
  })

/** The listener's side: the dialer's header, once it has proved it holds the secret. */
const authenticateDialer = (socket: net.Socket, key: Buffer) =>
  Effect.gen(function*() {
    const nonce = randomBytes(NONCE_BYTES)
    socket.write(nonce)
    const fixed = yield* readExactly(socket, MAGIC.length + MAC_BYTES + 2)
    if (!fixed.subarray(0, MAGIC.length).equals(MAGIC)) return yield* Effect.fail("not a node of a Spore cluster")
    const length = fixed.readUInt16BE(MAGIC.length + MAC_BYTES)
    if (length === 0 || length > MAX_HEADER_BYTES) return yield* Effect.fail(`a header of ${length} bytes`)
    const header = yield* readExactly(socket, length)
    const given = fixed.subarray(MAGIC.length, MAGIC.length + MAC_BYTES)
    if (!timingSafeEqual(given, macOf(key, "dial", nonce, header))) return yield* Effect.fail("wrong cluster secret")
    let parsed: ForwardHeader
    try {
      parsed = JSON.parse(header.toString("utf8")) as ForwardHeader
    } catch {
      return yield* Effect.fail("a header that is not JSON")
    }
    if (parsed.kind !== "front" || typeof parsed.client !== "string" || typeof parsed.hops !== "number") {
      return yield* Effect.fail("a header without its fields")
    }
    socket.write(macOf(key, "accept", nonce, header))
    return parsed
  }).pipe(
    Effect.timeoutFail({ duration: AUTH_TIMEOUT, onTimeout: () => "no authentication within 5 s" })
  )

/** The dialer's side: reads the nonce, sends the proof and the header, checks the listener's proof. */
const authenticateTo = (socket: net.Socket, key: Buffer, header: ForwardHeader) =>
  Effect.gen(function*() {
    const nonce = yield* readExactly(socket, NONCE_BYTES)
    const text = Buffer.from(JSON.stringify(header), "utf8")
    const length = Buffer.alloc(2)
    length.writeUInt16BE(text.length)
    socket.write(Buffer.concat([MAGIC, macOf(key, "dial", nonce, text), length, text]))
    const accepted = yield* readExactly(socket, MAC_BYTES).pipe(Effect.mapError(() => "refused (is SPORE_CLUSTER_SECRET the same on every node?)"))
    if (!timingSafeEqual(accepted, macOf(key, "accept", nonce, text))) return yield* Effect.fail("the node at this address does not hold the cluster secret")
  })

const parseAddress = (text: string): NodeAddress | undefined => {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text)
  return match === null ? undefined : { host: match[1]!, port: Number(match[2]) }
}

export const make = (config: { readonly address: NodeAddress; readonly secret: Redacted.Redacted<string> }) =>
  Effect.gen(function*() {
    const key = keyOf(config.secret)
    const handler = yield* Deferred.make<ForwardedHandler>()
    const listener = yield* listenManaged({ host: config.address.host, port: config.address.port }, (socket) =>
      Effect.gen(function*() {
        const header = yield* Effect.either(authenticateDialer(socket, key))
        if (header._tag === "Left") {
          return yield* Effect.logWarning(`cluster: refused a node connection: ${header.left}`).pipe(
            Effect.annotateLogs({ peer: socket.remoteAddress ?? "?" })
          )
        }
        const serve = yield* Deferred.await(handler)
        yield* serve(socket, header.right)
      }))
    const address = { host: config.address.host, port: listener.port }
    yield* Effect.logInfo(`cluster: node channel listening on ${formatNodeAddress(address)}`)

    const dial = (text: string, header: ForwardHeader) =>
      Effect.gen(function*() {
        const target = parseAddress(text)
        if (target === undefined) return yield* new ConnectError({ host: text, port: 0, reason: "not a node address" })
        const socket = yield* connect(target.host, target.port)
        yield* authenticateTo(socket, key, header).pipe(
          Effect.timeoutFail({ duration: AUTH_TIMEOUT, onTimeout: () => "timed out" }),
          Effect.mapError((reason) => new ConnectError({ host: target.host, port: target.port, reason: `node channel: ${reason}` }))
        )
        return socket
      })

    return NodeLink.of({
      address,
      serve: (serve) => Effect.asVoid(Deferred.succeed(handler, serve)),
      dial
    })
  })

export const layer = (config: { readonly address: NodeAddress; readonly secret: Redacted.Redacted<string> }): Layer.Layer<
  NodeLink,
  BindError,
  Drain | DescriptorWatch
> => Layer.scoped(NodeLink, make(config))
