/**
 * `npm run bench`: Spore against a direct loopback connection, measured in the same run, each
 * figure the median of RUNS runs. Prints a table and writes bench/results/latest.json.
 *
 * Everything runs on 127.0.0.1 and stops by itself: every step is bounded (STEP_LIMIT_MS) and
 * every process is killed at the end.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { connectionLatency, connectionRate, holdIdle, throughputBothWays, throughputOneWay } from "./measure.js"
import { download, holdIdleVisitors, newConnectionLatency, requestLatency, upload } from "./http.js"
import { killAll, rss, start, startHttpTunnel, startServices, startSpore, startTunnel } from "./processes.js"

const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const GiB = 1 << 30
const TRANSFER = Number(process.env.BENCH_BYTES ?? GiB)
const SEQUENTIAL = 2000
const WORKERS = 50
const CONCURRENT_TOTAL = 5000
const IDLE = Number(process.env.BENCH_IDLE ?? 5000)

/** BENCH_ONLY=throughput,latency,memory,startup,http runs only those sections. */
const ONLY = new Set((process.env.BENCH_ONLY ?? "throughput,latency,memory,startup,http").split(","))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

interface Row {
  readonly figure: string
  readonly unit: string
  readonly direct: number
  readonly spore: number
  /** How Spore stands against the target, in words. */
  readonly target: string
}

const rows: Array<Row> = []
/** The median of RUNS runs, after one discarded warm-up run (JIT, buffers, CPU frequency). */
const runs = async (measure: () => Promise<number>) => {
  await measure()
  const values: Array<number> = []
  for (let i = 0; i < RUNS; i++) values.push(await measure())
  return median(values)
}

const services = await startServices()
const tunnelToSink = await startTunnel(services.sink)
const tunnelToEcho = await startTunnel(services.echo)

// Throughput.
if (ONLY.has("throughput")) {
  const direct = await runs(() => throughputOneWay(services.sink, TRANSFER))
  const spore = await runs(() => throughputOneWay(tunnelToSink.port, TRANSFER))
  rows.push({ figure: "throughput, 1 GiB one way", unit: "MB/s", direct, spore, target: `ratio ≥ 0.25: ${spore / direct >= 0.25 ? "met" : "missed"}` })
}
if (ONLY.has("throughput")) {
  const direct = await runs(() => throughputBothWays(services.echo, TRANSFER))
  const spore = await runs(() => throughputBothWays(tunnelToEcho.port, TRANSFER))
  rows.push({ figure: "throughput, 1 GiB both ways at once (each way)", unit: "MB/s", direct, spore, target: `ratio ≥ 0.25: ${spore / direct >= 0.25 ? "met" : "missed"}` })
}

// Connection latency and rate.
if (ONLY.has("latency")) {
  const direct = { p50: [] as Array<number>, p99: [] as Array<number> }
  const spore = { p50: [] as Array<number>, p99: [] as Array<number> }
  for (let i = 0; i < RUNS; i++) {
    const d = await connectionLatency(services.echo, SEQUENTIAL)
    const s = await connectionLatency(tunnelToEcho.port, SEQUENTIAL)
    direct.p50.push(d.p50), direct.p99.push(d.p99), spore.p50.push(s.p50), spore.p99.push(s.p99)
  }
  const added = median(spore.p50) - median(direct.p50)
  rows.push({ figure: "new connection + 1-byte echo, p50", unit: "ms", direct: median(direct.p50), spore: median(spore.p50), target: `added ≤ 0.5 ms: ${added.toFixed(3)} ms, ${added <= 0.5 ? "met" : "missed"}` })
  rows.push({ figure: "new connection + 1-byte echo, p99", unit: "ms", direct: median(direct.p99), spore: median(spore.p99), target: "" })
}
if (ONLY.has("latency")) {
  const direct = await runs(() => connectionRate(services.echo, WORKERS, CONCURRENT_TOTAL))
  const spore = await runs(() => connectionRate(tunnelToEcho.port, WORKERS, CONCURRENT_TOTAL))
  rows.push({ figure: `connections/s, ${WORKERS} concurrent workers`, unit: "conn/s", direct, spore, target: "" })
}
tunnelToSink.server.kill("SIGKILL"), tunnelToSink.client.kill("SIGKILL")
tunnelToEcho.server.kill("SIGKILL"), tunnelToEcho.client.kill("SIGKILL")

// Memory per idle connection: fresh processes each run, RSS before and after IDLE connections.
if (ONLY.has("memory")) {
  const KiB = 1024
  const perServer: Array<number> = []
  const perClient: Array<number> = []
  const perDirect: Array<number> = []
  for (let i = 0; i < RUNS; i++) {
    const tunnel = await startTunnel(services.echo)
    await holdIdle(tunnel.port, 50).then((held) => held.close()) // warm up the code paths
    await sleep(1000)
    const before = { server: rss(tunnel.server), client: rss(tunnel.client) }
    const held = await holdIdle(tunnel.port, IDLE)
    await sleep(2000)
    perServer.push((rss(tunnel.server) - before.server) / IDLE / KiB)
    perClient.push((rss(tunnel.client) - before.client) / IDLE / KiB)
    held.close()
    tunnel.server.kill("SIGKILL"), tunnel.client.kill("SIGKILL")

    // Direct: a fresh echo process holding the same number of plain connections.
    const fresh = await startServices()
    await holdIdle(fresh.echo, 50).then((held) => held.close())
    await sleep(1000)
    const directBefore = rss(fresh.child)
    const direct = await holdIdle(fresh.echo, IDLE)
    await sleep(2000)
    perDirect.push((rss(fresh.child) - directBefore) / IDLE / KiB)
    direct.close()
    fresh.child.kill("SIGKILL")
  }
  const server = median(perServer)
  const client = median(perClient)
  const direct = median(perDirect)
  rows.push({ figure: `RSS per idle connection (${IDLE} open), server`, unit: "KiB", direct, spore: server, target: `< 30 KiB: ${server < 30 ? "met" : "missed"}` })
  rows.push({ figure: `RSS per idle connection (${IDLE} open), client`, unit: "KiB", direct, spore: client, target: `< 30 KiB: ${client < 30 ? "met" : "missed"}` })
}

// HTTP tunnels: `spore http` through the server's front (path routing), against the web app.
if (ONLY.has("http")) {
  const key = "bench-key-0123456789abcdef"
  const keyFile = join(mkdtempSync(join(tmpdir(), "spore-bench-")), "api-keys")
  writeFileSync(keyFile, `${key}\n`)
  const tunnel = await startHttpTunnel(services.web, keyFile, key)
  const direct = `http://127.0.0.1:${services.web}`
  const spore = `http://127.0.0.1:${tunnel.front}/t/bench`
  const HTTP_BYTES = Math.min(TRANSFER, 256 * 1024 * 1024)
  const MiB = HTTP_BYTES / (1024 * 1024)
  const up = { direct: await runs(() => upload(direct, HTTP_BYTES)), spore: await runs(() => upload(spore, HTTP_BYTES)) }
  rows.push({ figure: `http POST of ${MiB} MiB`, unit: "MB/s", ...up, target: "" })
  const down = { direct: await runs(() => download(direct, HTTP_BYTES)), spore: await runs(() => download(spore, HTTP_BYTES)) }
  rows.push({ figure: `http GET of ${MiB} MiB`, unit: "MB/s", ...down, target: "" })
  const kept = { direct: [] as Array<number>, spore: [] as Array<number> }
  const fresh = { direct: [] as Array<number>, spore: [] as Array<number> }
  for (let i = 0; i < RUNS; i++) {
    kept.direct.push((await requestLatency(direct, SEQUENTIAL)).p50)
    kept.spore.push((await requestLatency(spore, SEQUENTIAL)).p50)
    fresh.direct.push(await newConnectionLatency(direct, SEQUENTIAL / 4))
    fresh.spore.push(await newConnectionLatency(spore, SEQUENTIAL / 4))
  }
  rows.push({ figure: "http GET on a kept-alive connection, p50", unit: "ms", direct: median(kept.direct), spore: median(kept.spore), target: "" })
  rows.push({ figure: "http GET on a new connection, p50", unit: "ms", direct: median(fresh.direct), spore: median(fresh.spore), target: "" })
  tunnel.server.kill("SIGKILL"), tunnel.client.kill("SIGKILL")

  // Memory per idle kept-alive visitor (one request done, its data channel open): fresh
  // processes each run; the direct figure is the web app's own RSS per connection.
  const HTTP_IDLE = Math.min(IDLE, 1000)
  const KiB = 1024
  const perServer: Array<number> = []
  const perClient: Array<number> = []
  const perDirect: Array<number> = []
  for (let i = 0; i < RUNS; i++) {
    const fresh = await startServices()
    const idleTunnel = await startHttpTunnel(fresh.web, keyFile, key)
    const base = `http://127.0.0.1:${idleTunnel.front}/t/bench`
    await holdIdleVisitors(base, 50).then((held) => held.close())
    await sleep(1000)
    const before = { server: rss(idleTunnel.server), client: rss(idleTunnel.client) }
    const held = await holdIdleVisitors(base, HTTP_IDLE)
    await sleep(2000)
    perServer.push((rss(idleTunnel.server) - before.server) / HTTP_IDLE / KiB)
    perClient.push((rss(idleTunnel.client) - before.client) / HTTP_IDLE / KiB)
    held.close()
    await sleep(500)
    const directBefore = rss(fresh.child)
    const direct = await holdIdleVisitors(`http://127.0.0.1:${fresh.web}`, HTTP_IDLE)
    await sleep(2000)
    perDirect.push((rss(fresh.child) - directBefore) / HTTP_IDLE / KiB)
    direct.close()
    idleTunnel.server.kill("SIGKILL"), idleTunnel.client.kill("SIGKILL"), fresh.child.kill("SIGKILL")
  }
  rows.push({ figure: `http: RSS per idle visitor (${HTTP_IDLE} open), server`, unit: "KiB", direct: median(perDirect), spore: median(perServer), target: "" })
  rows.push({ figure: `http: RSS per idle visitor (${HTTP_IDLE} open), client`, unit: "KiB", direct: median(perDirect), spore: median(perClient), target: "" })
}

// Start-up: `spore local` from spawn to "listening at", against bare `node` printing a line.
if (ONLY.has("startup")) {
  const server = startSpore(["server", "--bind-addr", "127.0.0.1", "--control-port", "0", "--min-port", "30000", "--max-port", "32000"])
  const control = (await server.waitFor(/server listening on 127\.0\.0\.1:(\d+)/))[1]!
  const startup = async (begin: () => ReturnType<typeof start>, pattern: RegExp) => {
    const began = performance.now()
    const started = begin()
    await started.waitFor(pattern)
    const elapsed = performance.now() - began
    started.child.kill("SIGKILL")
    return elapsed
  }
  const direct = await runs(() => startup(() => start(process.execPath, ["-e", "console.error('ready')"]), /ready/))
  const spore = await runs(() =>
    startup(() => startSpore(["local", String(services.echo), "--to", "127.0.0.1", "--control-port", control]), /listening at/))
  rows.push({ figure: "start to \"listening at\" (direct: bare node start)", unit: "ms", direct, spore, target: `< 500 ms: ${spore < 500 ? "met" : "missed"}` })
  server.child.kill("SIGKILL")
}
killAll()

// Report.
const format = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(3))
const header = ["figure", "unit", "direct", "spore", "spore/direct", "target"]
const table = rows.map((row) => [row.figure, row.unit, format(row.direct), format(row.spore), (row.spore / row.direct).toFixed(2), row.target])
const widths = header.map((title, column) => Math.max(title.length, ...table.map((line) => line[column]!.length)))
const line = (cells: ReadonlyArray<string>) => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`
const output = [line(header), line(widths.map((width) => "-".repeat(width))), ...table.map(line)].join("\n")
process.stdout.write(`\nSpore vs direct on 127.0.0.1, median of ${RUNS} runs (${new Date().toISOString()}):\n\n${output}\n`)

mkdirSync(new URL("./results/", import.meta.url), { recursive: true })
const report = { date: new Date().toISOString(), runs: RUNS, node: process.version, rows: rows.map((row) => ({ ...row, ratio: row.spore / row.direct })) }
writeFileSync(new URL("./results/latest.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`)
process.stdout.write("\nwritten to bench/results/latest.json\n")
process.exit(0)
