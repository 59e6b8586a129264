// In the single executable, a native add-on comes from the executable's own assets: written to a
// file (dlopen needs one) named by its hash, in a directory of the temp dir that only this user
// can write (a file another user could plant or change there would be loaded as code), then
// loaded. A file already there is used only if its bytes are the asset's.
"use strict"
const { createHash } = require("node:crypto")
const fs = require("node:fs")
const os = require("node:os")
const path = require("node:path")
const sea = require("node:sea")

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex")

/** `$TMPDIR/spore-UID`, ours alone (0700, not a link); else a fresh private directory. */
const privateDir = () => {
  const uid = typeof process.getuid === "function" ? process.getuid() : undefined
  const dir = path.join(os.tmpdir(), `spore-${uid ?? "user"}`)
  try {
    fs.mkdirSync(dir, { mode: 0o700 })
  } catch (error) {
    if (error.code !== "EEXIST") throw error
  }
  const stat = fs.lstatSync(dir)
  const ours = stat.isDirectory() && (uid === undefined || stat.uid === uid) && (stat.mode & 0o077) === 0
  return ours ? dir : fs.mkdtempSync(path.join(os.tmpdir(), "spore-"))
}

module.exports = (name) => {
  const bytes = Buffer.from(sea.getAsset(name))
  const digest = sha256(bytes)
  const file = path.join(privateDir(), `${digest.slice(0, 16)}-${name}`)
  const present = fs.existsSync(file) && sha256(fs.readFileSync(file)) === digest
  if (!present) {
    const partial = `${file}.${process.pid}`
    fs.writeFileSync(partial, bytes, { mode: 0o700 })
    fs.renameSync(partial, file)
  }
  const module = { exports: {} }
  process.dlopen(module, file)
  return module.exports
}
