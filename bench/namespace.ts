/**
 * Benchmarks that start the real bore run in a private network namespace of their own: bore's
 * control port is fixed at 7835, and nothing they start may listen beyond loopback. A script
 * calls `inPrivateNamespace` first; outside a namespace it runs itself again inside one
 * (`unshare -n`, root) and exits with that run's status. (Node raises its own descriptor limit
 * to the hard limit; the bench holds as many connections as that allows.)
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("..", import.meta.url))

/** Returns inside the namespace; outside, runs `script` (an import.meta.url) there and exits. */
export const inPrivateNamespace = (script: string, limitMinutes: number) => {
  if (process.env.BENCH_IN_NAMESPACE === "1") return
  const vite = `${ROOT}node_modules/vite-node/vite-node.mjs`
  const command = `ip link set lo up && exec "${process.execPath}" "${vite}" "${fileURLToPath(script)}"`
  const result = spawnSync("unshare", ["-n", "bash", "-c", command], {
    stdio: "inherit",
    env: { ...process.env, BENCH_IN_NAMESPACE: "1" },
    timeout: limitMinutes * 60_000
  })
  if (result.error !== undefined) console.error(`could not run the bench in a private namespace (needs root and unshare): ${result.error.message}`)
  process.exit(result.status ?? 1)
}

/** The real bore the benches compare against (beside the project, see ../shared/bore/README.md). */
export const BORE = fileURLToPath(new URL("../../shared/bore/bore-0.6.0", import.meta.url))
