// `bufferutil` as the single executable loads it: the binding from the executable (ws falls back
// to JavaScript when this throws, as with the package).
"use strict"
module.exports = require("./native.cjs")("bufferutil.node")
