/**
 * The HTTP tunnel's figures: requests through `spore http` against the same web app reached
 * directly, with undici (keep-alive pools, as browsers and HTTP clients use them). Each takes a
 * `host` to send as the Host header (a tunnel reached by host on 127.0.0.1), the URL's otherwise.
 */
import * as net from "node:net"
import { Readable } from "node:stream"
import { Agent, request } from "undici"

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/** `count` sequential GETs of 2 bytes on one keep-alive connection: p50 and p99 in ms. */
const withHost = (host: string | undefined) => host === undefined ? {} : { headers: { host } }

export const requestLatency = async (base: string, count: number, host?: string) => {
  const agent = new Agent({ connections: 1 })
  const times: Array<number> = []
  try {
    for (let i = 0; i < count; i++) {
      const began = performance.now()
      const response = await request(`${base}/small`, { dispatcher: agent, ...withHost(host) })
      await response.body.text()
      times.push(performance.now() - began)
    }
  } finally {
    await agent.close()
  }
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) }
}

/** `count` sequential GETs, each on a new connection: p50 in ms (what a first visit costs). */
export const newConnectionLatency = async (base: string, count: number, host?: string) => {
  const times: Array<number> = []
  for (let i = 0; i < count; i++) {
    const agent = new Agent({ connections: 1, pipelining: 0 })
    const began = performance.now()
    const response = await request(`${base}/small`, { dispatcher: agent, ...withHost(host) })
    await response.body.text()
    times.push(performance.now() - began)
    await agent.destroy()
  }
  times.sort((a, b) => a - b)
  return percentile(times, 0.5)
}

/** Uploads `bytes` in one POST: MB/s. */
export const upload = async (base: string, bytes: number, host?: string) => {
  const chunk = Buffer.alloc(64 * 1024, 9)
  const body = Readable.from((function*() {
    for (let sent = 0; sent < bytes; sent += chunk.length) yield chunk
  })())
  const agent = new Agent()
  const began = performance.now()
  const response = await request(`${base}/upload`, {
    method: "POST",
    body,
    dispatcher: agent,
    headers: { "content-length": String(bytes), ...(host === undefined ? {} : { host }) }
  })
  const counted = Number(await response.body.text())
  const seconds = (performance.now() - began) / 1000
  await agent.close()
  if (counted !== bytes) throw new Error(`upload to ${base}: the app answered ${response.statusCode} ${counted} for ${bytes} bytes`)
  return bytes / seconds / 1e6
}

/** Downloads `bytes` in one GET: MB/s. */
export const download = async (base: string, bytes: number, host?: string) => {
  const agent = new Agent()
  const began = performance.now()
  const response = await request(`${base}/download?bytes=${bytes}`, { dispatcher: agent, ...withHost(host) })
  let received = 0
  for await (const chunk of response.body) received += (chunk as Buffer).length
  const seconds = (performance.now() - began) / 1000
  await agent.close()
  if (received !== bytes) throw new Error(`download: received ${received} of ${bytes} bytes`)
  return bytes / seconds / 1e6
}

/**
 * Opens `count` connections to `base`, each carrying one GET of /small (so each has its data
 * channel on a tunnel), and holds them idle, kept alive.
 */
export const holdIdleVisitors = async (base: string, count: number, host?: string, batch = 100) => {
  const url = new URL(`${base}/small`)
  const held: Array<net.Socket> = []
  const visit = () =>
    new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: url.hostname, port: Number(url.port) }, () => {
        socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${host ?? url.host}\r\n\r\n`)
      })
      socket.once("error", reject)
      socket.once("close", () => reject(new Error(`closed before its answer: ${seen.slice(0, 80)}`)))
      let seen = ""
      const onData = (chunk: Buffer) => {
        seen += chunk.toString("latin1")
        if (seen.endsWith("\r\n\r\nok")) {
          socket.off("data", onData)
          resolve(socket)
        }
      }
      socket.on("data", onData)
    })
  for (let i = 0; i < count; i += batch) held.push(...await Promise.all(Array.from({ length: Math.min(batch, count - i) }, visit)))
  return { close: () => held.forEach((socket) => socket.destroy()) }
}
