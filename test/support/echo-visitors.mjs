// The local service and the visitors of a test whose processes share one private network
// namespace (`ip netns exec NS node echo-visitors.mjs ...`), where the test's own process cannot
// connect. Two modes:
//
//   serve                  an echo service on 127.0.0.1; prints `echo listening on PORT` on stderr
//                          and runs until it is killed
//   visit PORT SIZE...     one visitor of 127.0.0.1:PORT per SIZE, all at once: each sends SIZE
//                          random bytes and reads until as many came back (never half-closing:
//                          bore 0.5.2's server does not carry a FIN), then prints one JSON line
//                          on stdout, `{"visitors":[{size, sentSha256, received, receivedSha256,
//                          error}, ...]}`, and exits 0; after VISIT_LIMIT_MS it prints what it has
//                          and exits 2.
import { createHash, randomBytes } from "node:crypto"
import * as net from "node:net"

const HOST = "127.0.0.1"
const VISIT_LIMIT_MS = Number(process.env.VISIT_LIMIT_MS ?? 20_000)

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex")

const serve = () => {
  const server = net.createServer((socket) => {
    socket.on("error", () => socket.destroy())
    // Echoes everything, and ends its side after the visitor's end.
    socket.pipe(socket)
  })
  server.listen(0, HOST, () => process.stderr.write(`echo listening on ${server.address().port}\n`))
}

const visit = (port, sizes) => {
  const results = sizes.map((size) => ({ size, sentSha256: "", received: 0, receivedSha256: "", error: null }))
  const report = (code) => {
    process.stdout.write(`${JSON.stringify({ visitors: results })}\n`, () => process.exit(code))
  }
  setTimeout(() => {
    for (const result of results) if (result.error === null && result.receivedSha256 === "") result.error = `not done within ${VISIT_LIMIT_MS} ms`
    report(2)
  }, VISIT_LIMIT_MS).unref()

  const one = (result) =>
    new Promise((resolve) => {
      const payload = randomBytes(result.size)
      result.sentSha256 = sha256(payload)
      const chunks = []
      const socket = net.connect({ host: HOST, port })
      let done = false
      const finish = (error) => {
        if (done) return
        done = true
        result.error = error
        result.receivedSha256 = sha256(Buffer.concat(chunks))
        socket.destroy()
        resolve()
      }
      socket.on("connect", () => socket.write(payload))
      socket.on("data", (chunk) => {
        chunks.push(chunk)
        result.received += chunk.length
        if (result.received >= result.size) finish(null)
      })
      socket.on("error", (error) => finish(error.message))
      socket.on("close", () => finish(`closed after ${result.received} of ${result.size} bytes`))
    })

  Promise.all(results.map(one)).then(() => report(0))
}

const [mode, ...args] = process.argv.slice(2)
if (mode === "serve") serve()
else if (mode === "visit" && args.length >= 2) visit(Number(args[0]), args.slice(1).map(Number))
else {
  process.stderr.write("usage: echo-visitors.mjs serve | visit PORT SIZE...\n")
  process.exit(64)
}
