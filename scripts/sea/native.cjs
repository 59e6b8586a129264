// In the single executable, a native add-on comes from the executable's own assets: written once
// to a file named by its hash under the temp dir (dlopen needs a file), then loaded.
"use strict"
const { createHash } = require("node:crypto")
const fs = require("node:fs")
const os = require("node:os")
const path = require("node:path")
const sea = require("node:sea")

module.exports = (name) => {
  const bytes = Buffer.from(sea.getAsset(name))
  const file = path.join(os.tmpdir(), `spore-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}-${name}`)
  if (!fs.existsSync(file)) {
    const partial = `${file}.${process.pid}`
    fs.writeFileSync(partial, bytes, { mode: 0o755 })
    fs.renameSync(partial, file)
  }
  const module = { exports: {} }
  process.dlopen(module, file)
  return module.exports
}
