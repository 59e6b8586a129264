/**
 * Spore client and Spore server over TLS on 127.0.0.1: bytes intact through control, data and
 * pool streams; the three ways a client checks the server (CA, pinned fingerprint, name), each
 * failing fatally when it should; `--require-tls`; certificate reload under load; and a flood of
 * stalled TLS handshakes against honest clients. Certificates: test/fixtures/tls (see
 * scripts/make-test-certs.sh).
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { Effect, Either, Fiber, Option } from "effect"
import * as Client from "../../src/client/client.js"
import type { ClientConfig } from "../../src/client/config.js"
import { describeCertificate, makeClientTls, parseFingerprint } from "../../src/net/tls.js"
import { clientLayer } from "../support/client.js"
import { TEST_CERTIFICATE, tlsFixture } from "../support/tls.js"
import {
  clientConfig,
  dial,
  echoService,
  LOOPBACK,
  randomPayload,
  readAll,
  roundTrip,
  sha256,
  startRunningServer,
  startTunnel
} from "../support/net.js"

const MiB = 1 << 20
const fixture = tlsFixture
const SERVER = TEST_CERTIFICATE
const fingerprintOf = (name: string) => describeCertificate(fs.readFileSync(fixture(name))).fingerprint

const trustingCa = (servername?: string) =>
  Effect.orDie(makeClientTls({ caFile: Option.some(fixture("ca.pem")), servername: Option.fromNullable(servername), fingerprint: Option.none() }))
const pinning = (fingerprint: string) =>
  Effect.orDie(makeClientTls({ caFile: Option.none(), servername: Option.none(), fingerprint: Option.some(fingerprint) }))

/** A TLS server on an ephemeral port and the running server. */
const tlsServer = (options: { certFile: string; keyFile: string; require?: boolean } = SERVER) =>
  Effect.map(startRunningServer({ tls: options }), (server) => ({ ...server, tlsPort: Option.getOrThrow(server.tlsPort) }))

/** Runs the client with reconnection on, as `spore local` does by default; returns how it ended. */
const runUntilFatal = (config: ClientConfig) =>
  Effect.flip(Client.run({ ...config, reconnect: true }, () => Effect.void).pipe(
    Effect.provide(clientLayer),
    Effect.scoped,
    Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => ({ _tag: "StillRetrying", message: "the client kept retrying" }) as const })
  ))

/** The fingerprint a fresh TLS connection to `port` is shown. */
const presentedFingerprint = (port: number) =>
  Effect.async<string, Error>((resume) => {
    const socket = tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256
      socket.destroy()
      resume(Effect.succeed(fingerprint))
    })
    socket.once("error", (error) => resume(Effect.fail(error)))
  })

describe("TLS between Spore peers", () => {
  it.live("carries random bytes both ways intact, with a CA file, through data and pool streams", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const server = yield* tlsServer()
      for (const pool of [0, 4]) {
        const port = yield* startTunnel(clientConfig(server.tlsPort, echo, { tls: yield* trustingCa(), pool }))
        const payload = randomPayload(16 * MiB)
        const back = yield* roundTrip(port, payload)
        expect(sha256(back)).toBe(sha256(payload))
      }
    }).pipe(Effect.scoped))

  it.live("serves 200 visitors at once, each with its own bytes", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const server = yield* tlsServer()
      const port = yield* startTunnel(clientConfig(server.tlsPort, echo, { tls: yield* trustingCa(), pool: 8 }))
      const results = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => randomPayload(16 * 1024 + i)),
        (payload) => Effect.map(roundTrip(port, payload), (back) => sha256(back) === sha256(payload)),
        { concurrency: "unbounded" }
      )
      expect(results.filter((ok) => ok)).toHaveLength(200)
    }).pipe(Effect.scoped))

  it.live("keeps half-close: a visitor that ends its side still gets the whole reply", () =>
    Effect.gen(function*() {
      const reply = randomPayload(4 * MiB)
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        let length = 0
        socket.on("data", (chunk: Buffer) => length += chunk.length)
        socket.on("end", () => socket.end(Buffer.concat([Buffer.from(`${length}:`), reply])))
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, LOOPBACK, () => resume(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const spore = yield* tlsServer()
      const port = yield* startTunnel(clientConfig(spore.tlsPort, (server.address() as net.AddressInfo).port, { tls: yield* trustingCa() }))
      const back = yield* roundTrip(port, randomPayload(MiB))
      expect(back.subarray(0, 8).toString()).toBe(`${MiB}:`)
      expect(sha256(back.subarray(8))).toBe(sha256(reply))
    }).pipe(Effect.scoped))

  it.live("a pinned fingerprint, in the form the server logs or openssl prints, is enough for a self-signed check", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const server = yield* tlsServer()
      const logged = fingerprintOf("server.pem")
      const fromOpenssl = Either.getOrThrow(parseFingerprint(`sha256 Fingerprint=${logged}`))
      expect(fromOpenssl).toBe(logged)
      expect(Either.getOrThrow(parseFingerprint(logged.replaceAll(":", "").toLowerCase()))).toBe(logged)
      const port = yield* startTunnel(clientConfig(server.tlsPort, echo, { tls: yield* pinning(fromOpenssl) }))
      const payload = randomPayload(MiB)
      expect(sha256(yield* roundTrip(port, payload))).toBe(sha256(payload))
    }).pipe(Effect.scoped))

  it.live("a wrong pin, a wrong name and an unknown CA are fatal, retried never", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const server = yield* tlsServer()
      const wrongPin = yield* runUntilFatal(clientConfig(server.tlsPort, echo, { tls: yield* pinning(fingerprintOf("other.pem")) }))
      expect(wrongPin._tag).toBe("TlsVerifyError")
      expect(wrongPin.message).toContain(`not the pinned ${fingerprintOf("other.pem")}`)

      const wrongName = yield* runUntilFatal(clientConfig(server.tlsPort, echo, { tls: yield* trustingCa("other.example") }))
      expect(wrongName._tag).toBe("TlsVerifyError")
      expect(wrongName.message).toContain("ERR_TLS_CERT_ALTNAME_INVALID")

      const systemCas = yield* Effect.orDie(makeClientTls({ caFile: Option.none(), servername: Option.none(), fingerprint: Option.none() }))
      const unknownCa = yield* runUntilFatal(clientConfig(server.tlsPort, echo, { tls: systemCas }))
      expect(unknownCa._tag).toBe("TlsVerifyError")
    }).pipe(Effect.scoped))

  it.live("plaintext and TLS side by side on one server; --require-tls refuses plaintext fatally, naming the TLS port", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const both = yield* tlsServer()
      const plainPort = yield* startTunnel(clientConfig(both.controlPort, echo))
      expect(sha256(yield* roundTrip(plainPort, Buffer.from("plain")))).toBe(sha256(Buffer.from("plain")))

      const strict = yield* tlsServer({ ...SERVER, require: true })
      for (const secret of [undefined, "a-secret"]) {
        const refused = yield* runUntilFatal(clientConfig(strict.controlPort, echo, secret === undefined ? {} : { secret }))
        expect(refused._tag).toBe("ServerRejected")
        expect(refused.message).toBe(`server error: this server accepts TLS connections only: connect with --tls to port ${strict.tlsPort}`)
      }
      const port = yield* startTunnel(clientConfig(strict.tlsPort, echo, { tls: yield* trustingCa() }))
      expect((yield* roundTrip(port, Buffer.from("secure"))).toString()).toBe("secure")
    }).pipe(Effect.scoped))

  it.live("a plaintext peer on the TLS port is closed, and nothing else breaks", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const server = yield* tlsServer()
      const stray = yield* dial(server.tlsPort)
      stray.write("{\"Hello\":0}\0")
      yield* Effect.orDie(readAll(stray))
      const port = yield* startTunnel(clientConfig(server.tlsPort, echo, { tls: yield* trustingCa() }))
      expect((yield* roundTrip(port, Buffer.from("after"))).toString()).toBe("after")
    }).pipe(Effect.scoped))
})

describe("certificate reload", () => {
  it.live("under load no connection is dropped, and new connections get the new certificate (reload and SIGHUP)", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spore-tls-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const files = { certFile: path.join(dir, "cert.pem"), keyFile: path.join(dir, "key.pem") }
      const install = (name: string) => {
        fs.copyFileSync(fixture(`${name}.pem`), `${files.certFile}.new`)
        fs.copyFileSync(fixture(`${name}-key.pem`), `${files.keyFile}.new`)
        // As renewals do: a whole new file put in place, never one half written.
        fs.renameSync(`${files.keyFile}.new`, files.keyFile)
        fs.renameSync(`${files.certFile}.new`, files.certFile)
      }
      install("server")
      const echo = yield* echoService
      const server = yield* tlsServer(files)
      const port = yield* startTunnel(clientConfig(server.tlsPort, echo, { tls: yield* trustingCa(), pool: 4 }))
      expect(yield* presentedFingerprint(server.tlsPort)).toBe(fingerprintOf("server.pem"))

      // Visitors in flight across both reloads: 32 at a time, 4 MiB each, all intact.
      const load = yield* Effect.fork(Effect.forEach(
        Array.from({ length: 32 }, () => randomPayload(4 * MiB)),
        (payload) => Effect.map(roundTrip(port, payload), (back) => sha256(back) === sha256(payload)),
        { concurrency: "unbounded" }
      ))
      install("renewed")
      yield* server.reloadCertificate
      expect(yield* presentedFingerprint(server.tlsPort)).toBe(fingerprintOf("renewed.pem"))
      install("server")
      process.emit("SIGHUP")
      let seen = ""
      for (let attempt = 0; attempt < 100 && seen !== fingerprintOf("server.pem"); attempt++) {
        seen = yield* presentedFingerprint(server.tlsPort)
        if (seen !== fingerprintOf("server.pem")) yield* Effect.sleep("20 millis")
      }
      expect(seen).toBe(fingerprintOf("server.pem"))
      const intact = yield* Fiber.join(load)
      expect(intact.filter((ok) => ok)).toHaveLength(32)
      // The tunnel itself never noticed.
      expect((yield* roundTrip(port, Buffer.from("still here"))).toString()).toBe("still here")
    }).pipe(Effect.scoped))

  it.live("a reload that fails keeps the old certificate", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "spore-tls-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const files = { certFile: path.join(dir, "cert.pem"), keyFile: path.join(dir, "key.pem") }
      fs.copyFileSync(SERVER.certFile, files.certFile)
      fs.copyFileSync(SERVER.keyFile, files.keyFile)
      const server = yield* tlsServer(files)
      // A certificate with a key that is not its own.
      fs.copyFileSync(fixture("other.pem"), files.certFile)
      yield* server.reloadCertificate
      expect(yield* presentedFingerprint(server.tlsPort)).toBe(fingerprintOf("server.pem"))
    }).pipe(Effect.scoped))
})

describe("a flood of stalled TLS handshakes", () => {
  it.live("does not starve honest clients: they open tunnels and every visitor is served", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const server = yield* startRunningServer({ tls: SERVER, limits: { maxHandshakes: 64 } })
      const tlsPort = Option.getOrThrow(server.tlsPort)
      // 400 connections from ten addresses, each sending the first bytes of a TLS record and
      // then nothing: the cheapest flood there is, each holding a handshake slot.
      let closedByServer = 0
      const stalled = yield* Effect.forEach(Array.from({ length: 400 }, (_, i) => i), (i) =>
        Effect.map(dial(tlsPort, LOOPBACK, `127.0.0.${2 + (i % 10)}`), (socket) => {
          socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]))
          // The test's sockets are half-open: the server's close shows as their end.
          socket.once("end", () => closedByServer++)
          socket.resume()
          socket.on("error", () => {})
          return socket
        }), { concurrency: 50 })
      const ca = yield* trustingCa()
      const tunnels = yield* Effect.forEach([0, 1, 2], () => startTunnel(clientConfig(tlsPort, echo, { tls: ca })), { concurrency: "unbounded" })
      const served = yield* Effect.forEach(
        Array.from({ length: 60 }, (_, i) => ({ port: tunnels[i % 3]!, payload: randomPayload(8 * 1024 + i) })),
        ({ payload, port }) => Effect.map(roundTrip(port, payload), (back) => sha256(back) === sha256(payload)),
        { concurrency: 20 }
      )
      expect(served.filter((ok) => ok)).toHaveLength(60)
      // Every stalled handshake is closed by the server: to make room, or at the 3 s timeout.
      for (let wait = 0; wait < 100 && closedByServer < stalled.length; wait++) yield* Effect.sleep("100 millis")
      expect(closedByServer).toBe(400)
    }).pipe(Effect.scoped))
})
