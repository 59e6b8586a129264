#!/usr/bin/env node
// Builds dist/spore.mjs: the whole CLI in one tree-shaken ES module, which `bin/spore.js` runs.
// One file instead of hundreds of modules (Effect's barrels, @effect/platform-node and its
// dependencies) is what brings `spore local` from start to "listening at" in well under 500 ms.
import { build } from "esbuild"
import { readFileSync } from "node:fs"

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))

await build({
  entryPoints: ["src/cli/main.ts"],
  outfile: "dist/spore.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  legalComments: "none",
  // Native addons: they must be loaded from node_modules at run time (bufferutil masks and
  // unmasks WebSocket frames natively for ws, which falls back to JavaScript without it).
  external: ["sockopt", "bufferutil"],
  define: { SPORE_VERSION: JSON.stringify(version) },
  // Bundled CommonJS dependencies call require() for Node's own modules.
  banner: { js: "import { createRequire as __sporeCreateRequire } from \"node:module\"; const require = __sporeCreateRequire(import.meta.url);" },
  logLevel: "warning"
})
