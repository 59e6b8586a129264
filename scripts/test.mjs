#!/usr/bin/env node
// Runs the whole vitest suite and ends with one line, `N passed, N failed`, taken from vitest's
// JSON report (CI reads that line). Exits with vitest's own exit code.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, rmSync } from "node:fs"

// The mock Kafka cluster and the Kafka clients the suite runs (see scripts/test-setup.sh).
const setup = spawnSync("bash", ["scripts/test-setup.sh"], { stdio: "inherit" })
if (setup.status !== 0) {
  console.log("0 passed, 1 failed")
  process.exit(setup.status ?? 1)
}

const report = ".vitest-report.json"
rmSync(report, { force: true })
const run = spawnSync(
  "npx",
  ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { stdio: "inherit" }
)
let passed = 0
let failed = 0
let skipped = 0
if (existsSync(report)) {
  const results = JSON.parse(readFileSync(report, "utf8"))
  passed = results.numPassedTests
  failed = results.numFailedTests
  skipped = results.numPendingTests + results.numTodoTests
} else {
  failed = 1
}
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`)
process.exit(run.status ?? 1)
