/**
 * The far end of every benchmark, in its own process so that the driver's work does not share its
 * event loop: a sink (counts what it receives and answers the count when the sender is done) and
 * an echo service, and a web app for the HTTP tunnel figures (`GET /small` answers 2 bytes,
 * `POST /upload` counts the body, `GET /download?bytes=N` streams N bytes). Prints
 * `{"sink":PORT,"echo":PORT,"web":PORT}` on stdout once all listen.
 */
import * as http from "node:http"
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

const CHUNK = Buffer.alloc(64 * 1024, 7)
const webServer = http.createServer((request, response) => {
  const url = new URL(request.url ?? "/", "http://web")
  if (url.pathname === "/upload") {
    let received = 0
    request.on("data", (chunk: Buffer) => (received += chunk.length))
    request.on("end", () => response.end(String(received)))
    return
  }
  if (url.pathname === "/download") {
    let left = Number(url.searchParams.get("bytes") ?? 0)
    response.writeHead(200, { "Content-Length": left })
    const pump = () => {
      while (left > 0) {
        const piece = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left)
        left -= piece.length
        if (!response.write(piece)) return void response.once("drain", pump)
      }
      response.end()
    }
    return pump()
  }
  response.end("ok")
})
webServer.keepAliveTimeout = 60_000
const web = await new Promise<number>((resolve) =>
  webServer.listen(0, "127.0.0.1", () => resolve((webServer.address() as net.AddressInfo).port)))

process.stdout.write(`${JSON.stringify({ sink, echo, web })}\n`)
