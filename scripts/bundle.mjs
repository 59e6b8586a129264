#!/usr/bin/env node
// Builds dist/spore.mjs: the whole CLI in one tree-shaken ES module, which `bin/spore.js` runs.
// One file instead of hundreds of modules (Effect's barrels, @effect/platform-node and its
// dependencies) is what brings `spore local` from start to "listening at" in well under 500 ms.
import { build } from "esbuild"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))

const result = await build({
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
  logLevel: "warning",
  metafile: true
})

// The bundle holds other packages' code, whose licences ask that their notices travel with it:
// every bundled package's licence file, once each, beside the bundle (and in the npm package).
// A package's folder is the innermost node_modules/NAME of each bundled file (nested ones too).
const packages = new Set()
for (const input of Object.keys(result.metafile.inputs)) {
  const at = input.lastIndexOf("node_modules/")
  const name = at === -1 ? undefined : /^((?:@[^/]+\/)?[^/]+)\//.exec(input.slice(at + "node_modules/".length))?.[1]
  if (name !== undefined) packages.add(`${input.slice(0, at)}node_modules/${name}`)
}
const notices = [...packages].sort().map((dir) => {
  const { license, name, version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
  const file = existsSync(dir) ? readdirSync(dir).find((entry) => /^(licen[cs]e|copying)(\.|$)/i.test(entry)) : undefined
  const text = file === undefined ? `(no licence file; package.json says ${license})` : readFileSync(join(dir, file), "utf8").trim()
  return `${name} ${version} (${license})\n\n${text}\n`
})
writeFileSync("dist/THIRD-PARTY-LICENSES.txt", `Packages bundled into dist/spore.mjs, with their licences.\n\n${notices.join("\n" + "-".repeat(72) + "\n\n")}`)
