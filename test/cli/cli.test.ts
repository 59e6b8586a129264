/**
 * The real `spore` executable: help, version, usage errors, and a tunnel between two processes.
 */
import { describe, expect, it } from "@effect/vitest"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { KEY_A, writeKeys } from "../support/http.js"
import { dial, echoService, freePort, LOOPBACK, randomPayload, readAll, roundTrip, sha256 } from "../support/net.js"
import { tlsFixture as fixture } from "../support/tls.js"
import { DEFAULT_LIMITS } from "../../src/limits/limits.js"
import { runSpore, startSpore, within } from "../support/process.js"

const version = (await import("../../package.json", { with: { type: "json" } })).default.version

/** A local web app on 127.0.0.1 that answers every request with its method and path. */
const webApp = Effect.acquireRelease(
  Effect.async<http.Server>((resume) => {
    const server = http.createServer((request, response) => {
      let body = ""
      request.on("data", (chunk: Buffer) => (body += chunk.toString()))
      request.on("end", () => response.end(`hello from ${request.method} ${request.url} (${body.length} bytes)`))
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
  }),
  (server) => Effect.sync(() => server.close())
)

const serverArgs = ["server", "--bind-addr", "127.0.0.1", "--control-port", "0", "--min-port", "32000", "--max-port", "32767"]

describe("spore CLI", () => {
  it.live("--version prints the package version", () =>
    Effect.gen(function*() {
      const result = yield* runSpore(["--version"])
      expect(result.code).toBe(0)
      expect(result.stdout.trim()).toBe(version)
    }))

  it.live("--help lists every flag with its default and environment variables", () =>
    Effect.gen(function*() {
      const server = (yield* runSpore(["server", "--help"])).stdout
      for (const text of ["--min-port", "Default: 1024", "SPORE_MIN_PORT, BORE_MIN_PORT", "--max-port", "Default: 65535",
        "SPORE_MAX_PORT, BORE_MAX_PORT", "--secret", "SPORE_SECRET, BORE_SECRET", "--bind-addr", "Default: 0.0.0.0",
        "--bind-tunnels", "--control-port", "Default: 7835", "--lease-seconds", "Default: 30", "SPORE_LEASE_SECONDS", "--sndbuf", "SPORE_SNDBUF", "--recbuf", "SPORE_RECBUF",
        "--max-handshakes", `Default: ${DEFAULT_LIMITS.maxHandshakes}`, "--max-conns-per-ip", "Default: 32", "--max-tunnels", "Default: 1024",
        "--max-pending", "Default: 1024", "--max-conns-per-tunnel", "SPORE_MAX_CONNS_PER_TUNNEL", "--allow-visitor", "--deny-visitor", "--trusted-proxy",
        "--drain-seconds", "Default: 10", "SPORE_DRAIN_SECONDS", "--tls-cert", "SPORE_TLS_CERT", "--tls-key", "--tls-port", "Default: 7836",
        "--require-tls", "bore clients then cannot connect", "--https-addr", "SPORE_HTTPS_ADDR", "--acme-email", "--acme-directory",
        "Default: https://acme-v02.api.letsencrypt.org/directory", "--acme-ca", "--acme-weekly-limit", "Default: 40", "--state-dir", "SPORE_STATE_DIR",
        "--cluster", "SPORE_CLUSTER", "SPORE_CLUSTER_SECRET", "--node-addr", "SPORE_NODE_ADDR"]) {
        expect(server).toContain(text)
      }
      expect((yield* runSpore(["server", "--help"], { SPORE_SECRET: "do-not-print-me" })).stdout).not.toContain("do-not-print-me")
      const kafka = (yield* runSpore(["kafka-proxy", "--help"], { SPORE_SECRET: "do-not-print-me" })).stdout
      for (const text of ["--bootstrap-server", "Default: localhost:9092", "--to", "--secret", "--control-port", "--broker-address",
        "--no-reconnect", "--max-reconnect-delay", "--sndbuf", "--recbuf", "--drain-seconds", "--tls", "--tls-ca"]) {
        expect(kafka).toContain(text)
      }
      expect(kafka).not.toContain("do-not-print-me")
      const http = (yield* runSpore(["http", "--help"])).stdout
      for (const text of ["--to", "--token", "--tls-ca", "SPORE_TLS_CA", "--tls-servername", "--ttl", "SPORE_TTL", "--basic-auth", "--host-header"]) {
        expect(http).toContain(text)
      }
      const local = (yield* runSpore(["local", "--help"], { BORE_SECRET: "do-not-print-me" })).stdout
      for (const text of ["LOCAL_PORT", "--local-port", "--local-host", "Default: localhost", "--to",
        "SPORE_SERVER, BORE_SERVER", "--port", "Default: 0", "--secret", "--control-port", "--no-reconnect", "--drain-seconds",
        "--max-reconnect-delay", "Default: 64", "SPORE_MAX_RECONNECT_DELAY", "--sndbuf", "--recbuf", "--pool", "Default: 4", "SPORE_POOL",
        "--tls", "--tls-ca", "--tls-fingerprint", "SPORE_TLS_FINGERPRINT", "--tls-servername"]) {
        expect(local).toContain(text)
      }
      expect(local).not.toContain("do-not-print-me")
      // One line an option in Spore's words: no filler, no colour codes, usage as typed, short.
      const top = (yield* runSpore(["--help"])).stdout
      for (const [name, text, most] of [["spore", top, 25], ["server", server, 50], ["local", local, 40], ["http", http, 40], ["kafka-proxy", kafka, 40]] as const) {
        expect(text.split("\n").length, name).toBeLessThanOrEqual(most)
        expect(text, name).not.toMatch(/\x1b\[|A user-defined piece of text|This setting is optional|--wizard|--completions/)
      }
      expect(local).toContain("Usage: spore [--log-level LEVEL] local [OPTIONS] LOCAL_PORT...")
      expect(local).toMatch(/^ {2}-t, --to HOST\[:PORT\] +The server: HOST, or HOST:PORT to give its control port too \(required\)\. Env: SPORE_SERVER, BORE_SERVER\.$/m)
      for (const command of ["server", "local", "http", "kafka-proxy"]) expect(top).toMatch(new RegExp(`^ {2}${command} +\\S`, "m"))
    }))

  it.live("bad arguments get one clear line and exit code 2, never a stack trace", () =>
    Effect.gen(function*() {
      const front = ["server", "--http-addr", "127.0.0.1:0", "--api-keys", writeKeys(KEY_A)]
      const acme = [...front, "--https-addr", "127.0.0.1:0", "--domain", "spore.test"]
      const cases: Array<[ReadonlyArray<string>, RegExp]> = [
        [["server", "--https-addr", "127.0.0.1:443"], /--https-addr needs --http-addr/],
        [["server", "--acme-email", "ops@example.com"], /--acme-email needs --http-addr/],
        [[...front, "--https-addr", "127.0.0.1:443"], /--https-addr needs a certificate: --tls-cert and --tls-key .* or --acme-email/],
        [[...front, "--https-addr", "443"], /--https-addr/],
        [[...front, "--acme-email", "ops@example.com"], /--acme-email needs --https-addr/],
        [[...front, "--https-addr", "127.0.0.1:0", "--acme-email", "ops@example.com"], /--acme-email needs --domain/],
        [[...acme, "--acme-email", "ops"], /--acme-email must be an e-mail address, not ops/],
        [[...acme, "--acme-email", "ops@example.com", "--acme-directory", "http://acme.example/dir"], /--acme-directory must be an https:\/\/ URL/],
        [[...acme, "--acme-email", "ops@example.com", "--acme-weekly-limit", "0"], /--acme-weekly-limit must be a whole number from 1/],
        [[...acme, "--tls-cert", "c.pem", "--tls-key", "k.pem", "--acme-ca", "ca.pem"], /--acme-ca needs --acme-email/],
        [["http", "3000", "--to", "http://x.example", "--token", "k", "--tls-ca", "ca.pem"], /--tls-ca and --tls-servername need an https:\/\/ --to/],
        [["http", "3000", "--to", "http://x.example", "--token", "k", "--ttl", "soon"], /--ttl: "soon" is not a duration \(such as 90s, 30m, 1h30m\)/],
        [["http", "3000", "--to", "http://x.example", "--token", "k", "--ttl", "-5m"], /--ttl: "-5m" is negative/],
        [["http", "3000", "--to", "http://x.example", "--token", "k", "--basic-auth", "nopassword"], /--basic-auth must be USER:PASS, both non-empty/],
        [["http", "3000", "--to", "http://x.example", "--token", "k", "--basic-auth", ":pass"], /--basic-auth must be USER:PASS, both non-empty/],
        [["http", "3000", "--to", "http://x.example", "--token", "k", "--host-header", "a b"], /--host-header must be rewrite or a host \(with a port if any\), not a b/],
        [["http", "3000", "--to", "https://x.example", "--token", "k", "--tls-ca", "/nonexistent/ca.pem"], /\/nonexistent\/ca\.pem: ENOENT/],
        [["server", "--min-port", "70000"], /--min-port must be a port number/],
        [["server", "--min-port", "5000", "--max-port", "10"], /port range is empty/],
        [["server", "--bind-addr", "not-an-ip"], /--bind-addr must be an IP address/],
        [["server", "--min-port", "abc"], /^error: --min-port must be a whole number, not abc$/m],
        [["local", "3000", "--to", "x", "--pool=many"], /^error: --pool must be a whole number, not many$/m],
        [["local", "3000", "--too", "x"], /^error: unknown option --too for spore local: did you mean --to\?$/m],
        [["serer"], /^error: unknown command serer: did you mean server\? \(commands: server, local, http, kafka-proxy\)$/m],
        [["--log-level", "verbose", "local", "3000", "--to", "x"], /^error: --log-level must be one of all, trace, debug, info, warning, error, fatal, none, not verbose$/m],
        [["server", "--max-prot", "2"], /unknown option --max-prot for spore server: did you mean --max-port\?/],
        [["http", "3000", "--tokn", "k"], /unknown option --tokn for spore http: did you mean --token\?/],
        [["local", "3000", "--to", "h:7835", "--control-port", "7836"], /--to h:7835 and --control-port 7836 name two control ports: give it once/],
        [["local", "3000", "--to", "h:99999"], /--to h:99999: the control port after the colon must be 1-65535/],
        [["local", "3000", "--to", "http://h.example"], /--to takes the server's host, with :PORT for its control port if need be, not a URL/],
        [["local", "--to", "127.0.0.1"], /missing the local port/],
        [["local", "8080"], /missing --to/],
        [["local", "8080", "--local-port", "9090", "--to", "x", "--port", "20000"], /--port applies to one tunnel/],
        [["local", "8080", "--to", "x", "--proxy-protocol", "v3"], /--proxy-protocol must be v1 or v2, not v3/],
        [["local", "--config", "/nonexistent/tunnels.json", "--to", "x"], /nonexistent/],
        [["local", "8080", "--to", "x", "--metrics-addr", "localhost"], /--metrics-addr must be IP:PORT/],
        [["server", "--metrics-addr", "0.0.0.0:99999"], /--metrics-addr must be IP:PORT/],
        [["server", "--log-format", "xml"], /--log-format must be text or json, not xml/],
        [["kafka-proxy", "--to", "x", "--bootstrap-server", "localhost"], /--bootstrap-server must be HOST:PORT, not localhost/],
        [["kafka-proxy", "--to", "x", "--broker-address", "one=h:1"], /--broker-address must be ID=HOST:PORT/],
        [["kafka-proxy"], /missing --to/],
        [["kafka-proxy", "--to", "x", "--broker-port", "1:20000"], /--broker-port must be ID=PORT, not 1:20000/],
        [["kafka-proxy", "--to", "x", "--broker-port", "1=70000"], /--broker-port must be a port number/],
        [["kafka-proxy", "--to", "x", "--port", "70000"], /--port must be a port number/],
        [["local", "0", "--to", "x"], /--local-port must be a port number/],
        [["local", "8080", "--to", "x", "--secret", ""], /--secret is empty/],
        [["local", "8080", "--to", "x", "--max-reconnect-delay", "0"], /--max-reconnect-delay must be a whole number/],
        [["local", "8080", "--to", "x", "--pool", "65"], /--pool must be a whole number from 0 to 64, not 65/],
        [["local", "8080", "--to", "x", "--pool", "-1"], /--pool must be a whole number from 0 to 64, not -1/],
        [["server", "--lease-seconds", "-1"], /--lease-seconds must be a whole number/],
        [["server", "--sndbuf", "10"], /--sndbuf must be a number of bytes from 1024/],
        [["local", "8080", "--to", "x", "--recbuf", "9999999999999"], /--recbuf must be a number of bytes/],
        [["server", "--max-pending", "0"], /--max-pending must be a whole number from 1/],
        [["server", "--max-tunnels", "-5"], /--max-tunnels must be a whole number from 1/],
        [["server", "--allow-visitor", "10.0.0.0/33"], /--allow-visitor: .*10\.0\.0\.0\/33/],
        [["server", "--deny-visitor", "example.com"], /--deny-visitor: .*example\.com/],
        [["server", "--trusted-proxy", "10.0.0.0/33"], /--trusted-proxy: .*10\.0\.0\.0\/33/],
        [["server", "--trusted-proxy", "10.0.0.1", "--trusted-proxy", "proxy.internal"], /--trusted-proxy: .*proxy\.internal/],
        [["server", "--trusted-proxy", "10.0.0.0/8"], /--trusted-proxy needs --http-addr/],
        [["server", "--tls-key", "key.pem"], /--tls-key needs --tls-cert/],
        [["server", "--tls-cert", "cert.pem"], /--tls-cert needs --tls-key/],
        [["server", "--require-tls"], /--require-tls needs --tls-cert and --tls-key/],
        [["server", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-port", "7835"], /--tls-port must differ from --control-port/],
        [["local", "8080", "--to", "x", "--tls-fingerprint", "AB:CD"], /--tls-fingerprint must be a SHA-256 fingerprint/],
        [["local", "8080", "--to", "x", "--tls-ca", "/nonexistent/ca.pem"], /--tls-ca: .*\/nonexistent\/ca\.pem: ENOENT/],
        [[...front, "--cluster", "redis://127.0.0.1:6379"], /--cluster needs --node-addr IP:PORT/],
        [[...front, "--cluster", "redis://127.0.0.1:6379", "--node-addr", "127.0.0.1:7900"], /--cluster needs SPORE_CLUSTER_SECRET in the environment/],
        [[...front, "--cluster", "http://127.0.0.1:6379"], /--cluster must be a Redis URL like redis:\/\/10\.0\.0\.5:6379, not http:/],
        [[...front, "--cluster", "redis://127.0.0.1:6379", "--node-addr", "0.0.0.0:7900"], /--node-addr must be the address other nodes reach this one at, not 0\.0\.0\.0/],
        [[...front, "--cluster", "redis://127.0.0.1:6379", "--node-addr", "node-a:7900"], /--node-addr must be IP:PORT/],
        [["server", "--cluster", "redis://127.0.0.1:6379", "--node-addr", "127.0.0.1:0"], /--cluster needs --http-addr/],
        [["server", "--node-addr", "127.0.0.1:7900"], /--node-addr needs --cluster/],
        [[...acme, "--acme-email", "ops@example.com", "--cluster", "redis://127.0.0.1:6379"], /--acme-email does not work in a cluster/],
        [["http", "3000", "--to", "http://a.example,https://b.example", "--token", "k"], /--to: give every server with the same scheme/],
        [["http", "3000", "--to", "http://a.example,b.example", "--token", "k"], /--to must be the server's URL.*not b\.example/]
      ]
      for (const [args, message] of cases) {
        const result = yield* runSpore(args)
        expect(result.code, args.join(" ")).toBe(2)
        expect(result.stderr, args.join(" ")).toMatch(message)
        expect(result.stderr).not.toMatch(/\n\s+at /)
      }
    }))

  it.scopedLive("bore's habits: --to HOST:PORT names the control port, BORE_LOCAL_PORT the local one; a fatal error under --log-format json is a JSON line", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const controlPort = yield* freePort
      const server = yield* startSpore(["server", "--bind-addr", LOOPBACK, "--control-port", String(controlPort), "--min-port", "37400", "--max-port", "37500"])
      yield* within("the server", 15, server.waitFor(/server listening/))
      const byTo = yield* startSpore(["local", String(echo), "--local-host", LOOPBACK, "--to", `${LOOPBACK}:${controlPort}`])
      const port = Number((yield* within("--to HOST:PORT", 15, byTo.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
      const payload = randomPayload(64 * 1024)
      expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
      const byEnv = yield* startSpore(["local", "--local-host", LOOPBACK, "--to", LOOPBACK, "--control-port", String(controlPort)], { BORE_LOCAL_PORT: String(echo) })
      const envPort = Number((yield* within("BORE_LOCAL_PORT", 15, byEnv.waitFor(/listening at 127\.0\.0\.1:(\d+)/)))[1])
      expect(sha256(yield* roundTrip(envPort, payload))).toBe(sha256(payload))

      const unreachable = yield* runSpore(["local", "3000", "--to", `${LOOPBACK}:${yield* freePort}`, "--no-reconnect", "--log-format", "json"])
      expect(unreachable.code).toBe(1)
      const lines = unreachable.stderr.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>)
      expect(lines.at(-1)).toMatchObject({ level: "FATAL", message: expect.stringMatching(/^could not connect to 127\.0\.0\.1:\d+: ECONNREFUSED$/) })
      const usage = yield* runSpore(["local", "3000", "--to", "x", "--pool", "99", "--log-format", "json"])
      expect(usage.code).toBe(2)
      expect(JSON.parse(usage.stderr.trim())).toMatchObject({ level: "FATAL", message: "--pool must be a whole number from 0 to 64, not 99" })
    }))

  it.live("--trusted-proxy reaches the HTTP front: its X-Forwarded-For decides the visitor filter, a stranger's does not", () =>
    Effect.gen(function*() {
      const server = yield* startSpore([...serverArgs, "--http-addr", "127.0.0.1:0", "--api-keys", writeKeys(KEY_A),
        "--trusted-proxy", "127.0.0.2", "--trusted-proxy", "10.0.0.0/8", "--deny-visitor", "203.0.113.7/32"])
      const port = Number((yield* server.waitFor(/http front listening on 127\.0\.0\.1:(\d+)/))[1])
      const visit = (from: string) =>
        Effect.scoped(Effect.gen(function*() {
          const socket = yield* dial(port, "127.0.0.1", from)
          socket.write("GET /t/app/ HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
          return (yield* readAll(socket)).toString("latin1").slice(0, 12)
        }))
      expect(yield* visit("127.0.0.2")).toBe("HTTP/1.1 403")
      // Not a trusted proxy: its header is passed on, not believed (and there is no tunnel app).
      expect(yield* visit("127.0.0.3")).toBe("HTTP/1.1 404")
    }).pipe(Effect.scoped))

  it.live("a server and a client process carry HTTP requests to a local web app, then stop cleanly", () =>
    Effect.gen(function*() {
      const app = yield* webApp
      const appPort = (app.address() as AddressInfo).port
      // Secrets from the environment, through both the BORE_ and the SPORE_ names.
      const server = yield* startSpore(serverArgs, { BORE_SECRET: "env-secret" })
      const controlPort = (yield* server.waitFor(/server listening on 127\.0\.0\.1:(\d+)/))[1]!
      const client = yield* startSpore(
        ["local", String(appPort), "--local-host", "127.0.0.1", "--to", "127.0.0.1", "--control-port", controlPort],
        { SPORE_SECRET: "env-secret" }
      )
      const publicPort = (yield* client.waitFor(/listening at 127\.0\.0\.1:(\d+)/))[1]!

      const get = yield* Effect.promise(() => fetch(`http://127.0.0.1:${publicPort}/some/path`).then((r) => r.text()))
      expect(get).toBe("hello from GET /some/path (0 bytes)")
      const post = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${publicPort}/upload`, { method: "POST", body: "x".repeat(100_000) }).then((r) => r.text()))
      expect(post).toBe("hello from POST /upload (100000 bytes)")

      expect(server.stderr() + client.stderr()).not.toContain("env-secret")
      client.child.kill("SIGTERM")
      server.child.kill("SIGINT")
      expect((yield* client.exited).code).toBe(0)
      expect((yield* server.exited).code).toBe(0)
    }).pipe(Effect.scoped))

  it.live("secrets never reach the logs, even at debug level and when they are wrong", () =>
    Effect.gen(function*() {
      const controlPort = String(yield* freePort)
      const server = yield* startSpore(["--log-level", "debug", "server", "--bind-addr", "127.0.0.1", "--control-port", controlPort,
        "--min-port", "32002", "--max-port", "32003", "--secret", "right-secret-4f2a"])
      yield* server.waitFor(/server listening/)
      const wrong = yield* runSpore(["--log-level", "debug", "local", "9", "--to", "127.0.0.1", "--control-port", controlPort,
        "--secret", "wrong-secret-9c1e"])
      expect(wrong.stderr).toContain("invalid secret")
      yield* server.waitFor(/handshake failed: invalid secret/)
      for (const output of [server.stderr(), wrong.stderr, wrong.stdout]) {
        expect(output).not.toContain("right-secret-4f2a")
        expect(output).not.toContain("wrong-secret-9c1e")
      }
    }).pipe(Effect.scoped))

  it.live("--log-level, given before the command, sets what is logged", () =>
    Effect.gen(function*() {
      const controlPort = String(yield* freePort)
      const server = yield* startSpore(["--log-level", "warning", "server", "--bind-addr", "127.0.0.1", "--control-port", controlPort, "--min-port", "32000", "--max-port", "32001"])
      // A Hello outside the range draws a WARN line; the server's INFO lines are gone.
      const refused = yield* runSpore(["local", "9", "--to", "127.0.0.1", "--control-port", controlPort, "--port", "1"])
      expect(refused.stderr).toContain("error: server error: client port number not in allowed range")
      yield* server.waitFor(/ WARN tunnel refused: client port number not in allowed range/)
      expect(server.stderr()).not.toMatch(/ INFO /)
    }).pipe(Effect.scoped))

  it.live("a client with the wrong secret exits 1 with bore's text", () =>
    Effect.gen(function*() {
      const server = yield* startSpore([...serverArgs, "--secret", "right"])
      const controlPort = (yield* server.waitFor(/server listening on 127\.0\.0\.1:(\d+)/))[1]!
      const result = yield* runSpore(["local", "9", "--to", "127.0.0.1", "--control-port", controlPort, "--secret", "wrong"])
      expect(result.code).toBe(1)
      expect(result.stderr.trim()).toBe("error: server error: invalid secret")
    }).pipe(Effect.scoped))

  it.live("with --no-reconnect, a client whose server goes away exits 1 and says so (bore exits 0)", () =>
    Effect.gen(function*() {
      const server = yield* startSpore(serverArgs)
      const controlPort = (yield* server.waitFor(/server listening on 127\.0\.0\.1:(\d+)/))[1]!
      const client = yield* startSpore(["local", "9", "--to", "127.0.0.1", "--control-port", controlPort, "--no-reconnect"])
      yield* client.waitFor(/listening at/)
      server.child.kill("SIGTERM")
      const result = yield* client.exited
      expect(result.code).toBe(1)
      expect(result.stderr).toContain("error: lost the control connection to the server")
    }).pipe(Effect.scoped))

  it.live("a server whose certificate cannot be read, or whose key is not its own, exits 1 with a clear message", () =>
    Effect.gen(function*() {
      const tls = (cert: string, key: string) => ["server", "--bind-addr", "127.0.0.1", "--control-port", "0", "--tls-port", "0", "--tls-cert", cert, "--tls-key", key]
      const missing = yield* runSpore(tls("/nonexistent/cert.pem", fixture("server-key.pem")))
      expect(missing.code).toBe(1)
      expect(missing.stderr.trim()).toBe("error: TLS: /nonexistent/cert.pem: ENOENT")
      const mismatched = yield* runSpore(tls(fixture("other.pem"), fixture("server-key.pem")))
      expect(mismatched.code).toBe(1)
      expect(mismatched.stderr).toMatch(/error: TLS: .*server-key\.pem: does not go with .*other\.pem/)
    }))

  it.live("a server whose control port is taken exits 1 with a clear message", () =>
    Effect.gen(function*() {
      const first = yield* startSpore(serverArgs)
      const controlPort = (yield* first.waitFor(/server listening on 127\.0\.0\.1:(\d+)/))[1]!
      const second = yield* runSpore(["server", "--bind-addr", "127.0.0.1", "--control-port", controlPort])
      expect(second.code).toBe(1)
      expect(second.stderr.trim()).toBe(`error: could not listen on 127.0.0.1:${controlPort}: EADDRINUSE`)
    }).pipe(Effect.scoped))
})
