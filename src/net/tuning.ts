/**
 * TCP options Node does not expose, set through a real setsockopt (the `sockopt` N-API addon).
 *
 * Node's `setKeepAlive(true, delay)` sets only the idle time; the probe interval and count, and
 * TCP_USER_TIMEOUT, need setsockopt. The constants are Linux's; elsewhere only what Node itself
 * offers is applied.
 */
import { createRequire } from "node:module"
import type * as net from "node:net"
import { Duration } from "effect"

interface SockOpt {
  readonly getsockopt: (socket: net.Socket, level: number, option: number) => number
  readonly setsockopt: (socket: net.Socket, level: number, option: number, value: number) => void
}
const sockopt = createRequire(import.meta.url)("sockopt") as SockOpt

const IPPROTO_TCP = 6
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
export const tuneControlSocket = (socket: net.Socket): void => {
  socket.setKeepAlive(true, Duration.toMillis(CONTROL_KEEPALIVE.idle))
  if (!isLinux) return
  sockopt.setsockopt(socket, IPPROTO_TCP, TcpOption.KEEPINTVL, Duration.toSeconds(CONTROL_KEEPALIVE.interval))
  sockopt.setsockopt(socket, IPPROTO_TCP, TcpOption.KEEPCNT, CONTROL_KEEPALIVE.probes)
  sockopt.setsockopt(socket, IPPROTO_TCP, TcpOption.USER_TIMEOUT, Duration.toMillis(CONTROL_USER_TIMEOUT))
}
