/**
 * HTTPS on the HTTP front (`--https-addr`), with real `spore server` and `spore http` processes:
 * with the operator's certificate (a wildcard for *.spore.test), and with certificates from a
 * real ACME server (Debian's pebble, validating HTTP-01 on the front's plain port), checked by
 * undici and Chromium.
 */
import { describe, expect, it } from "@effect/vitest"
import { createHash, randomBytes, X509Certificate } from "node:crypto"
import * as fs from "node:fs"
import * as https from "node:https"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { Effect } from "effect"
import { type Agent, fetch } from "undici"
import { hasChromium, withPage } from "../support/browser.js"
import { DOMAIN, type Echo, KEY_A, KEY_B, localApp, loopbackAgent, startHttpClient, startHttpServer, writeKeys } from "../support/http.js"
import { freePort, LOOPBACK } from "../support/net.js"
import { hasPebble, type Pebble, startPebble } from "../support/pebble.js"
import { runSpore, within } from "../support/process.js"
import { tlsFixture } from "../support/tls.js"

const CA = fs.readFileSync(tlsFixture("ca.pem"))
const WILDCARD = ["--tls-cert", tlsFixture("wildcard.pem"), "--tls-key", tlsFixture("wildcard-key.pem"), "--tls-port", "0"]
const HTTPS = ["--https-addr", `${LOOPBACK}:0`]

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

const send = (agent: Agent, url: string, init: { method?: string; body?: string } = {}) =>
  within(`${init.method ?? "GET"} ${url}`, 20, Effect.promise(async (): Promise<Answer> => {
    const response = await fetch(url, { ...init, dispatcher: agent, redirect: "manual" })
    return { status: response.status, headers: response.headers as unknown as Headers, text: await response.text() }
  }))

/** The certificate 127.0.0.1:port presents for `servername`, checked against `ca`; or the handshake's error. */
const presented = (port: number, servername: string, ca: string | Buffer) =>
  within(`a TLS handshake for ${servername}`, 20, Effect.async<{ fingerprint: string; issuer: string } | { error: string }>((resume) => {
    const socket = tls.connect({ host: LOOPBACK, port, servername, ca })
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate()
      resume(Effect.succeed({ fingerprint: cert.fingerprint256, issuer: String(cert.issuer.CN ?? "") }))
      socket.destroy()
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resume(Effect.succeed({ error: error.code ?? error.message })))
    return Effect.sync(() => socket.destroy())
  }))

const sameCertificate = (a: { fingerprint: string } | { error: string }, b: { fingerprint: string } | { error: string }) =>
  "fingerprint" in a && "fingerprint" in b && a.fingerprint === b.fingerprint

const tempDir = (prefix: string) => fs.mkdtempSync(path.join(tmpdir(), prefix))

describe("the HTTPS front with the operator's certificate", () => {
  it.live("serves tunnels, API and dashboard over TLS, says https to the app, and redirects plain http", () =>
    Effect.gen(function*() {
      const app = yield* localApp
      const server = yield* startHttpServer({ keysFile: writeKeys(KEY_A), dashboard: true, extra: [...HTTPS, ...WILDCARD] })
      const httpsPort = server.httpsPort!
      const client = yield* startHttpClient(server.port, app.port, {
        key: KEY_A,
        name: "app",
        to: `https://localhost:${httpsPort}`,
        extra: ["--tls-ca", tlsFixture("ca.pem")]
      })
      expect(client.url).toBe(`https://app.${DOMAIN}:${httpsPort}`)
      const agent = yield* loopbackAgent({ ca: CA })

      // By host and by path, over TLS, the app told the visitor came by https.
      for (const url of [`https://app.${DOMAIN}:${httpsPort}/echo`, `https://localhost:${httpsPort}/t/app/echo`]) {
        const answer = yield* send(agent, url)
        expect(answer.status, answer.text).toBe(200)
        const echo = JSON.parse(answer.text) as Echo
        expect(echo.forwardedProto).toBe("https")
      }
      // A body through TLS both ways, hashed.
      const body = randomBytes(2 * 1024 * 1024).toString("base64")
      const hashed = yield* send(agent, `https://app.${DOMAIN}:${httpsPort}/hash`, { method: "POST", body })
      expect(JSON.parse(hashed.text).sha256).toBe(createHash("sha256").update(body).digest("hex"))

      // Plain http: a 308 to the same URL on the HTTPS port, for visitors and the API alike.
      const plain = yield* send(agent, `http://app.${DOMAIN}:${server.port}/echo?x=1`, { method: "POST", body: "hi" })
      expect(plain.status).toBe(308)
      expect(plain.headers.get("location")).toBe(`https://app.${DOMAIN}:${httpsPort}/echo?x=1`)
      const api = yield* send(agent, `http://localhost:${server.port}/v1/tunnels`)
      expect(api.headers.get("location")).toBe(`https://localhost:${httpsPort}/v1/tunnels`)

      // The key's own status page and the operator's dashboard, over TLS. (The front's own
      // name: the agent's kept-alive connection to localhost belongs to the tunnel it reached.)
      const page = yield* send(agent, `https://${DOMAIN}:${httpsPort}/`)
      expect(page.status).toBe(200)
      const dashboard = yield* send(agent, `https://localhost:${server.dashboardPort}/v1/status`)
      expect(dashboard.status, dashboard.text).toBe(200)
      expect(dashboard.text).toContain(`https://app.${DOMAIN}:${httpsPort}`)
    }).pipe(Effect.scoped), 60_000)

  it.live("spore http refuses a server it cannot verify, and a plain URL the server redirects, fatally with a clear line", () =>
    Effect.gen(function*() {
      const server = yield* startHttpServer({ keysFile: writeKeys(KEY_A), extra: [...HTTPS, ...WILDCARD] })
      const unknownCa = yield* within("spore http to an unknown CA", 20, runSpore(["http", "3000", "--to", `https://localhost:${server.httpsPort}`, "--token", KEY_A]))
      expect(unknownCa.code).toBe(1)
      expect(unknownCa.stderr).toMatch(/not signed by a CA we trust .*--tls-ca/)
      const wrongName = yield* within("spore http to the wrong name", 20, runSpore([
        "http", "3000", "--to", `https://localhost:${server.httpsPort}`, "--token", KEY_A,
        "--tls-ca", tlsFixture("ca.pem"), "--tls-servername", "other.example"
      ]))
      expect(wrongName.code).toBe(1)
      expect(wrongName.stderr).toMatch(/not for this name/)
      const plain = yield* within("spore http to plain http", 20, runSpore(["http", "3000", "--to", `http://localhost:${server.port}`, "--token", KEY_A]))
      expect(plain.code).toBe(1)
      expect(plain.stderr).toContain(`serves its API over https only: use --to https://localhost:${server.httpsPort}`)
    }).pipe(Effect.scoped), 90_000)
})

describe("the HTTPS front when the ACME directory fails", () => {
  it.live("a handshake gets no certificate, the failure is logged once and not retried at once, and the server serves on", () =>
    Effect.gen(function*() {
      // A directory that answers, but not as ACME: every order fails at its first request.
      const directory = yield* Effect.acquireRelease(
        Effect.async<https.Server>((resume) => {
          const server = https.createServer({ cert: fs.readFileSync(tlsFixture("server.pem")), key: fs.readFileSync(tlsFixture("server-key.pem")) }, (_request, response) => {
            response.writeHead(404, { "Content-Type": "application/json" })
            response.end(JSON.stringify({ type: "urn:ietf:params:acme:error:malformed", detail: "no directory here" }))
          })
          server.listen(0, LOOPBACK, () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.sync(() => server.close())
      )
      const server = yield* startHttpServer({
        keysFile: writeKeys(KEY_A),
        extra: [
          ...HTTPS, "--acme-email", "ops@spore.test", "--acme-ca", tlsFixture("ca.pem"), "--state-dir", tempDir("spore-acme-"),
          "--acme-directory", `https://${LOOPBACK}:${(directory.address() as AddressInfo).port}/dir`
        ]
      })
      const first = yield* presented(server.httpsPort!, DOMAIN, CA)
      expect(first).toHaveProperty("error")
      yield* within("the failure's log line", 10, server.process.waitFor(/no certificate for spore\.test: .* \(tried again after 10m\)/))
      const again = yield* presented(server.httpsPort!, DOMAIN, CA)
      expect(again).toHaveProperty("error")
      expect(server.process.stderr().match(/no certificate for spore\.test/g)).toHaveLength(1)
      const agent = yield* loopbackAgent()
      const plain = yield* send(agent, `http://app.${DOMAIN}:${server.port}/`)
      expect(plain.status).toBe(308)
    }).pipe(Effect.scoped), 60_000)
})

/** A server whose front gets its certificates from `pebble`, on the plain port pebble validates on. */
const acmeServer = (pebble: Pebble, httpPort: number, stateDir: string, extra: ReadonlyArray<string> = []) =>
  startHttpServer({
    keysFile: writeKeys(KEY_A, KEY_B),
    port: httpPort,
    extra: [
      ...HTTPS,
      "--acme-email", "ops@spore.test",
      "--acme-directory", pebble.directoryUrl,
      "--acme-ca", pebble.directoryCaFile,
      "--state-dir", stateDir,
      ...extra
    ]
  })

/** The public keys' SHA-256 (base64) of each certificate in a PEM chain, as Chromium's SPKI list takes them. */
const spkiHashes = (chainPem: string) =>
  (chainPem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((pem) =>
    createHash("sha256").update(new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" })).digest("base64")
  )

describe.skipIf(!hasPebble())("the HTTPS front with certificates from ACME (pebble)", () => {
  const withPebble = <A, E, R>(body: (pebble: Pebble, httpPort: number, root: string) => Effect.Effect<A, E, R>, validitySeconds?: number) =>
    Effect.gen(function*() {
      const httpPort = yield* freePort
      const pebble = yield* Effect.acquireRelease(
        Effect.promise(() => startPebble({ httpPort, ...(validitySeconds === undefined ? {} : { certificateValiditySeconds: validitySeconds }) })),
        (pebble) => Effect.promise(() => pebble.stop())
      )
      const root = yield* Effect.promise(() => pebble.issuerRootPem())
      return yield* body(pebble, httpPort, root).pipe(
        Effect.tapErrorCause(() => Effect.sync(() => console.error(pebble.logs())))
      )
    }).pipe(Effect.scoped)

  it.live("a named tunnel gets a certificate issued by pebble; undici and Chromium reach it; it survives a restart", () =>
    withPebble((pebble, httpPort, root) =>
      Effect.gen(function*() {
        const stateDir = tempDir("spore-acme-")
        const rootFile = path.join(stateDir, "pebble-root.pem")
        fs.writeFileSync(rootFile, root)
        const app = yield* localApp
        const clientFlags = { key: KEY_A, name: "demo", extra: ["--tls-ca", rootFile, "--tls-servername", DOMAIN] }
        const agent = yield* loopbackAgent({ ca: root })

        const first = yield* Effect.scoped(Effect.gen(function*() {
          const server = yield* acmeServer(pebble, httpPort, stateDir)
          // The API's own name (the domain) gets its certificate first, as the client connects.
          const client = yield* startHttpClient(server.port, app.port, { ...clientFlags, to: `https://${LOOPBACK}:${server.httpsPort}` })
          expect(client.url).toBe(`https://demo.${DOMAIN}:${server.httpsPort}`)
          const answer = yield* send(agent, `https://demo.${DOMAIN}:${server.httpsPort}/echo`)
          expect(answer.status, answer.text).toBe(200)
          expect((JSON.parse(answer.text) as Echo).forwardedProto).toBe("https")
          const cert = yield* presented(server.httpsPort!, `demo.${DOMAIN}`, root)
          expect(cert).toMatchObject({ issuer: expect.stringMatching(/^Pebble Intermediate/) })
          expect(pebble.issuedCount()).toBe(2)

          // Chromium, trusting pebble's intermediate (by its key) and nothing else.
          if (hasChromium()) {
            const stored = fs.readdirSync(stateDir, { recursive: true }).map(String).find((file) => file.endsWith(`demo.${DOMAIN}.pem`))!
            const pins = spkiHashes(fs.readFileSync(path.join(stateDir, stored), "utf8")).slice(1)
            const title = yield* Effect.promise(() =>
              withPage(async (page) => {
                const response = await page.goto(`https://demo.${DOMAIN}:${server.httpsPort}/page`)
                expect(response?.status()).toBe(200)
                return page.locator("#app-title").textContent()
              }, 15_000, [`--ignore-certificate-errors-spki-list=${pins.join(",")}`]))
            expect(title).toBe("Hello from the app")
          }
          return cert
        }))

        // A new server process on the same state dir: the same certificate, nothing new asked for.
        const server = yield* acmeServer(pebble, httpPort, stateDir)
        yield* startHttpClient(server.port, app.port, { ...clientFlags, to: `https://${LOOPBACK}:${server.httpsPort}` })
        const again = yield* presented(server.httpsPort!, `demo.${DOMAIN}`, root)
        expect(again).toEqual(first)
        const answer = yield* send(agent, `https://demo.${DOMAIN}:${server.httpsPort}/echo`)
        expect(answer.status).toBe(200)
        expect(pebble.issuedCount()).toBe(2)
      })
    ), 120_000)

  it.live("random names cannot make it ask for certificates, and --acme-weekly-limit caps new names; honest visitors are served meanwhile", () =>
    withPebble((pebble, httpPort, root) =>
      Effect.gen(function*() {
        const stateDir = tempDir("spore-acme-")
        const server = yield* acmeServer(pebble, httpPort, stateDir, ["--acme-weekly-limit", "3"])
        const port = server.httpsPort!
        const rootFile = path.join(stateDir, "pebble-root.pem")
        fs.writeFileSync(rootFile, root)
        const app = yield* localApp
        // The domain's certificate and demo's: two of the three new names allowed.
        yield* startHttpClient(server.port, app.port, { key: KEY_A, name: "demo", to: `https://${LOOPBACK}:${port}`, extra: ["--tls-ca", rootFile, "--tls-servername", DOMAIN] })
        const agent = yield* loopbackAgent({ ca: root })
        expect((yield* send(agent, `https://demo.${DOMAIN}:${port}/echo`)).status).toBe(200)
        expect(pebble.issuedCount()).toBe(2)

        // 200 handshakes for names no tunnel has, from many addresses' worth of SNI: none asks.
        const flood = yield* Effect.forEach(Array.from({ length: 200 }, (_, index) => index), (index) =>
          presented(port, index % 2 === 0 ? `x${randomBytes(6).toString("hex")}.${DOMAIN}` : `${randomBytes(6).toString("hex")}.example.com`, root),
          { concurrency: 50 })
        expect(flood.every((result) => "error" in result)).toBe(true)
        expect(pebble.issuedCount()).toBe(2)
        // The honest visitor, during and after.
        expect((yield* send(agent, `https://demo.${DOMAIN}:${port}/echo`)).status).toBe(200)

        // A key holder's new tunnels: the first gets the last certificate allowed, the next none.
        for (const name of ["one", "two"]) {
          const created = yield* Effect.promise(() =>
            fetch(`https://${DOMAIN}:${port}/v1/tunnels`, {
              method: "POST",
              headers: { Authorization: `Bearer ${KEY_B}`, "Content-Type": "application/json" },
              body: JSON.stringify({ name }),
              dispatcher: agent
            }).then((response) => response.status))
          expect(created).toBe(201)
        }
        const one = yield* presented(port, `one.${DOMAIN}`, root)
        expect(one).toHaveProperty("fingerprint")
        const two = yield* presented(port, `two.${DOMAIN}`, root)
        expect(two).toHaveProperty("error")
        expect(pebble.issuedCount()).toBe(3)
        yield* within("the limit's warning", 5, server.process.waitFor(/no certificate asked for two\.spore\.test: 3 new names in 7 days already/))
      })
    ), 120_000)

  it.live("a certificate is renewed before it expires, and the next handshakes get the new one", () =>
    withPebble((pebble, httpPort, root) =>
      Effect.gen(function*() {
        const stateDir = tempDir("spore-acme-")
        const server = yield* acmeServer(pebble, httpPort, stateDir)
        const port = server.httpsPort!
        // Valid for 9 s: renewal is due with 3 s left, so after about 6 s.
        const first = yield* presented(port, DOMAIN, root)
        expect(first).toHaveProperty("fingerprint")
        let renewed = first
        for (let attempt = 0; attempt < 60 && sameCertificate(renewed, first); attempt++) {
          yield* Effect.sleep("250 millis")
          renewed = yield* presented(port, DOMAIN, root)
        }
        expect(renewed).toHaveProperty("fingerprint")
        expect(renewed).not.toEqual(first)
        expect(pebble.issuedCount()).toBe(2)
      }), 9), 60_000)
})
