#!/usr/bin/env node
// Builds dist/spore-exe: one executable with Node, the CLI and its native add-ons in it, like
// bore's release binaries (Node's single executable applications, postject to inject the blob).
//
// Node 20 runs a single executable's main script as CommonJS with only Node's own modules to
// require, so the CLI is bundled again as CommonJS, and `sockopt` and `bufferutil` are replaced by
// loaders (scripts/sea/) that take their binaries from the executable's assets.
import { execFileSync } from "node:child_process"
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join, resolve } from "node:path"
import { build } from "esbuild"

// The binary each add-on loads here, found as the add-on finds it: a build from source when its
// install made one (sockopt's linux-x64 prebuild is not a Linux binary), else the prebuild.
const nativeOf = (name) => createRequire(import.meta.url)("node-gyp-build").path(resolve("node_modules", name))

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
const platform = `${process.platform}-${process.arch}`
const work = "dist/sea"
mkdirSync(work, { recursive: true })

await build({
  entryPoints: ["src/cli/main.ts"],
  outfile: join(work, "spore.cjs"),
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  legalComments: "none",
  alias: {
    sockopt: "./scripts/sea/sockopt.cjs",
    bufferutil: "./scripts/sea/bufferutil.cjs",
    "utf-8-validate": "./scripts/sea/absent.cjs",
    "supports-color": "./scripts/sea/absent.cjs"
  },
  define: { SPORE_VERSION: JSON.stringify(version) },
  logLevel: "warning"
})

const config = {
  main: join(work, "spore.cjs"),
  output: join(work, "spore.blob"),
  disableExperimentalSEAWarning: true,
  assets: { "sockopt.node": nativeOf("sockopt"), "bufferutil.node": nativeOf("bufferutil") }
}
writeFileSync(join(work, "sea-config.json"), JSON.stringify(config, null, 2))
execFileSync(process.execPath, ["--experimental-sea-config", join(work, "sea-config.json")], { stdio: "inherit" })

const exe = "dist/spore-exe"
copyFileSync(process.execPath, exe)
execFileSync(process.execPath, [
  "node_modules/postject/dist/cli.js", exe, "NODE_SEA_BLOB", config.output,
  "--sentinel-fuse", "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"
], { stdio: ["ignore", "ignore", "inherit"] })
console.log(`built ${exe} (${platform})`)
