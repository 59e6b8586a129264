/**
 * The `delayed` section of `npm run bench`: a visitor's first response byte when the link between
 * tunnel client and server is slow (a 20 ms RTT, delay-relay.ts). That is where a data stream
 * opened per visitor costs round trips, and where a warm pool of them (`spore local --pool N`)
 * should save them. The visitor and the echo service stay on loopback; only the client's
 * connections to the control port, and so every data stream it opens, cross the relay.
 */
import { setTimeout as sleep } from "node:timers/promises"
import { startDelayRelay } from "./delay-relay.js"
import { connectionLatency } from "./measure.js"
import { BORE } from "./namespace.js"
import { start, startServerOf, startSpore } from "./processes.js"

const ONE_WAY_MS = 10
export const RTT_MS = 2 * ONE_WAY_MS
/** Per row and run; 120 makes p99 the second slowest rather than the slowest. */
export const VISITORS = 120
const WARM_UP = 20
/** Between visitors: a pool of four refills in time (a new stream costs 1.5 RTT here, its challenge none). */
export const PAUSE_MS = 30

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/** p50 and p99 in ms of `count` visitors one after the other, each connect to first echoed byte. */
const visitors = async (port: number, count: number) => {
  const times: Array<number> = []
  for (let i = 0; i < count; i++) {
    // One visitor: connect, send a byte, its echo back (the latency figure's round trip).
    times.push((await connectionLatency(port, 1)).p50)
    await sleep(PAUSE_MS)
  }
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) }
}

/** Each row's p50 and p99 in each of `runs` runs (rows interleaved within a run), by row name. */
export const slowLinkFirstByte = async (echo: number, runs: number) => {
  // The servers listen on 127.0.0.1:7835 (bore) and 127.0.0.2:7835 (Spore). bore's client always
  // dials port 7835, so each relay takes port 7835 on an address of its own.
  const servers = [await startServerOf("bore", BORE), await startServerOf("spore", BORE)]
  const relays = [
    await startDelayRelay({ host: "127.0.0.3", port: 7835 }, { host: "127.0.0.1", port: 7835 }, ONE_WAY_MS),
    await startDelayRelay({ host: "127.0.0.4", port: 7835 }, { host: "127.0.0.2", port: 7835 }, ONE_WAY_MS)
  ]
  const local = ["local", String(echo), "--local-host", "127.0.0.1"]
  const spore = (pool: number) => startSpore([...local, "--to", "127.0.0.4", "--control-port", "7835", "--pool", String(pool)])
  const clients = [
    { name: "bore↔bore", started: start(BORE, [...local, "--to", "127.0.0.3"]) },
    { name: "spore↔spore, --pool 0", started: spore(0) },
    { name: "spore↔spore, --pool 4", started: spore(4) }
  ]
  const ports: Record<string, number> = { direct: echo }
  for (const client of clients) ports[client.name] = Number((await client.started.waitFor(/listening at [\d.]+:(\d+)/))[1])

  for (const port of Object.values(ports)) await visitors(port, WARM_UP)
  const results: Record<string, Array<{ readonly p50: number; readonly p99: number }>> = {}
  for (let i = 0; i < runs; i++) {
    for (const [name, port] of Object.entries(ports)) (results[name] ??= []).push(await visitors(port, VISITORS))
  }

  for (const child of [...servers, ...clients.map((client) => client.started.child)]) child.kill("SIGKILL")
  for (const relay of relays) await relay.close()
  return results
}
