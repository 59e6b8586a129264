/**
 * Builds dist/spore.mjs once before the suite: the CLI tests run the real `bin/spore.js`, which
 * must not be older than the sources under test.
 */
import { execFileSync } from "node:child_process"

export default function setup() {
  execFileSync(process.execPath, ["scripts/bundle.mjs"], { stdio: "inherit" })
}
