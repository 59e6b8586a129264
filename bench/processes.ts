/**
 * Starting the processes a benchmark measures, on 127.0.0.1, each killed when the run ends and
 * none allowed to hang a step for longer than STEP_LIMIT_MS.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const SPORE = `${ROOT}bin/spore.js`
export const STEP_LIMIT_MS = 120_000

const running = new Set<ChildProcess>()
export const killAll = () => {
  for (const child of running) child.kill("SIGKILL")
  running.clear()
}
process.on("exit", killAll)

export interface Started {
  readonly child: ChildProcess
  /** Resolves with the first match of `pattern` in the process's output. */
  readonly waitFor: (pattern: RegExp) => Promise<RegExpMatchArray>
}

export const start = (command: string, args: ReadonlyArray<string>): Started => {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], cwd: ROOT })
  running.add(child)
  child.once("exit", () => running.delete(child))
  let output = ""
  const listeners = new Set<() => void>()
  const collect = (chunk: Buffer) => {
    // bore logs every connection: keep the start (where the lines waited for are) and the tail.
    output = output.length > 1 << 20 ? output.slice(0, 1 << 16) + output.slice(-(1 << 16)) : output
    output += chunk.toString()
    for (const listener of listeners) listener()
  }
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  const waitFor = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`no ${pattern} within ${STEP_LIMIT_MS} ms:\n${output}`)), STEP_LIMIT_MS)
      const check = () => {
        const match = pattern.exec(output)
        if (match !== null) done(match)
      }
      const done = (result: RegExpMatchArray | Error) => {
        clearTimeout(timer)
        listeners.delete(check)
        if (result instanceof Error) reject(result)
        else resolve(result)
      }
      listeners.add(check)
      check()
    })
  return { child, waitFor }
}

/** Milliseconds from starting a process to `pattern` in its output (then it is killed). */
export const timeToOutput = async (begin: () => Started, pattern: RegExp) => {
  const began = performance.now()
  const started = begin()
  await started.waitFor(pattern)
  const elapsed = performance.now() - began
  started.child.kill("SIGKILL")
  return elapsed
}

/**
 * V8 flags for the Spore processes only (BENCH_SPORE_FLAGS, e.g. "--max-semi-space-size=2"), to
 * measure their effect; bin/spore.js applies the chosen ones anyway.
 */
const SPORE_FLAGS = (process.env.BENCH_SPORE_FLAGS ?? "").split(" ").filter((flag) => flag !== "")

export const startSpore = (args: ReadonlyArray<string>) => start(process.execPath, [...SPORE_FLAGS, SPORE, ...args])

/** The services process (sink and echo). */
export const startServices = async () => {
  const services = start(process.execPath, [`${ROOT}node_modules/vite-node/vite-node.mjs`, `${ROOT}bench/services.ts`])
  const match = await services.waitFor(/\{"sink":(\d+),"echo":(\d+),"web":(\d+)\}/)
  return { child: services.child, sink: Number(match[1]), echo: Number(match[2]), web: Number(match[3]) }
}

/** A Spore server and a client tunnelling `localPort`; returns the public port. */
export const startTunnel = async (localPort: number) => {
  const server = startSpore(["server", "--bind-addr", "127.0.0.1", "--control-port", "0", "--min-port", "30000", "--max-port", "32000",
    // The memory figure holds 5,000 connections through this one tunnel, past the default limits.
    "--max-pending", "10000", "--max-conns-per-tunnel", "10000", "--max-handshakes", "10000"])
  const control = (await server.waitFor(/server listening on 127\.0\.0\.1:(\d+)/))[1]!
  const client = startSpore(["local", String(localPort), "--local-host", "127.0.0.1", "--to", "127.0.0.1", "--control-port", control])
  const port = Number((await client.waitFor(/listening at 127\.0\.0\.1:(\d+)/))[1])
  return { server: server.child, client: client.child, port, control: Number(control) }
}

/**
 * Which program plays a side of a tunnel: "spore-tls" is Spore with TLS between its peers (a
 * server with the test certificate, a client with `--tls` trusting the test CA), a server of its
 * own so that the plaintext Spore figures stay as they were.
 */
export type Side = "bore" | "spore" | "spore-tls"

/**
 * Where each program's server listens in the bench's private namespace: all on port 7835 (bore's
 * is fixed), on addresses of their own (127.0.0.3 and .4 are delayed.ts's relays), the TLS server
 * also on 7836; every public tunnel port is on 127.0.0.1, in ranges of their own.
 */
const CONTROL_ADDRESS: Record<Side, string> = { bore: "127.0.0.1", spore: "127.0.0.2", "spore-tls": "127.0.0.5" }
const TLS_PORT = 7836
const TLS_FIXTURES = `${ROOT}test/fixtures/tls/`

/** A bore or Spore server on port 7835, limits raised for 10,000 connections through one tunnel. */
export const startServerOf = async (side: Side, bore: string) => {
  if (side === "bore") {
    const server = start(bore, ["server", "--bind-addr", CONTROL_ADDRESS.bore, "--bind-tunnels", "127.0.0.1", "--min-port", "30000", "--max-port", "30999"])
    await server.waitFor(/server listening/)
    return server.child
  }
  const tls = side === "spore-tls"
    ? ["--tls-cert", `${TLS_FIXTURES}server.pem`, "--tls-key", `${TLS_FIXTURES}server-key.pem`, "--tls-port", String(TLS_PORT)]
    : []
  const server = startSpore(["server", "--bind-addr", CONTROL_ADDRESS[side], "--bind-tunnels", "127.0.0.1", "--control-port", "7835",
    ...(tls.length > 0 ? ["--min-port", "32000", "--max-port", "32999"] : ["--min-port", "31000", "--max-port", "31999"]),
    "--max-pending", "20000", "--max-conns-per-tunnel", "20000", ...tls])
  await server.waitFor(tls.length > 0 ? /with TLS on [\d.]+:\d+/ : /server listening on/)
  return server.child
}

/**
 * How a Spore client reaches the `server` side's server: TLS to its TLS port, trusting the test
 * CA, asking for "localhost" (the certificate names localhost and 127.0.0.1, not the bench's address).
 */
export const sporeServerArgs = (server: Side): ReadonlyArray<string> =>
  server === "spore-tls"
    ? ["--to", CONTROL_ADDRESS[server], "--tls", "--tls-ca", `${TLS_FIXTURES}ca.pem`, "--tls-servername", "localhost", "--control-port", String(TLS_PORT)]
    : ["--to", CONTROL_ADDRESS[server], "--control-port", "7835"]

/** A bore or Spore client tunnelling `localPort` through the `server` side's server; its public port. */
export const startClientOf = async (side: Side, server: Side, localPort: number, bore: string, extra: ReadonlyArray<string> = []) => {
  const to = CONTROL_ADDRESS[server]
  const client = side === "bore"
    ? start(bore, ["local", String(localPort), "--local-host", "127.0.0.1", "--to", to, ...extra])
    : startSpore(["local", String(localPort), "--local-host", "127.0.0.1", ...sporeServerArgs(server), ...extra])
  const port = Number((await client.waitFor(/listening at [\d.]+:(\d+)/))[1])
  return { child: client.child, port }
}

/** CPU time a process has used so far, in ms (user + system, from /proc; Linux). */
export const cpuMs = (child: ChildProcess): number => {
  const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command; in clock ticks (100/s).
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** Resident memory of a process, in bytes (Linux). */
export const rss = (child: ChildProcess): number => {
  const status = readFileSync(`/proc/${child.pid}/status`, "utf8")
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
}

/**
 * A Spore server with its HTTP front and a `spore http` client exposing `localPort` as
 * `bench`; returns the front's port (visitors use /t/bench/).
 */
/** The bench's HTTP tunnel is `bench.HTTP_BENCH_DOMAIN` by host (on 127.0.0.1), and /t/bench/ by path. */
export const HTTP_BENCH_DOMAIN = "spore.bench"

export const startHttpTunnel = async (localPort: number, keyFile: string, key: string) => {
  const server = startSpore(["server", "--bind-addr", "127.0.0.1", "--control-port", "0", "--min-port", "30000", "--max-port", "32000",
    "--http-addr", "127.0.0.1:0", "--domain", HTTP_BENCH_DOMAIN, "--api-keys", keyFile, "--max-pending", "10000", "--max-conns-per-tunnel", "10000",
    // The memory figure holds 1,000 visitors from 127.0.0.1, past the per-address default.
    "--max-http-conns-per-ip", "10000"])
  const front = Number((await server.waitFor(/http front listening on 127\.0\.0\.1:(\d+)/))[1])
  const client = startSpore(["http", String(localPort), "--local-host", "127.0.0.1", "--to", `http://127.0.0.1:${front}`, "--token", key, "--name", "bench"])
  await client.waitFor(/bench is online at/)
  return { server: server.child, client: client.child, front }
}

/**
 * Two `spore server --cluster` nodes on one Redis (Debian's redis-server, in memory, on a port of
 * its own) and a `spore http` client on node A exposing `localPort` as `bench`: A is the owner,
 * B reaches the tunnel only by handing its visitors to A. Returns both fronts' ports.
 */
export const startClusterTunnel = async (localPort: number, keyFile: string, key: string) => {
  const redisPort = 16400 + Math.floor(Math.random() * 1000)
  const redis = start("/usr/bin/redis-server", ["--bind", "127.0.0.1", "--port", String(redisPort), "--save", "", "--appendonly", "no"])
  await redis.waitFor(/Ready to accept connections/)
  const node = () =>
    start("/usr/bin/env", [`SPORE_CLUSTER_SECRET=bench-cluster-secret-0123456789`, process.execPath, ...SPORE_FLAGS, SPORE,
      "server", "--bind-addr", "127.0.0.1", "--control-port", "0", "--min-port", "30000", "--max-port", "32000",
      "--http-addr", "127.0.0.1:0", "--domain", HTTP_BENCH_DOMAIN, "--api-keys", keyFile, "--max-pending", "10000", "--max-conns-per-tunnel", "10000",
      "--max-http-conns-per-ip", "10000", "--cluster", `redis://127.0.0.1:${redisPort}`, "--node-addr", "127.0.0.1:0"])
  const [a, b] = [node(), node()]
  const frontOf = async (started: Started) => {
    const port = Number((await started.waitFor(/http front listening on 127\.0\.0\.1:(\d+)/))[1])
    await started.waitFor(/cluster: Redis \S+ is reachable/)
    return port
  }
  const owner = await frontOf(a)
  const other = await frontOf(b)
  const client = startSpore(["http", String(localPort), "--local-host", "127.0.0.1", "--to", `http://127.0.0.1:${owner}`, "--token", key, "--name", "bench"])
  await client.waitFor(/bench is online at/)
  return { owner, other, processes: [redis.child, a.child, b.child, client.child] }
}
