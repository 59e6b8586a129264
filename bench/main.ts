/**
 * `npm run bench`: the connection path of bore and Spore side by side, in one run: a direct
 * loopback connection, the real bore 0.6.0 (server and client), Spore (server and client), the
 * two mixed pairings, and Spore with TLS between its peers, each figure the median of RUNS runs.
 * Then Spore's HTTP tunnels against a direct connection to the web app, and a visitor's first
 * byte over a slow link between tunnel client and server (delayed.ts). Prints the tables (ratios
 * to bore↔bore, and TLS's throughput over plaintext Spore's) and writes bench/results/latest.json.
 *
 * bore's control port is fixed at 7835, so the whole bench runs in a private network namespace
 * (namespace.ts). Everything is on loopback and stops by itself: every step is bounded
 * (STEP_LIMIT_MS) and every process is killed at the end.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { connectionLatency, connectionRate, holdIdle, throughputBothWays, throughputOneWay } from "./measure.js"
import { download, holdIdleVisitors, newConnectionLatency, requestLatency, upload } from "./http.js"
import { openFileLimits } from "../src/net/descriptor-watch.js"
import { BORE, inPrivateNamespace } from "./namespace.js"
import { PAUSE_MS, RTT_MS, slowLinkFirstByte, VISITORS } from "./delayed.js"
import type { ChildProcess } from "node:child_process"
import { cpuMs, killAll, timeToOutput, rss, type Side, sporeServerArgs, start, startClientOf, HTTP_BENCH_DOMAIN, startClusterTunnel, startHttpTunnel, startServerOf, startServices, startSpore } from "./processes.js"

inPrivateNamespace(import.meta.url, 25)

const RUNS = Number(process.env.BENCH_RUNS ?? 5)
/** Memory runs start fresh processes and hold thousands of connections: fewer of them. */
const MEMORY_RUNS = Number(process.env.BENCH_MEMORY_RUNS ?? 3)
/** A delayed run paces its visitors over a slow link, about 30 s: fewer of them too. */
const DELAYED_RUNS = Number(process.env.BENCH_DELAYED_RUNS ?? 3)
const MiB = 1 << 20
const TRANSFER = Number(process.env.BENCH_BYTES ?? 512 * MiB)
const SEQUENTIAL = 1000
const WORKERS = 50
const CONCURRENT_TOTAL = 3000
const IDLE = Number(process.env.BENCH_IDLE ?? 5000)
/**
 * Connections held at once: 10,000, or as many as the hard descriptor limit allows a tunnel's
 * server and client, which hold two descriptors for each.
 */
const HELD = Number(process.env.BENCH_HELD ?? Math.min(10_000, Math.floor(((openFileLimits()?.hard ?? 20_000) - 500) / 2)))

/** BENCH_ONLY=throughput,latency,memory,startup,http,cluster,delayed runs only those sections. */
const ONLY = new Set((process.env.BENCH_ONLY ?? "throughput,latency,memory,startup,http,cluster,delayed").split(","))

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

/**
 * The four ways round, named server side first, and Spore↔Spore once more without its warm pool
 * (on by default), so that the plain path (bore's) is measured between two Spores too; last,
 * Spore↔Spore with TLS between the peers (control, data and pool streams; a server of its own
 * with the certificate in test/fixtures/tls, processes.ts), in every tunnel row but the slow-link
 * ones (delayed.ts: bore's and the pool's, over plaintext) and HTTP's (a table of its own).
 */
const PAIRINGS: ReadonlyArray<{ readonly name: string; readonly server: Side; readonly client: Side; readonly clientArgs?: ReadonlyArray<string> }> = [
  { name: "bore↔bore", server: "bore", client: "bore" },
  { name: "spore↔spore", server: "spore", client: "spore" },
  { name: "spore↔spore --pool 0", server: "spore", client: "spore", clientArgs: ["--pool", "0"] },
  { name: "bore server, spore client", server: "bore", client: "spore" },
  { name: "spore server, bore client", server: "spore", client: "bore" },
  { name: "spore↔spore (TLS)", server: "spore-tls", client: "spore-tls" }
]
const TLS_PAIRING = "spore↔spore (TLS)"

interface Row {
  readonly figure: string
  readonly unit: string
  /** By column: "direct" and each pairing's name; a figure may lack some. */
  readonly values: Readonly<Record<string, number>>
  /** Higher is better (throughput, rates) or lower (times, memory). */
  readonly better: "higher" | "lower"
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

// One server of each program and, for each pairing, a tunnel to the sink and one to the echo.
if (ONLY.has("throughput") || ONLY.has("latency")) {
  const servers: Record<Side, ChildProcess> = {
    bore: await startServerOf("bore", BORE),
    spore: await startServerOf("spore", BORE),
    "spore-tls": await startServerOf("spore-tls", BORE)
  }
  type Client = Awaited<ReturnType<typeof startClientOf>>
  const tunnels: Array<(typeof PAIRINGS)[number] & { readonly sink: Client; readonly echo: Client }> = []
  for (const pairing of PAIRINGS) {
    tunnels.push({
      ...pairing,
      sink: await startClientOf(pairing.client, pairing.server, services.sink, BORE, pairing.clientArgs),
      echo: await startClientOf(pairing.client, pairing.server, services.echo, BORE, pairing.clientArgs)
    })
  }
  const each = async (measure: (port: number) => Promise<number>, port: (tunnel: (typeof tunnels)[number]) => number, direct: number) => {
    // Every column measured in the same way, one after the other.
    const values: Record<string, number> = { direct: await runs(() => measure(direct)) }
    for (const tunnel of tunnels) values[tunnel.name] = await runs(() => measure(port(tunnel)))
    return values
  }

  if (ONLY.has("throughput")) {
    const size = `${TRANSFER / MiB} MiB`
    rows.push({ figure: `throughput, ${size} one way`, unit: "MB/s", better: "higher", values: await each((port) => throughputOneWay(port, TRANSFER), (t) => t.sink.port, services.sink) })
    rows.push({ figure: `throughput, ${size} both ways at once (each way)`, unit: "MB/s", better: "higher", values: await each((port) => throughputBothWays(port, TRANSFER), (t) => t.echo.port, services.echo) })
  }

  if (ONLY.has("latency")) {
    // Sequential new connections: latency, and the CPU each side's process spent per connection.
    const p50: Record<string, Array<number>> = {}
    const p99: Record<string, Array<number>> = {}
    const serverCpu: Record<string, Array<number>> = {}
    const clientCpu: Record<string, Array<number>> = {}
    const push = (table: Record<string, Array<number>>, key: string, value: number) => (table[key] ??= []).push(value)
    await connectionLatency(services.echo, SEQUENTIAL / 10)
    for (const tunnel of tunnels) await connectionLatency(tunnel.echo.port, SEQUENTIAL / 10)
    for (let i = 0; i < RUNS; i++) {
      const direct = await connectionLatency(services.echo, SEQUENTIAL)
      push(p50, "direct", direct.p50), push(p99, "direct", direct.p99)
      for (const tunnel of tunnels) {
        const server = servers[tunnel.server]
        const before = { server: cpuMs(server), client: cpuMs(tunnel.echo.child) }
        const measured = await connectionLatency(tunnel.echo.port, SEQUENTIAL)
        push(p50, tunnel.name, measured.p50), push(p99, tunnel.name, measured.p99)
        push(serverCpu, tunnel.name, (cpuMs(server) - before.server) / SEQUENTIAL)
        push(clientCpu, tunnel.name, (cpuMs(tunnel.echo.child) - before.client) / SEQUENTIAL)
      }
    }
    const medians = (table: Record<string, Array<number>>) => Object.fromEntries(Object.entries(table).map(([key, values]) => [key, median(values)]))
    rows.push({ figure: "new connection + 1-byte echo, p50", unit: "ms", better: "lower", values: medians(p50) })
    rows.push({ figure: "new connection + 1-byte echo, p99", unit: "ms", better: "lower", values: medians(p99) })
    rows.push({ figure: "CPU per new connection, server process", unit: "ms", better: "lower", values: medians(serverCpu) })
    rows.push({ figure: "CPU per new connection, client process", unit: "ms", better: "lower", values: medians(clientCpu) })
    rows.push({ figure: `connections/s, ${WORKERS} concurrent workers`, unit: "conn/s", better: "higher", values: await each((port) => connectionRate(port, WORKERS, CONCURRENT_TOTAL), (t) => t.echo.port, services.echo) })
  }
  for (const server of Object.values(servers)) server.kill("SIGKILL")
  for (const tunnel of tunnels) tunnel.sink.child.kill("SIGKILL"), tunnel.echo.child.kill("SIGKILL")
  await sleep(500)
}

// Memory per idle connection: fresh processes each run, RSS before and after IDLE connections;
// in the first run, then HELD connections at once (how many could be held).
if (ONLY.has("memory")) {
  const KiB = 1024
  const perServer: Record<string, Array<number>> = {}
  const perClient: Record<string, Array<number>> = {}
  const held: Record<string, number> = {}
  for (let i = 0; i < MEMORY_RUNS; i++) {
    for (const pairing of PAIRINGS) {
      const server = await startServerOf(pairing.server, BORE)
      const client = await startClientOf(pairing.client, pairing.server, services.echo, BORE, pairing.clientArgs)
      await holdIdle(client.port, 50).then((warm) => warm.close()) // warm up the code paths
      await sleep(1000)
      const before = { server: rss(server), client: rss(client.child) }
      const idle = await holdIdle(client.port, IDLE)
      await sleep(2000)
      ;(perServer[pairing.name] ??= []).push((rss(server) - before.server) / IDLE / KiB)
      ;(perClient[pairing.name] ??= []).push((rss(client.child) - before.client) / IDLE / KiB)
      if (i === 0 && HELD > IDLE) {
        const more = await holdIdle(client.port, HELD - IDLE).then((extra) => extra, () => undefined)
        held[pairing.name] = more === undefined ? Number.NaN : HELD
        more?.close()
      }
      idle.close()
      server.kill("SIGKILL"), client.child.kill("SIGKILL")
      await sleep(500)
    }
  }
  const medians = (table: Record<string, Array<number>>) => Object.fromEntries(Object.entries(table).map(([key, values]) => [key, median(values)]))
  rows.push({ figure: `RSS per idle connection (${IDLE} open), server`, unit: "KiB", better: "lower", values: medians(perServer) })
  rows.push({ figure: `RSS per idle connection (${IDLE} open), client`, unit: "KiB", better: "lower", values: medians(perClient) })
  if (HELD > IDLE) rows.push({ figure: `connections held at once (of ${HELD})`, unit: "conns", better: "higher", values: held })
}

// Start-up: a client from spawn to "listening at", against bare `node` printing a line.
if (ONLY.has("startup")) {
  const startup = timeToOutput
  const servers = [await startServerOf("bore", BORE), await startServerOf("spore", BORE), await startServerOf("spore-tls", BORE)]
  const values: Record<string, number> = {
    direct: await runs(() => startup(() => start(process.execPath, ["-e", "console.error('ready')"]), /ready/))
  }
  for (const pairing of PAIRINGS) {
    values[pairing.name] = await runs(() =>
      startup(() =>
        pairing.client === "bore"
          ? start(BORE, ["local", String(services.echo), "--local-host", "127.0.0.1", "--to", pairing.server === "bore" ? "127.0.0.1" : "127.0.0.2"])
          : startSpore(["local", String(services.echo), "--local-host", "127.0.0.1", ...sporeServerArgs(pairing.server), ...(pairing.clientArgs ?? [])]), /listening at/))
  }
  rows.push({ figure: "start to \"listening at\" (direct: bare node start)", unit: "ms", better: "lower", values })
  for (const server of servers) server.kill("SIGKILL")
}

/** Spore's HTTP tunnels, against the web app directly (bore has none). */
const httpRows: Array<{ readonly figure: string; readonly unit: string; readonly direct: number; readonly spore: number }> = []
// HTTP tunnels: `spore http` through the server's front, against the web app; by host (the
// tunnel has the host to itself, keep-alive kept), and the latencies by path too (/t/NAME/: a
// channel per request, so that its response head can be kept inside the prefix).
if (ONLY.has("http")) {
  const key = "bench-key-0123456789abcdef"
  const keyFile = join(mkdtempSync(join(tmpdir(), "spore-bench-")), "api-keys")
  writeFileSync(keyFile, `${key}\n`)
  const tunnel = await startHttpTunnel(services.web, keyFile, key)
  const direct = `http://127.0.0.1:${services.web}`
  const spore = `http://127.0.0.1:${tunnel.front}`
  const host = `bench.${HTTP_BENCH_DOMAIN}:${tunnel.front}`
  const byPath = `http://127.0.0.1:${tunnel.front}/t/bench`
  const HTTP_BYTES = Math.min(TRANSFER, 256 * MiB)
  const size = `${HTTP_BYTES / MiB} MiB`
  const up = { direct: await runs(() => upload(direct, HTTP_BYTES)), spore: await runs(() => upload(spore, HTTP_BYTES, host)) }
  httpRows.push({ figure: `http POST of ${size}`, unit: "MB/s", ...up })
  const down = { direct: await runs(() => download(direct, HTTP_BYTES)), spore: await runs(() => download(spore, HTTP_BYTES, host)) }
  httpRows.push({ figure: `http GET of ${size}`, unit: "MB/s", ...down })
  const kept = { direct: [] as Array<number>, spore: [] as Array<number>, path: [] as Array<number> }
  const fresh = { direct: [] as Array<number>, spore: [] as Array<number>, path: [] as Array<number> }
  for (let i = 0; i < RUNS; i++) {
    kept.direct.push((await requestLatency(direct, SEQUENTIAL)).p50)
    kept.spore.push((await requestLatency(spore, SEQUENTIAL, host)).p50)
    kept.path.push((await requestLatency(byPath, SEQUENTIAL)).p50)
    fresh.direct.push(await newConnectionLatency(direct, SEQUENTIAL / 4))
    fresh.spore.push(await newConnectionLatency(spore, SEQUENTIAL / 4, host))
    fresh.path.push(await newConnectionLatency(byPath, SEQUENTIAL / 4))
  }
  httpRows.push({ figure: "http GET on a kept-alive connection, p50", unit: "ms", direct: median(kept.direct), spore: median(kept.spore) })
  httpRows.push({ figure: "http GET on a kept-alive connection, by path, p50", unit: "ms", direct: median(kept.direct), spore: median(kept.path) })
  httpRows.push({ figure: "http GET on a new connection, p50", unit: "ms", direct: median(fresh.direct), spore: median(fresh.spore) })
  httpRows.push({ figure: "http GET on a new connection, by path, p50", unit: "ms", direct: median(fresh.direct), spore: median(fresh.path) })
  tunnel.server.kill("SIGKILL"), tunnel.client.kill("SIGKILL")

  // Memory per idle kept-alive visitor (one request done, its data channel open): fresh
  // processes each run; the direct figure is the web app's own RSS per connection.
  const HTTP_IDLE = Math.min(IDLE, 1000)
  const KiB = 1024
  const perServer: Array<number> = []
  const perClient: Array<number> = []
  const perDirect: Array<number> = []
  for (let i = 0; i < MEMORY_RUNS; i++) {
    const fresh = await startServices()
    const idleTunnel = await startHttpTunnel(fresh.web, keyFile, key)
    const base = `http://127.0.0.1:${idleTunnel.front}`
    const idleHost = `bench.${HTTP_BENCH_DOMAIN}:${idleTunnel.front}`
    await holdIdleVisitors(base, 50, idleHost).then((held) => held.close())
    await sleep(1000)
    const before = { server: rss(idleTunnel.server), client: rss(idleTunnel.client) }
    const held = await holdIdleVisitors(base, HTTP_IDLE, idleHost)
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
  httpRows.push({ figure: `http: RSS per idle visitor (${HTTP_IDLE} open), server`, unit: "KiB", direct: median(perDirect), spore: median(perServer) })
  httpRows.push({ figure: `http: RSS per idle visitor (${HTTP_IDLE} open), client`, unit: "KiB", direct: median(perDirect), spore: median(perClient) })
}

/**
 * The cost of the extra hop in a cluster: the same tunnel (its client on node A) visited through
 * A itself and through B, which hands each visitor to A over the node channel; the web app
 * reached directly beside them. By host, so keep-alive is kept.
 */
const clusterRows: Array<{ readonly figure: string; readonly unit: string; readonly direct: number; readonly owner: number; readonly other: number }> = []
if (ONLY.has("cluster")) {
  const key = "bench-key-0123456789abcdef"
  const keyFile = join(mkdtempSync(join(tmpdir(), "spore-bench-")), "api-keys")
  writeFileSync(keyFile, `${key}\n`)
  const cluster = await startClusterTunnel(services.web, keyFile, key)
  const direct = `http://127.0.0.1:${services.web}`
  const owner = `http://127.0.0.1:${cluster.owner}`
  const other = `http://127.0.0.1:${cluster.other}`
  const hostOf = (port: number) => `bench.${HTTP_BENCH_DOMAIN}:${port}`
  const CLUSTER_BYTES = Math.min(TRANSFER, 256 * MiB)
  clusterRows.push({
    figure: `http GET of ${CLUSTER_BYTES / MiB} MiB`,
    unit: "MB/s",
    direct: await runs(() => download(direct, CLUSTER_BYTES)),
    owner: await runs(() => download(owner, CLUSTER_BYTES, hostOf(cluster.owner))),
    other: await runs(() => download(other, CLUSTER_BYTES, hostOf(cluster.other)))
  })
  const fresh = { direct: [] as Array<number>, owner: [] as Array<number>, other: [] as Array<number> }
  const kept = { direct: [] as Array<number>, owner: [] as Array<number>, other: [] as Array<number> }
  for (let i = 0; i < RUNS; i++) {
    fresh.direct.push(await newConnectionLatency(direct, SEQUENTIAL / 4))
    fresh.owner.push(await newConnectionLatency(owner, SEQUENTIAL / 4, hostOf(cluster.owner)))
    fresh.other.push(await newConnectionLatency(other, SEQUENTIAL / 4, hostOf(cluster.other)))
    kept.direct.push((await requestLatency(direct, SEQUENTIAL)).p50)
    kept.owner.push((await requestLatency(owner, SEQUENTIAL, hostOf(cluster.owner))).p50)
    kept.other.push((await requestLatency(other, SEQUENTIAL, hostOf(cluster.other))).p50)
  }
  clusterRows.push({ figure: "http GET on a new connection, p50", unit: "ms", direct: median(fresh.direct), owner: median(fresh.owner), other: median(fresh.other) })
  clusterRows.push({ figure: "http GET on a kept-alive connection, p50", unit: "ms", direct: median(kept.direct), owner: median(kept.owner), other: median(kept.other) })
  for (const child of cluster.processes) child.kill("SIGKILL")
}

/** A visitor's first byte over a slow link (delayed.ts), by row: direct, bore↔bore, Spore's. */
const delayedRows: Array<{ readonly row: string; readonly p50: number; readonly p99: number }> = []
if (ONLY.has("delayed")) {
  for (const [row, byRun] of Object.entries(await slowLinkFirstByte(services.echo, DELAYED_RUNS))) {
    delayedRows.push({ row, p50: median(byRun.map((run) => run.p50)), p99: median(byRun.map((run) => run.p99)) })
  }
}

killAll()

// Report: one table for the tunnels (ratios to bore↔bore), one for HTTP (ratio to direct).
const format = (value: number | undefined) => value === undefined || Number.isNaN(value) ? "—" : value >= 100 ? value.toFixed(0) : value.toFixed(3)
const markdown = (header: ReadonlyArray<string>, table: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((title, column) => Math.max(title.length, ...table.map((line) => line[column]!.length)))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...table.map(line)].join("\n")
}
const ratio = (row: Row, name: string) => {
  const bore = row.values["bore↔bore"]
  const value = row.values[name]
  return bore === undefined || value === undefined ? "—" : (value / bore).toFixed(2)
}
const tunnelTable = markdown(
  ["figure", "unit", "direct", ...PAIRINGS.map((p) => p.name), ...PAIRINGS.slice(1).map((p) => `${p.name} / bore`)],
  rows.map((row) => [
    row.figure,
    row.unit,
    format(row.values.direct),
    ...PAIRINGS.map((p) => format(row.values[p.name])),
    ...PAIRINGS.slice(1).map((p) => ratio(row, p.name))
  ])
)
const httpTable = markdown(
  ["figure", "unit", "direct", "spore", "spore/direct"],
  httpRows.map((row) => [row.figure, row.unit, format(row.direct), format(row.spore), (row.spore / row.direct).toFixed(2)])
)
const stamp = new Date().toISOString()
process.stdout.write(`\nbore 0.6.0 and Spore on loopback, median of ${RUNS} runs (memory: ${MEMORY_RUNS}), ${stamp}:\n\n${tunnelTable}\n`)
/** What TLS costs Spore: each throughput row's TLS figure over the plaintext spore↔spore one. */
const tlsToPlain = Object.fromEntries(rows.filter((row) => row.unit === "MB/s").map((row) => {
  const plain = row.values["spore↔spore"]
  const tls = row.values[TLS_PAIRING]
  return [row.figure, plain === undefined || tls === undefined ? "—" : (tls / plain).toFixed(2)]
}))
for (const [figure, value] of Object.entries(tlsToPlain)) process.stdout.write(`${TLS_PAIRING} / spore↔spore, ${figure}: ${value}\n`)
if (httpRows.length > 0) process.stdout.write(`\nSpore's HTTP tunnels against the web app directly:\n\n${httpTable}\n`)
const clusterTable = markdown(
  ["figure", "unit", "direct", "owner node", "other node", "other / owner"],
  clusterRows.map((row) => [row.figure, row.unit, format(row.direct), format(row.owner), format(row.other), (row.other / row.owner).toFixed(2)])
)
if (clusterRows.length > 0) process.stdout.write(`\nA cluster of two nodes: the tunnel through its owner node and through the other one (one hop more):\n\n${clusterTable}\n`)
const delayedBore = delayedRows.find((row) => row.row === "bore↔bore")
const delayed = delayedRows.map((row) => ({
  ...row,
  ratioToBore: delayedBore === undefined ? undefined : { p50: (row.p50 / delayedBore.p50).toFixed(2), p99: (row.p99 / delayedBore.p99).toFixed(2) }
}))
const delayedTable = markdown(
  ["row", "p50 ms", "p99 ms", "p50 / bore↔bore", "p99 / bore↔bore"],
  delayed.map((row) => [row.row, format(row.p50), format(row.p99), row.ratioToBore?.p50 ?? "—", row.ratioToBore?.p99 ?? "—"])
)
if (delayedRows.length > 0) {
  process.stdout.write(`\nConnect to first echoed byte, ${RTT_MS} ms RTT between tunnel client and server, ${VISITORS} visitors one by one ${PAUSE_MS} ms apart, median of ${DELAYED_RUNS} runs:\n\n${delayedTable}\n`)
}

mkdirSync(new URL("./results/", import.meta.url), { recursive: true })
const report = {
  date: stamp,
  runs: RUNS,
  memoryRuns: MEMORY_RUNS,
  node: process.version,
  bore: "0.6.0",
  tunnels: rows.map((row) => ({ ...row, ratioToBore: Object.fromEntries(PAIRINGS.map((p) => [p.name, ratio(row, p.name)])) })),
  tlsToPlain,
  http: httpRows,
  cluster: clusterRows,
  delayed: { runs: DELAYED_RUNS, rttMs: RTT_MS, visitors: VISITORS, pauseMs: PAUSE_MS, rows: delayed }
}
writeFileSync(new URL("./results/latest.json", import.meta.url), `${JSON.stringify(report, null, 2)}\n`)
process.stdout.write("\nwritten to bench/results/latest.json\n")
process.exit(0)
