/**
 * The node-to-node channel of a cluster (`spore server --cluster ... --node-addr IP:PORT`): how a
 * node hands a visitor's connection to the node that holds the visitor's tunnel.
 *
 * Every node listens on its `--node-addr`. A link between two nodes is authenticated before it
 * carries anything, then carries one visitor:
 *
 *   listener → dialer   NONCE (16 random bytes, new for each link)
 *   dialer → listener   "SPN2", MAC("dial") (32)
 *   listener → dialer   MAC("accept") (32): the listener knows the secret too
 *                       ... the link is ready: it may wait, idle, for a visitor
 *   dialer → listener   HEADER's length (u16 BE), MAC("use", HEADER) (32), HEADER (JSON: who the
 *                       visitor is, see ForwardHeader)
 *   then                the visitor's bytes, as it sent them, both ways, until both ends close
 *
 * where MAC(ROLE[, HEADER]) = HMAC-SHA256(SHA-256(secret), "spore node link v2" ROLE NONCE
 * HEADER). Each side proves the secret before a byte of the visitor's passes, so a dialer never
 * hands a visitor to a stranger at a node's address and a recorded exchange cannot be replayed
 * against a new nonce; the MAC over the header keeps what a node is told about the visitor (its
 * address, whether it came by https) from being altered on the way. The bytes after it are not
 * encrypted: keep node addresses on a private network. After the header the link is a plain
 * splice (Node's piping, with backpressure and half-close), so bodies and WebSocket upgrades pass
 * untouched.
 *
 * The handshake costs two round trips and a connect, about 1-2 ms on loopback, more between
 * hosts: so a dialer keeps POOL_SIZE ready links to each node it has handed visitors to in the
 * last PEER_IDLE (a pool nobody uses ends as its links' LINK_IDLE runs out after that), and a
 * visitor takes one and waits for none of that (a burst beyond the pool
 * dials fresh links). Each ready link is replaced when taken, and retired after LINK_IDLE, well
 * before the listener's READY_TIMEOUT, so that no link is closed by one side as the other uses
 * it. While ready, a link is read: the node at its other end closing it (a node that dies or
 * restarts) takes it out of the pool at once; TCP keepalive finds a silent one within seconds.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import type * as net from "node:net"
import { Clock, Context, Deferred, Duration, Effect, Either, Exit, FiberSet, Layer, Redacted, Scope } from "effect"
import { type BindError, ConnectError } from "../errors.js"
import type { DescriptorWatch } from "../net/descriptor-watch.js"
import type { Drain } from "../net/drain.js"
import { formatHostPort } from "../net/address.js"
import { listenManaged } from "../net/listener.js"
import { connect } from "../net/socket.js"
import { tuneNodeLinkSocket } from "../net/tuning.js"

const MAGIC = Buffer.from("SPN2", "latin1")
const CONTEXT = Buffer.from("spore node link v2", "latin1")
const NONCE_BYTES = 16
const MAC_BYTES = 32
const MAX_HEADER_BYTES = 4096
/** A dialer that has not authenticated by then is closed. */
const AUTH_TIMEOUT = Duration.seconds(5)
/** Ready links kept to each node visitors are handed to: a burst of this many waits for no handshake. */
export const POOL_SIZE = 4
/** A ready link unused this long is closed by its dialer and replaced. */
const LINK_IDLE = Duration.seconds(20)
/** A node not dialed for this long gets no more ready links (it died, or holds no names now). */
const PEER_IDLE_MS = 60_000
/** The listener closes an authenticated link that has carried no visitor this long. */
const READY_TIMEOUT = Duration.seconds(60)

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
  /**
   * A link to `address` carrying `header`: a ready one from the pool, else dialed and
   * authenticated now. The socket is the caller's, closed with its scope.
   */
  readonly dial: (address: string, header: ForwardHeader) => Effect.Effect<net.Socket, ConnectError, Scope.Scope>
  /** How many ready links to `address` the pool holds now. */
  readonly ready: (address: string) => number
}>() {}

const keyOf = (secret: Redacted.Redacted<string>) => createHash("sha256").update(Redacted.value(secret), "utf8").digest()

const macOf = (key: Buffer, role: "dial" | "accept" | "use", nonce: Buffer, header: Buffer = Buffer.alloc(0)) =>
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

/** The listener's side of the handshake: the link's nonce, once the dialer has proved the secret. */
const authenticateDialer = (socket: net.Socket, key: Buffer) =>
  Effect.gen(function*() {
    const nonce = randomBytes(NONCE_BYTES)
    socket.write(nonce)
    const proof = yield* readExactly(socket, MAGIC.length + MAC_BYTES)
    if (!proof.subarray(0, MAGIC.length).equals(MAGIC)) return yield* Effect.fail("not a node of a Spore cluster")
    if (!timingSafeEqual(proof.subarray(MAGIC.length), macOf(key, "dial", nonce))) return yield* Effect.fail("wrong cluster secret")
    socket.write(macOf(key, "accept", nonce))
    return nonce
  }).pipe(
    Effect.timeoutFail({ duration: AUTH_TIMEOUT, onTimeout: () => "no authentication within 5 s" })
  )

/** The listener's side of a link's use: the header of the visitor whose bytes follow. */
const awaitHeader = (socket: net.Socket, key: Buffer, nonce: Buffer) =>
  Effect.gen(function*() {
    const fixed = yield* readExactly(socket, 2 + MAC_BYTES)
    const length = fixed.readUInt16BE(0)
    if (length === 0 || length > MAX_HEADER_BYTES) return yield* Effect.fail(`a header of ${length} bytes`)
    const header = yield* readExactly(socket, length)
    if (!timingSafeEqual(fixed.subarray(2), macOf(key, "use", nonce, header))) return yield* Effect.fail("a header not signed with the cluster secret")
    let parsed: ForwardHeader
    try {
      parsed = JSON.parse(header.toString("utf8")) as ForwardHeader
    } catch {
      return yield* Effect.fail("a header that is not JSON")
    }
    if (parsed.kind !== "front" || typeof parsed.client !== "string" || typeof parsed.hops !== "number") {
      return yield* Effect.fail("a header without its fields")
    }
    return parsed
  }).pipe(
    Effect.timeoutFail({ duration: READY_TIMEOUT, onTimeout: () => "idle" })
  )

/** The dialer's side of the handshake: reads the nonce, sends the proof, checks the listener's. */
const authenticateTo = (socket: net.Socket, key: Buffer) =>
  Effect.gen(function*() {
    const nonce = yield* readExactly(socket, NONCE_BYTES)
    socket.write(Buffer.concat([MAGIC, macOf(key, "dial", nonce)]))
    const accepted = yield* readExactly(socket, MAC_BYTES).pipe(Effect.mapError(() => "refused (is SPORE_CLUSTER_SECRET the same on every node?)"))
    if (!timingSafeEqual(accepted, macOf(key, "accept", nonce))) return yield* Effect.fail("the node at this address does not hold the cluster secret")
    return nonce
  })

/** What the dialer writes to use a link for one visitor. */
const headerFrame = (key: Buffer, nonce: Buffer, header: ForwardHeader) => {
  const text = Buffer.from(JSON.stringify(header), "utf8")
  const length = Buffer.alloc(2)
  length.writeUInt16BE(text.length)
  return Buffer.concat([length, macOf(key, "use", nonce, text), text])
}

const parseAddress = (text: string): NodeAddress | undefined => {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text)
  return match === null ? undefined : { host: match[1]!, port: Number(match[2]) }
}

/** An authenticated link, its socket closed with `scope`: the pool's while ready, then its user's. */
interface Link {
  readonly socket: net.Socket
  readonly nonce: Buffer
  readonly scope: Scope.CloseableScope
}

/** A link waiting in the pool. */
interface ReadyLink extends Link {
  /** Completed when it is taken, or found closed by the other node. */
  readonly settled: Deferred.Deferred<void>
  /** Stops watching the socket (and pauses it) for whoever takes it. */
  readonly detach: () => void
  taken: boolean
}

/** The pool's links to one node address. */
interface Peer {
  readonly address: string
  readonly target: NodeAddress
  readonly ready: Array<ReadyLink>
  lastUsed: number
}

/** Backoff between failed links to one node: from 200 ms, doubling, to 10 s. */
const backoff = (failures: number) => Duration.millis(Math.min(100 * 2 ** failures, 10_000))

export const make = (config: { readonly address: NodeAddress; readonly secret: Redacted.Redacted<string> }) =>
  Effect.gen(function*() {
    const key = keyOf(config.secret)
    const handler = yield* Deferred.make<ForwardedHandler>()
    const listener = yield* listenManaged({ host: config.address.host, port: config.address.port }, (socket) =>
      Effect.gen(function*() {
        tuneNodeLinkSocket(socket)
        const nonce = yield* Effect.either(authenticateDialer(socket, key))
        if (Either.isLeft(nonce)) {
          return yield* Effect.logWarning(`cluster: refused a node connection: ${nonce.left}`).pipe(
            Effect.annotateLogs({ peer: socket.remoteAddress ?? "?" })
          )
        }
        const header = yield* Effect.either(awaitHeader(socket, key, nonce.right))
        if (Either.isLeft(header)) {
          // A ready link its dialer retired, or closed on its way down: nothing to say.
          if (header.left === "closed" || header.left === "idle") return
          return yield* Effect.logWarning(`cluster: closed a node link: ${header.left}`).pipe(
            Effect.annotateLogs({ peer: socket.remoteAddress ?? "?" })
          )
        }
        const serve = yield* Deferred.await(handler)
        yield* serve(socket, header.right)
      }))
    const address = { host: config.address.host, port: listener.port }
    yield* Effect.logInfo(`cluster: node channel listening on ${formatNodeAddress(address)}`)

    /** Connects to `target` and authenticates, in a scope of the link's own. */
    const openLink = (target: NodeAddress): Effect.Effect<Link, ConnectError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const scope = yield* Scope.make()
          return yield* restore(Effect.gen(function*() {
            const socket = yield* connect(target.host, target.port)
            // Its errors end it as a close does (seen where it is used); unheard, one would throw.
            socket.on("error", () => {})
            tuneNodeLinkSocket(socket)
            const nonce = yield* authenticateTo(socket, key).pipe(
              Effect.timeoutFail({ duration: AUTH_TIMEOUT, onTimeout: () => "timed out" }),
              Effect.mapError((reason) => new ConnectError({ host: target.host, port: target.port, reason: `node channel: ${reason}` }))
            )
            return { socket, nonce, scope }
          }).pipe(Scope.extend(scope))).pipe(
            Effect.onError(() => Scope.close(scope, Exit.void))
          )
        })
      )

    const peers = new Map<string, Peer>()
    const slots = yield* FiberSet.make<void, never>()

    /** Puts `link` in `peer`'s pool, watched: the other node closing it settles it. */
    const makeReady = (peer: Peer, link: Link): Effect.Effect<ReadyLink> =>
      Effect.map(Deferred.make<void>(), (settled) => {
        const { socket } = link
        const gone = () => {
          detach()
          Deferred.unsafeDone(settled, Exit.void)
        }
        const detach = () => {
          socket.off("data", gone)
          socket.off("end", gone)
          socket.off("close", gone)
          socket.pause()
        }
        // The listener sends nothing on a ready link: data, like an end, means it is no use.
        socket.on("data", gone)
        socket.once("end", gone)
        socket.once("close", gone)
        socket.resume()
        const ready: ReadyLink = { ...link, settled, detach, taken: false }
        peer.ready.push(ready)
        return ready
      })

    /** A ready link of `peer`'s, taken out of the pool (one closed meanwhile is left to its slot). */
    const take = (peer: Peer): Link | undefined => {
      for (let ready = peer.ready.shift(); ready !== undefined; ready = peer.ready.shift()) {
        ready.detach()
        Deferred.unsafeDone(ready.settled, Exit.void)
        if (ready.socket.destroyed || !ready.socket.writable || ready.socket.readableEnded) continue
        ready.taken = true
        return ready
      }
      return undefined
    }

    /** One ready link of `peer`'s, from its dial until it is taken, closed, or idle too long. */
    const readyOnce = (peer: Peer) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const ready = yield* Effect.flatMap(restore(openLink(peer.target)), (link) => makeReady(peer, link))
          const settled = yield* restore(Effect.raceFirst(
            Effect.as(Deferred.await(ready.settled), true),
            Effect.as(Effect.sleep(LINK_IDLE), false)
          )).pipe(
            Effect.ensuring(Effect.suspend(() => {
              if (ready.taken) return Effect.void
              const at = peer.ready.indexOf(ready)
              if (at >= 0) peer.ready.splice(at, 1)
              ready.detach()
              return Scope.close(ready.scope, Exit.void)
            }))
          )
          return ready.taken ? "taken" as const : settled ? "closed" as const : "idle" as const
        })
      )

    /** Keeps one ready link to `peer` while it is dialed, a closed or failed one with backoff. */
    const slot = (peer: Peer) =>
      Effect.gen(function*() {
        let failures = 0
        while ((yield* Clock.currentTimeMillis) - peer.lastUsed < PEER_IDLE_MS) {
          const outcome = yield* Effect.either(readyOnce(peer))
          if (Either.isRight(outcome) && outcome.right !== "closed") {
            failures = 0
            continue
          }
          if (Either.isLeft(outcome)) yield* Effect.logDebug(`cluster: no ready link to node ${peer.address}: ${outcome.left.reason}`)
          failures++
          yield* Effect.sleep(backoff(failures))
        }
      })

    /** `address`'s pool, started at its first use; the time of this use noted. */
    const peerOf = (address: string, target: NodeAddress) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const known = peers.get(address)
        if (known !== undefined) {
          known.lastUsed = now
          return known
        }
        const peer: Peer = { address, target, ready: [], lastUsed: now }
        peers.set(address, peer)
        yield* FiberSet.run(
          slots,
          Effect.all(Array.from({ length: POOL_SIZE }, () => slot(peer)), { concurrency: "unbounded", discard: true }).pipe(
            Effect.ensuring(Effect.sync(() => {
              if (peers.get(address) === peer) peers.delete(address)
            }))
          )
        )
        return peer
      })

    const dial = (text: string, header: ForwardHeader) =>
      Effect.gen(function*() {
        const target = parseAddress(text)
        if (target === undefined) return yield* new ConnectError({ host: text, port: 0, reason: "not a node address" })
        const peer = yield* peerOf(text, target)
        return yield* Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            const link = take(peer) ?? (yield* restore(openLink(target)))
            yield* Effect.addFinalizer(() => Scope.close(link.scope, Exit.void))
            link.socket.write(headerFrame(key, link.nonce, header))
            return link.socket
          })
        )
      })

    return NodeLink.of({
      address,
      serve: (serve) => Effect.asVoid(Deferred.succeed(handler, serve)),
      dial,
      ready: (text) => peers.get(text)?.ready.length ?? 0
    })
  })

export const layer = (config: { readonly address: NodeAddress; readonly secret: Redacted.Redacted<string> }): Layer.Layer<
  NodeLink,
  BindError,
  Drain | DescriptorWatch
> => Layer.scoped(NodeLink, make(config))
