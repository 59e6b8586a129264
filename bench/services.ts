/**
 * The far end of every benchmark, in its own process so that the driver's work does not share its
 * event loop: a sink (counts what it receives and answers the count when the sender is done) and
 * an echo service. Prints `{"sink":PORT,"echo":PORT}` on stdout once both listen.
 */
import * as net from "node:net"

const listen = (onConnection: (socket: net.Socket) => void) =>
  new Promise<number>((resolve) => {
    const server = net.createServer({ allowHalfOpen: true }, onConnection)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port))
  })

const sink = await listen((socket) => {
  let received = 0
  socket.on("data", (chunk: Buffer) => (received += chunk.length))
  socket.on("end", () => socket.end(`${received}\n`))
  socket.on("error", () => socket.destroy())
})

const echo = await listen((socket) => {
  socket.setNoDelay(true)
  socket.pipe(socket)
  socket.on("error", () => socket.destroy())
})

process.stdout.write(`${JSON.stringify({ sink, echo })}\n`)
