import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // End-to-end tests start real processes and move real bytes over loopback.
    testTimeout: 60_000,
    hookTimeout: 30_000
  }
})
