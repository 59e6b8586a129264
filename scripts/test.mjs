#!/usr/bin/env node
// Runs the whole vitest suite and ends with one line, `N passed, N failed`, taken from vitest's
// JSON reports (CI reads that line). Exits non-zero when either run fails.
import { spawnSync } from "node:child_process"
import { existsSync, readFileSync, rmSync } from "node:fs"

// The mock Kafka cluster and the Kafka clients the suite runs (see scripts/test-setup.sh).
const setup = spawnSync("bash", ["scripts/test-setup.sh"], { stdio: "inherit" })
if (setup.status !== 0) {
  console.log("0 passed, 1 failed")
  process.exit(setup.status ?? 1)
}

// Tests that measure time against the server's own timeouts (a flood closed within 3 s, a burst
// admitted in order) run on their own after the rest: on two cores, a browser or an ACME server
// started by a test beside them delays what they observe by seconds.
const ALONE = ["test/e2e/flood.test.ts", "test/e2e/admission.test.ts"]

const vitest = (report, args) => {
  rmSync(report, { force: true })
  const run = spawnSync(
    "npx",
    ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...args],
    { stdio: "inherit" }
  )
  return { status: run.status ?? 1, report }
}

const given = process.argv.slice(2)
const runs = given.length > 0
  ? [vitest(".vitest-report.json", given)]
  : [
    vitest(".vitest-report.json", ALONE.flatMap((file) => ["--exclude", file])),
    vitest(".vitest-report-alone.json", [...ALONE, "--no-file-parallelism"])
  ]
let passed = 0
let failed = 0
let skipped = 0
for (const { report } of runs) {
  if (existsSync(report)) {
    const results = JSON.parse(readFileSync(report, "utf8"))
    passed += results.numPassedTests
    failed += results.numFailedTests
    skipped += results.numPendingTests + results.numTodoTests
  } else {
    failed += 1
  }
}
const run = { status: runs.find((each) => each.status !== 0)?.status ?? 0 }
console.log(`${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`)
process.exit(run.status ?? 1)
