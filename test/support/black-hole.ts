/**
 * A TCP port on 127.0.0.1 where connects hang: a listener (in a python3 child process, since
 * Node always accepts) with a backlog of 0 that never accepts, its queue filled by one
 * connection, so the kernel drops every further SYN.
 */
import { spawn } from "node:child_process"
import * as net from "node:net"
import { Effect } from "effect"

const SCRIPT = [
  "import socket, sys",
  "s = socket.socket()",
  "s.bind(('127.0.0.1', 0))",
  "s.listen(0)",
  "print(s.getsockname()[1], flush=True)",
  "sys.stdin.read()"
].join("\n")

export const blackHolePort = Effect.gen(function*() {
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => spawn("python3", ["-c", SCRIPT], { stdio: ["pipe", "pipe", "inherit"] })),
    (process) => Effect.sync(() => process.kill("SIGKILL"))
  )
  const port = yield* Effect.async<number>((resume) => {
    child.stdout.once("data", (chunk: Buffer) => resume(Effect.succeed(Number(chunk.toString().trim()))))
  })
  // Fill the accept queue; this one connection completes, later ones hang.
  yield* Effect.acquireRelease(
    Effect.async<net.Socket>((resume) => {
      const filler = net.connect({ host: "127.0.0.1", port }, () => resume(Effect.succeed(filler)))
    }),
    (filler) => Effect.sync(() => filler.destroy())
  )
  return port
})
