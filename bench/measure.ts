/**
 * The measurements themselves, each against any TCP port: the same code measures a direct
 * connection and one through the tunnel.
 */
import { randomBytes } from "node:crypto"
import * as net from "node:net"
import { STEP_LIMIT_MS } from "./processes.js"

const CHUNK = randomBytes(64 * 1024)

const connect = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true }, () => resolve(socket))
    socket.setNoDelay(true)
    socket.once("error", reject)
  })

const bounded = <A>(what: string, promise: Promise<A>) =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} took longer than ${STEP_LIMIT_MS} ms`)), STEP_LIMIT_MS)
    promise.then((value) => {
      clearTimeout(timer)
      resolve(value)
    }, reject)
  })

/** Writes `bytes` in 64 KiB chunks, respecting backpressure, then ends the stream. */
const send = (socket: net.Socket, bytes: number) =>
  new Promise<void>((resolve) => {
    let left = bytes
    const pump = () => {
      while (left > 0) {
        const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left)
        left -= chunk.length
        if (!socket.write(chunk)) return void socket.once("drain", pump)
      }
      socket.end()
      resolve()
    }
    pump()
  })

/** MB/s (10^6 bytes) of `bytes` sent one way into the sink on `port`, until the sink has all. */
export const throughputOneWay = (port: number, bytes: number) =>
  bounded("one-way transfer", (async () => {
    const socket = await connect(port)
    const started = performance.now()
    const counted = new Promise<number>((resolve) => {
      let reply = ""
      socket.on("data", (chunk: Buffer) => (reply += chunk.toString()))
      socket.on("end", () => resolve(Number(reply.trim())))
    })
    await send(socket, bytes)
    const received = await counted
    const seconds = (performance.now() - started) / 1000
    socket.destroy()
    if (received !== bytes) throw new Error(`the sink got ${received} of ${bytes} bytes`)
    return bytes / seconds / 1e6
  })())

/** MB/s in each direction of `bytes` sent to the echo on `port` while the echo comes back. */
export const throughputBothWays = (port: number, bytes: number) =>
  bounded("two-way transfer", (async () => {
    const socket = await connect(port)
    const started = performance.now()
    const echoed = new Promise<number>((resolve) => {
      let received = 0
      socket.on("data", (chunk: Buffer) => (received += chunk.length))
      socket.on("end", () => resolve(received))
    })
    await send(socket, bytes)
    const received = await echoed
    const seconds = (performance.now() - started) / 1000
    socket.destroy()
    if (received !== bytes) throw new Error(`the echo returned ${received} of ${bytes} bytes`)
    return bytes / seconds / 1e6
  })())

/** One new connection: connect, send a byte, get it back, close. Milliseconds. */
const roundTrip = async (port: number) => {
  const started = performance.now()
  const socket = await connect(port)
  await new Promise<void>((resolve) => {
    socket.once("data", () => resolve())
    socket.write("x")
  })
  socket.destroy()
  return performance.now() - started
}

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/** p50 and p99 in ms of `count` sequential new connections to the echo on `port`. */
export const connectionLatency = (port: number, count: number) =>
  bounded("sequential connections", (async () => {
    const times: Array<number> = []
    for (let i = 0; i < count; i++) times.push(await roundTrip(port))
    times.sort((a, b) => a - b)
    return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) }
  })())

/** New connections per second with `workers` at once, `total` connections in all. */
export const connectionRate = (port: number, workers: number, total: number) =>
  bounded("concurrent connections", (async () => {
    let started = 0
    const began = performance.now()
    await Promise.all(Array.from({ length: workers }, async () => {
      while (started < total) {
        started++
        await roundTrip(port)
      }
    }))
    return total / ((performance.now() - began) / 1000)
  })())

/** Opens `count` connections to the echo on `port`, each proved with one echoed byte, and holds them. */
export const holdIdle = (port: number, count: number, batch = 250) =>
  bounded("idle connections", (async () => {
    const held: Array<net.Socket> = []
    for (let i = 0; i < count; i += batch) {
      held.push(...await Promise.all(Array.from({ length: Math.min(batch, count - i) }, async () => {
        const socket = await connect(port)
        await new Promise<void>((resolve) => {
          socket.once("data", () => resolve())
          socket.write("x")
        })
        return socket
      })))
    }
    return { close: () => held.forEach((socket) => socket.destroy()) }
  })())
