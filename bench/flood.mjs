// A flood of half-open handshakes, for bench/admission.ts: opens RATE connections a second to
// 127.0.0.1:PORT from ADDRESSES source addresses (127.60.x.y), each of which says nothing and is
// dropped after 4 s if the server has not closed it first. Runs until killed, or SECONDS at most.
// Prints one line a second: {"opened":N,"open":N,"seconds":S}.
import * as net from "node:net"

const [port, rate, addresses, seconds] = process.argv.slice(2).map(Number)
const open = new Set()
const startedAt = performance.now()
let opened = 0
const address = (n) => `127.60.${Math.floor(n / 250) % 250}.${1 + (n % 250)}`
const tick = () => {
  for (let n = 0; n < rate / 100; n++) {
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: address(opened++ % addresses) })
    open.add(socket)
    socket.on("error", () => {})
    socket.on("close", () => open.delete(socket))
    setTimeout(() => socket.destroy(), 4000).unref()
  }
}
if (rate > 0) setInterval(tick, 10)
setInterval(() => console.log(JSON.stringify({ opened, open: open.size, seconds: (performance.now() - startedAt) / 1000 })), 1000)
setTimeout(() => process.exit(0), (seconds || 120) * 1000)
