/**
 * The single executable against `node bin/spore.js`, in the same run: its size, and start-up
 * time to `--version` and to "listening at" of a `spore local` (both against one server of the
 * Node build). `npm run bench:exe` builds it first. Medians of BENCH_RUNS (default 11) runs each.
 */
import { statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { killAll, start, startServices, startSpore, timeToOutput } from "./processes.js"

const ROOT = fileURLToPath(new URL("..", import.meta.url))
const EXE = join(ROOT, "dist", "spore-exe")
const RUNS = Number(process.env.BENCH_RUNS ?? 11)
const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const measure = async (begin: () => ReturnType<typeof start>, pattern: RegExp) => {
  const values: Array<number> = []
  for (let run = 0; run < RUNS; run++) values.push(await timeToOutput(begin, pattern))
  return median(values)
}

const services = await startServices()
const server = startSpore(["server", "--bind-addr", "127.0.0.1", "--control-port", "0", "--min-port", "33000", "--max-port", "33100"])
const controlPort = (await server.waitFor(/server listening on 127\.0\.0\.1:(\d+)/))[1]!
const local = ["local", String(services.echo), "--local-host", "127.0.0.1", "--to", "127.0.0.1", "--control-port", controlPort]

const rows = [
  ["--version", "ms", await measure(() => startSpore(["--version"]), /\d+\.\d+\.\d+/), await measure(() => start(EXE, ["--version"]), /\d+\.\d+\.\d+/)],
  ["start to \"listening at\"", "ms", await measure(() => startSpore(local), /listening at/), await measure(() => start(EXE, local), /listening at/)]
] as const
killAll()

const dist = statSync(join(ROOT, "dist", "spore.mjs")).size + statSync(join(ROOT, "bin", "spore.js")).size
console.log(`| figure | unit | node bin/spore.js | single executable | executable / node |`)
console.log(`| --- | --- | --- | --- | --- |`)
console.log(`| size | MB | ${(dist / 1e6).toFixed(1)} (+ node ${(statSync(process.execPath).size / 1e6).toFixed(1)}) | ${(statSync(EXE).size / 1e6).toFixed(1)} | — |`)
for (const [figure, unit, node, exe] of rows) console.log(`| ${figure} | ${unit} | ${node.toFixed(0)} | ${exe.toFixed(0)} | ${(exe / node).toFixed(2)} |`)
