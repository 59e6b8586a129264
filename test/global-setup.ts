/**
 * Builds dist/ once before the suite: the CLI tests run the real `bin/spore.js`, which must not
 * be older than the sources under test.
 */
import { execFileSync } from "node:child_process"

export default function setup() {
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" })
}
