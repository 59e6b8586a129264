/**
 * TCP options Node does not expose, set through a real setsockopt (the `sockopt` N-API addon).
 *
 * Node's `setKeepAlive(true, delay)` sets only the idle time; the probe interval and count, and
 * TCP_USER_TIMEOUT, need setsockopt. The constants are Linux's; elsewhere only what Node itself
 * offers is applied.
 */
import type * as net from "node:net"
import { Duration } from "effect"
// A CommonJS native add-on: imported statically, so that a bundler can put in its own loader
// (the single executable's, scripts/build-exe.mjs, which loads it from the executable itself).
import sockoptAddon from "sockopt"

/** Anything with a file descriptor: a connected socket or a listening server. */
type HasFd = net.Socket | net.Server

interface SockOpt {
  readonly getsockopt: (socket: HasFd, level: number, option: number) => number
  readonly setsockopt: (socket: HasFd, level: number, option: number, value: number) => void
}
const sockopt = sockoptAddon as SockOpt

const SOL_SOCKET = 1
const IPPROTO_TCP = 6
export const SocketOption = {
  SNDBUF: 7,
  RCVBUF: 8
} as const
export const TcpOption = {
  KEEPIDLE: 4,
  KEEPINTVL: 5,
  KEEPCNT: 6,
  USER_TIMEOUT: 18
} as const

const isLinux = process.platform === "linux"

/** Reads an integer TCP-level option of a connected socket. */
export const getTcpOption = (socket: net.Socket, option: number): number =>
  sockopt.getsockopt(socket, IPPROTO_TCP, option)

/** Reads an integer socket-level option (SO_SNDBUF, SO_RCVBUF). */
export const getSocketOption = (socket: HasFd, option: number): number =>
  sockopt.getsockopt(socket, SOL_SOCKET, option)

/**
 * Kernel buffer sizes asked for with `--sndbuf` and `--recbuf` (bytes); unset leaves the
 * kernel's autotuning alone. Linux reports back double the value set, and caps what it grants at
 * net.core.wmem_max / rmem_max.
 */
export interface SocketBuffers {
  readonly sndbuf?: number
  readonly rcvbuf?: number
}

export const DEFAULT_BUFFERS: SocketBuffers = {}

/**
 * Sets SO_SNDBUF / SO_RCVBUF on a socket, or on a listening server so that the sockets it accepts
 * inherit them from the first packet (the receive buffer decides the window scale in the
 * handshake). Returns what the kernel granted where it granted less than asked.
 */
export const applyBuffers = (target: HasFd, buffers: SocketBuffers): ReadonlyArray<string> => {
  const capped: Array<string> = []
  const set = (name: string, option: number, value: number | undefined) => {
    if (value === undefined) return
    sockopt.setsockopt(target, SOL_SOCKET, option, value)
    const granted = sockopt.getsockopt(target, SOL_SOCKET, option)
    if (isLinux && granted < value * 2) capped.push(`${name} ${value} was capped by the kernel to ${granted / 2}`)
  }
  set("--sndbuf", SocketOption.SNDBUF, buffers.sndbuf)
  set("--recbuf", SocketOption.RCVBUF, buffers.rcvbuf)
  return capped
}

/** Keepalive on control sockets: probe after 30 s idle, every 10 s, give up after 3 misses. */
export const CONTROL_KEEPALIVE = { idle: Duration.seconds(30), interval: Duration.seconds(10), probes: 3 }

/**
 * How long written data may stay unacknowledged before the kernel drops the connection. A
 * server's heartbeats are always in flight, so a client that vanished without a FIN or RST (cable
 * pulled, laptop asleep) is noticed within this time instead of the kernel's ~15 minutes.
 */
export const CONTROL_USER_TIMEOUT = Duration.seconds(10)

/**
 * Marks a socket as a control connection: TCP keepalive with CONTROL_KEEPALIVE and
 * TCP_USER_TIMEOUT of CONTROL_USER_TIMEOUT. The socket must be connected.
 */
export const tuneControlSocket = (socket: net.Socket): void => watchPeer(socket, CONTROL_KEEPALIVE, CONTROL_USER_TIMEOUT)

/**
 * The same for a cluster's node links (cluster/node-link.ts), tighter: a ready link to a node
 * whose host went silent is found dead in about 5 s, before the visitor it would be handed to
 * waits for it, and a dead node's names expire within 9 s anyway.
 */
export const NODE_LINK_KEEPALIVE = { idle: Duration.seconds(2), interval: Duration.seconds(1), probes: 3 }
export const NODE_LINK_USER_TIMEOUT = Duration.seconds(5)

export const tuneNodeLinkSocket = (socket: net.Socket): void => watchPeer(socket, NODE_LINK_KEEPALIVE, NODE_LINK_USER_TIMEOUT)

const watchPeer = (
  socket: net.Socket,
  keepalive: { readonly idle: Duration.Duration; readonly interval: Duration.Duration; readonly probes: number },
  userTimeout: Duration.Duration
): void => {
  socket.setKeepAlive(true, Duration.toMillis(keepalive.idle))
  if (!isLinux) return
  sockopt.setsockopt(socket, IPPROTO_TCP, TcpOption.KEEPINTVL, Duration.toSeconds(keepalive.interval))
  sockopt.setsockopt(socket, IPPROTO_TCP, TcpOption.KEEPCNT, keepalive.probes)
  sockopt.setsockopt(socket, IPPROTO_TCP, TcpOption.USER_TIMEOUT, Duration.toMillis(userTimeout))
}
