import { readFileSync } from "node:fs"
import { defineConfig } from "vitest/config"

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8")) as { version: string }

export default defineConfig({
  // What the bundler puts in (scripts/bundle.mjs), so that tests see the version the program shows.
  define: { SPORE_VERSION: JSON.stringify(version) },
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // End-to-end tests start real processes and move real bytes over loopback.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    // A test's logs are printed only when it fails, so that a CI log shows the failures;
    // SPORE_TEST_LOGS=1 prints every test's logs.
    silent: process.env.SPORE_TEST_LOGS === "1" ? false : "passed-only"
  }
})
