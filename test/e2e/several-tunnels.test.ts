/**
 * `spore local` with several tunnels, from the command line and from `--config`, through the
 * real executable: one control connection and one `listening at` line per tunnel, each tunnel
 * reaching its own service and coming back on its own; JSON logs that carry the ids; and
 * `--proxy-protocol` refused at start by a server that is not Spore.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync, writeFileSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { fakeBoreServer } from "../support/fake-bore.js"
import { faultProxy } from "../support/fault-proxy.js"
import { echoService, LOOPBACK, randomPayload, roundTrip, sha256, startServer } from "../support/net.js"
import { runSpore, startSpore, within } from "../support/process.js"
import { parseProxyHeader } from "../support/proxy-header-parser.js"

/** A local service that answers each connection with the first bytes it got, then its own name. */
const namedService = (name: string) =>
  Effect.acquireRelease(
    Effect.async<{ server: net.Server; port: number; firstBytes: Array<Buffer> }>((resume) => {
      const firstBytes: Array<Buffer> = []
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        const chunks: Array<Buffer> = []
        socket.on("data", (chunk: Buffer) => chunks.push(chunk))
        socket.on("end", () => {
          firstBytes.push(Buffer.concat(chunks))
          socket.end(name)
        })
        socket.on("error", () => socket.destroy())
      })
      server.listen(0, LOOPBACK, () => resume(Effect.succeed({ server, port: (server.address() as net.AddressInfo).port, firstBytes })))
    }),
    ({ server }) => Effect.sync(() => server.close())
  )

/** A fixed public port below Linux's ephemeral range (32768 up), so no outgoing socket holds it. */
const FIXED_PORT = 31123

const ask = (port: number) => Effect.map(roundTrip(port, Buffer.from("hello")), (reply) => reply.toString())

const writeConfig = (content: unknown) => {
  const path = join(mkdtempSync(join(tmpdir(), "spore-config-")), "tunnels.json")
  writeFileSync(path, JSON.stringify(content))
  return path
}

describe("several tunnels from one client", () => {
  it.live("LOCAL_PORT twice: two tunnels, each to its service, and each comes back on its own", () =>
    Effect.gen(function*() {
      const [first, second] = [yield* namedService("first"), yield* namedService("second")]
      const controlPort = yield* startServer()
      const proxy = yield* faultProxy(controlPort)
      const client = yield* startSpore(["local", String(first.port), String(second.port), "--local-host", LOOPBACK, "--to", LOOPBACK,
        "--control-port", String(proxy.port)])
      const ports = new Map<string, number>()
      for (const service of [first, second]) {
        const pattern = new RegExp(`\\[127\\.0\\.0\\.1:${service.port}\\] listening at 127\\.0\\.0\\.1:(\\d+)`)
        ports.set(String(service.port), Number((yield* within("a tunnel", 15, client.waitFor(pattern)))[1]))
      }
      expect(yield* ask(ports.get(String(first.port))!)).toBe("first")
      expect(yield* ask(ports.get(String(second.port))!)).toBe("second")
      // Two control connections (and one data connection per visitor) went through the proxy.
      expect(proxy.connections().filter((connection) => connection.fromServer.includes("\"Hello\"")).length).toBe(2)

      // Cut only the first tunnel's control connection: it alone is lost and resumed.
      const firstControl = proxy.connections().find((connection) =>
        connection.fromServer.includes(`{"Hello":${ports.get(String(first.port))}}`))!
      yield* proxy.cut((connection) => connection === firstControl)
      yield* within("the resume", 30, client.waitFor(new RegExp(`\\[127\\.0\\.0\\.1:${first.port}\\] resumed: listening at 127\\.0\\.0\\.1:${ports.get(String(first.port))}`)))
      expect(client.stderr()).not.toMatch(new RegExp(`\\[127\\.0\\.0\\.1:${second.port}\\] lost`))
      expect(yield* ask(ports.get(String(first.port))!)).toBe("first")
      expect(yield* ask(ports.get(String(second.port))!)).toBe("second")
    }).pipe(Effect.scoped))

  it.live("--config: per-tunnel host, port and PROXY protocol, with --to from the file", () =>
    Effect.gen(function*() {
      const [plain, proxied] = [yield* namedService("plain"), yield* namedService("proxied")]
      const controlPort = yield* startServer({ minPort: 31000, maxPort: 31999 })
      const config = writeConfig({
        to: LOOPBACK,
        controlPort,
        tunnels: [
          { localPort: plain.port, localHost: LOOPBACK, port: FIXED_PORT },
          { localPort: proxied.port, localHost: LOOPBACK, proxyProtocol: "v1" }
        ]
      })
      const client = yield* startSpore(["local", "--config", config])
      yield* within("the fixed port", 15, client.waitFor(new RegExp(`\\[127\\.0\\.0\\.1:${plain.port}\\] listening at 127\\.0\\.0\\.1:${FIXED_PORT}`)))
      const proxiedPort = Number((yield* within("the other", 15,
        client.waitFor(new RegExp(`\\[127\\.0\\.0\\.1:${proxied.port}\\] listening at 127\\.0\\.0\\.1:(\\d+)`))))[1])
      expect(yield* ask(FIXED_PORT)).toBe("plain")
      expect(plain.firstBytes[0]?.toString()).toBe("hello")
      expect(yield* ask(proxiedPort)).toBe("proxied")
      const header = parseProxyHeader(proxied.firstBytes[0]!)
      expect(header).toMatchObject({ version: 1, kind: "TCP4", destination: { address: "127.0.0.1", port: proxiedPort } })
      expect(proxied.firstBytes[0]!.subarray(header.length).toString()).toBe("hello")
    }).pipe(Effect.scoped))

  it.live("a config file with a mistake is refused with one line and exit code 2", () =>
    Effect.gen(function*() {
      const config = writeConfig({ to: LOOPBACK, tunnels: [{ localPort: 3000, proxyProtocl: "v1" }] })
      const result = yield* runSpore(["local", "--config", config])
      expect(result.code).toBe(2)
      expect(result.stderr).toMatch(/--config .*tunnels\.json: .*proxyProtocl/)
      const empty = yield* runSpore(["local", "--config", writeConfig({ to: LOOPBACK, tunnels: [] })])
      expect(empty.code).toBe(2)
    }).pipe(Effect.scoped))
})

describe("JSON logs", () => {
  it.live("--log-format json: one object a line, with the tunnel, connection and peer ids", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const server = yield* startSpore(["--log-level", "debug", "server", "--bind-addr", LOOPBACK, "--control-port", "0",
        "--min-port", "37000", "--max-port", "37100", "--log-format", "json"])
      const controlPort = (yield* within("server", 15, server.waitFor(/server listening on 127\.0\.0\.1:(\d+)/)))[1]!
      const client = yield* startSpore(["--log-level", "debug", "local", String(echo), "--local-host", LOOPBACK, "--to", LOOPBACK,
        "--control-port", controlPort, "--log-format", "json"])
      const port = Number((yield* within("tunnel", 15, client.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
      const payload = randomPayload(1000)
      expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
      yield* within("the forwarding line", 15, server.waitFor(/forwarding visitor/))
      const lines = (text: string) => text.trim().split("\n").map((line) => JSON.parse(line) as Record<string, string>)
      const serverLines = lines(server.stderr())
      for (const line of serverLines) expect(Object.keys(line).slice(0, 3)).toEqual(["time", "level", "message"])
      const forwarding = serverLines.find((line) => line.message.startsWith("forwarding visitor"))!
      expect(forwarding).toMatchObject({ level: "DEBUG", tunnel: String(port), conn: expect.stringMatching(/^[0-9a-f-]{36}$/), peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) })
      expect(serverLines.find((line) => line.message === `tunnel open on port ${port}`)).toMatchObject({ tunnel: String(port) })
      const clientLines = lines(client.stderr())
      expect(clientLines.find((line) => line.message === `listening at 127.0.0.1:${port}`)).toMatchObject({
        level: "INFO",
        tunnel: `127.0.0.1:${echo}`
      })
      expect(clientLines.find((line) => line.message.startsWith("new visitor"))).toMatchObject({ tunnel: `127.0.0.1:${echo}` })
    }).pipe(Effect.scoped))
})

describe("--proxy-protocol against a bore server", () => {
  it.live("is refused at start with a clear message and exit code 1", () =>
    Effect.gen(function*() {
      const borePort = yield* fakeBoreServer
      const result = yield* runSpore(["local", "9", "--to", LOOPBACK, "--control-port", String(borePort), "--proxy-protocol", "v2"])
      expect(result.code).toBe(1)
      expect(result.stderr.trim()).toBe(
        "error: --proxy-protocol needs a Spore server (version 2 or later) to learn visitors' addresses, and 127.0.0.1 did not answer Spore's extension offer (a bore server, or an older Spore)"
      )
    }).pipe(Effect.scoped))
})
