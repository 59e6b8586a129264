// `sockopt` as the single executable loads it: its binding from the executable, with the
// package's own wrapper (file descriptors from sockets; integers only).
"use strict"
const binding = require("./native.cjs")("sockopt.node")

const fd = (socket) => {
  if (!socket._handle) throw new Error("Socket has no file descriptor yet. Did you call listen() or bind()?")
  return socket._handle.fd
}

module.exports = {
  getsockopt: (socket, level, option) => binding.getsockopt(fd(socket), level, option),
  setsockopt: (socket, level, option, value) => {
    if (!Number.isInteger(value)) throw new Error("flagValue must be an integer")
    binding.setsockopt(fd(socket), level, option, value)
  }
}
