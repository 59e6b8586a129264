/**
 * `npm run bench:admission`: what a flood of half-open handshakes (connect, then silence) costs
 * honest visitors, for Spore and for the real bore 0.6.0 side by side in the same run.
 *
 * Both servers have a secret (so each data stream needs a challenge round trip) and default
 * limits; a flood process opens RATE silent connections a second to the server's control port
 * from 1,000 source addresses; meanwhile VISITORS visitors come one by one through a tunnel to an
 * echo service. For each rate it reports the visitors' new-connection + echo time (p50, p99) and
 * how many were served within a second, the median of RUNS runs. bore's control port is fixed at
 * 7835, so the whole bench re-runs itself in a private network namespace (`unshare -n`, root).
 *
 * Every step is bounded and every process killed at the end.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import { BORE, inPrivateNamespace } from "./namespace.js"
import { killAll, start, startServices, startSpore } from "./processes.js"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const SECRET = "admission-bench-secret"
const RATES = (process.env.BENCH_RATES ?? "0,300,1000,3000").split(",").map(Number)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const VISITORS = 300
const ADDRESSES = 1000
const SERVED_WITHIN_MS = 1000
const GIVE_UP_MS = 5000
/** However slow the server, one run's visitors stop after this; those not tried count as not served. */
const RUN_BUDGET_MS = 20_000

inPrivateNamespace(import.meta.url, 20)

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const quantile = (values: ReadonlyArray<number>, q: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? Number.NaN
}

/** One visitor: ms until 64 bytes came back, or undefined. */
const visit = (port: number) =>
  new Promise<number | undefined>((resolve) => {
    const payload = Buffer.alloc(64, 42)
    const started = performance.now()
    let received = 0
    const socket = net.connect({ host: "127.0.0.1", port })
    socket.setNoDelay(true)
    const finish = (result: number | undefined) => {
      clearTimeout(giveUp)
      socket.destroy()
      resolve(result)
    }
    const giveUp = setTimeout(() => finish(undefined), GIVE_UP_MS)
    socket.on("error", () => finish(undefined))
    socket.on("close", () => finish(undefined))
    socket.once("connect", () => socket.write(payload))
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length
      if (received >= payload.length) finish(performance.now() - started)
    })
  })

interface Target {
  readonly name: string
  readonly control: number
  readonly port: number
}

const startSporeTarget = async (echo: number): Promise<Target> => {
  const server = startSpore(["server", "--bind-addr", "127.0.0.1", "--control-port", "7000", "--min-port", "30000", "--max-port", "30999", "--secret", SECRET])
  await server.waitFor(/server listening on/)
  const client = startSpore(["local", String(echo), "--local-host", "127.0.0.1", "--to", "127.0.0.1", "--control-port", "7000", "--secret", SECRET])
  const port = Number((await client.waitFor(/listening at 127\.0\.0\.1:(\d+)/))[1])
  return { name: "spore", control: 7000, port }
}

const startBoreTarget = async (echo: number): Promise<Target> => {
  const server = start(BORE, ["server", "--min-port", "31000", "--max-port", "31999", "--secret", SECRET])
  await server.waitFor(/server listening/)
  const client = start(BORE, ["local", String(echo), "--local-host", "127.0.0.1", "--to", "127.0.0.1", "--secret", SECRET])
  const port = Number((await client.waitFor(/listening at 127\.0\.0\.1:(\d+)/))[1])
  return { name: "bore 0.6.0", control: 7835, port }
}

/** One run at one rate against one target: the visitors' times and the flood's actual rate. */
const measure = async (target: Target, rate: number) => {
  const flood = start(process.execPath, [`${ROOT}bench/flood.mjs`, String(target.control), String(rate), String(ADDRESSES), "120"])
  let made = 0
  flood.child.stdout?.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (!line.startsWith("{")) continue
      const { opened, seconds } = JSON.parse(line) as { opened: number; seconds: number }
      made = opened / seconds
    }
  })
  // Let the flood reach its steady state (each silent socket lives 3 s).
  await sleep(rate === 0 ? 100 : 3500)
  const times: Array<number | undefined> = []
  const deadline = performance.now() + RUN_BUDGET_MS
  for (let n = 0; n < VISITORS && performance.now() < deadline; n++) times.push(await visit(target.port))
  flood.child.kill("SIGKILL")
  const served = times.filter((time): time is number => time !== undefined && time <= SERVED_WITHIN_MS)
  // Let the flood's sockets go before the next run.
  await sleep(4500)
  return {
    p50: quantile(times.map((time) => time ?? Number.POSITIVE_INFINITY), 0.5),
    p99: quantile(times.map((time) => time ?? Number.POSITIVE_INFINITY), 0.99),
    served: served.length / VISITORS,
    floodRate: made
  }
}

const services = await startServices()
const targets = [await startBoreTarget(services.echo), await startSporeTarget(services.echo)]
interface Row {
  readonly rate: number
  readonly target: string
  readonly p50: number
  readonly p99: number
  readonly served: number
  readonly floodRate: number
}
const rows: Array<Row> = []
try {
  for (const rate of RATES) {
    for (const target of targets) {
      const results = []
      for (let run = 0; run < RUNS; run++) results.push(await measure(target, rate))
      rows.push({
        rate,
        target: target.name,
        p50: median(results.map((r) => r.p50)),
        p99: median(results.map((r) => r.p99)),
        served: median(results.map((r) => r.served)),
        floodRate: median(results.map((r) => r.floodRate))
      })
      process.stderr.write(`${target.name} at ${rate}/s: done\n`)
    }
  }
} finally {
  killAll()
}

const table = [
  "| half-open handshakes/s (asked, made) | server | visitor p50 (ms) | visitor p99 (ms) | served within 1 s |",
  "| --- | --- | --- | --- | --- |",
  ...rows.map((row) =>
    `| ${row.rate} (${row.floodRate.toFixed(0)}) | ${row.target} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ${(row.served * 100).toFixed(1)}% |`)
].join("\n")
console.log(table)
mkdirSync(`${ROOT}bench/results`, { recursive: true })
writeFileSync(`${ROOT}bench/results/admission.json`, JSON.stringify({ runs: RUNS, visitors: VISITORS, addresses: ADDRESSES, rows }, null, 2))
process.exit(0)
