/**
 * TLS over the sockets Spore already has: a TCP socket is accepted or connected (and tuned) as
 * always, then wrapped. Wrapping rather than `tls.createServer` keeps one accept path for plain
 * and TLS connections, so admission, bans, `--sndbuf/--recbuf` and metrics see a TLS connection
 * from its first packet, and a stalled TLS handshake holds a handshake slot like any other.
 * (The TLS socket takes over the TCP handle, and keeps its descriptor: socket options still apply.)
 */
import { X509Certificate } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"
import { Effect, Either, Option, type Scope } from "effect"
import { ConnectError, TlsConfigError, TlsVerifyError } from "../errors.js"
import { NETWORK_TIMEOUT } from "./socket.js"

/** What the server's certificate says, as the server logs it and a client may pin it. */
export interface CertificateInfo {
  /** The DNS names and IP addresses it is for (its subjectAltName, else its CN). */
  readonly names: ReadonlyArray<string>
  readonly validFrom: Date
  readonly validTo: Date
  /** SHA-256 of the DER certificate, `AB:CD:...` (what `--tls-fingerprint` takes). */
  readonly fingerprint: string
}

/** The leaf (first) certificate of a PEM chain, described. */
export const describeCertificate = (pem: Buffer | string): CertificateInfo => {
  const cert = new X509Certificate(pem)
  const alt = (cert.subjectAltName ?? "").split(", ").filter((entry) => entry !== "")
    .map((entry) => entry.replace(/^(DNS|IP Address):/, ""))
  const cn = /CN=([^\n]+)/.exec(cert.subject)?.[1]
  return {
    names: alt.length > 0 ? alt : cn !== undefined ? [cn] : [],
    validFrom: new Date(cert.validFrom),
    validTo: new Date(cert.validTo),
    fingerprint: cert.fingerprint256
  }
}

export const describeLine = (info: CertificateInfo) =>
  `certificate for ${info.names.join(", ") || "(no names)"}, valid until ${info.validTo.toISOString()}, SHA-256 ${info.fingerprint}`

const readFile = (path: string) =>
  Effect.try({
    try: () => fs.readFileSync(path),
    catch: (error) => new TlsConfigError({ path, reason: (error as NodeJS.ErrnoException).code ?? String(error) })
  })

/** A server's certificate and key read from PEM files, ready for new connections. */
export interface ServerCertificate {
  readonly context: tls.SecureContext
  readonly info: CertificateInfo
}

/** Reads `certFile` (a chain allowed) and `keyFile`; fails if they do not make a pair. */
export const loadServerCertificate = (certFile: string, keyFile: string): Effect.Effect<ServerCertificate, TlsConfigError> =>
  Effect.gen(function*() {
    const cert = yield* readFile(certFile)
    const key = yield* readFile(keyFile)
    const info = yield* Effect.try({
      try: () => describeCertificate(cert),
      catch: () => new TlsConfigError({ path: certFile, reason: "not a PEM certificate" })
    })
    const context = yield* Effect.try({
      try: () => tls.createSecureContext({ cert, key }),
      catch: (error) => new TlsConfigError({ path: keyFile, reason: `does not go with ${certFile}: ${(error as Error).message}` })
    })
    return { context, info }
  })

/**
 * Wraps an accepted socket as the server side of TLS; the handshake runs as it is read. The
 * certificate is `context`, or what `SNICallback` picks for the name the client asks for.
 */
export const secureServerSocket = (
  socket: net.Socket,
  options: {
    readonly context: tls.SecureContext | undefined
    readonly SNICallback?: tls.TlsOptions["SNICallback"]
  }
): tls.TLSSocket => {
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    ...(options.context !== undefined ? { secureContext: options.context } : {}),
    ...(options.SNICallback !== undefined ? { SNICallback: options.SNICallback } : {})
  })
  // A failed handshake (a plaintext peer, a scanner) errors the socket before anyone reads it.
  secure.on("error", () => {})
  return secure
}

/** How a client checks the server: by CAs and name, or by a pinned certificate. */
export interface ClientTls {
  /** The CAs to trust (the system's, or `--tls-ca`), built once for every connection. */
  readonly context: tls.SecureContext
  /** The name to ask for (SNI) and check; default: `--to` when it is a name. */
  readonly servername: Option.Option<string>
  /** When set, the server's certificate must have this SHA-256 (and no CA is consulted). */
  readonly fingerprint: Option.Option<string>
}

/** Where Debian, Ubuntu, Alpine (the first) and Fedora, RHEL (the second) keep the system's CAs. */
const SYSTEM_CA_FILES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]

/** The system's CAs with Node's own, or only those of `caFile` when one is given. */
export const makeClientTls = (options: {
  readonly caFile: Option.Option<string>
  readonly servername: Option.Option<string>
  readonly fingerprint: Option.Option<string>
}): Effect.Effect<ClientTls, TlsConfigError> =>
  Effect.gen(function*() {
    const ca = Option.isSome(options.caFile)
      ? [yield* readFile(options.caFile.value)]
      : [...tls.rootCertificates, ...SYSTEM_CA_FILES.filter((path) => fs.existsSync(path)).map((path) => fs.readFileSync(path))]
    const context = yield* Effect.try({
      try: () => tls.createSecureContext({ ca }),
      catch: (error) => new TlsConfigError({ path: Option.getOrElse(options.caFile, () => "the system's CAs"), reason: (error as Error).message })
    })
    return { context, servername: options.servername, fingerprint: options.fingerprint }
  })

/**
 * A SHA-256 fingerprint as Node prints it (`AB:CD:...`), from what a user pastes: the server's
 * log line, `openssl x509 -fingerprint -sha256` (`sha256 Fingerprint=AB:CD:...`), or bare hex.
 */
export const parseFingerprint = (text: string): Either.Either<string, string> => {
  const hex = text.trim().replace(/^(sha256\s*fingerprint=|sha-?256:?)/i, "").replaceAll(":", "").toUpperCase()
  return /^[0-9A-F]{64}$/.test(hex)
    ? Either.right(hex.match(/../g)!.join(":"))
    : Either.left(`--tls-fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed), not ${text}`)
}

/** Whether a connection's error code is a certificate that did not pass its check (not a network failure). */
export const isCertificateRejection = (code: string | undefined) =>
  code !== undefined && /^(ERR_TLS_CERT_ALTNAME_INVALID|CERT_|UNABLE_TO_|SELF_SIGNED|DEPTH_ZERO_SELF_SIGNED)/.test(code)

/** OpenSSL's code for a failed check, with what to do about it. */
export const explainVerifyError = (code: string) => {
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") return `its certificate is not for this name (${code}): give the name it is for with --tls-servername`
  if (code === "CERT_HAS_EXPIRED") return `its certificate has expired (${code})`
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `its certificate is not signed by a CA we trust (${code}): give its CA with --tls-ca FILE, or pin it with --tls-fingerprint`
  }
  return code
}

/**
 * Runs the client side of TLS on a connected socket to `host`, within NETWORK_TIMEOUT; the TLS
 * socket is destroyed when the scope closes. A server
 * that cannot prove itself (wrong name, unknown CA, another certificate than the pinned one) is a
 * TlsVerifyError, which no retry can mend; a handshake cut short is a ConnectError, like a refused
 * connect. Never falls back to plaintext.
 */
export const secureClientSocket = (
  socket: net.Socket,
  host: string,
  port: number,
  options: ClientTls
): Effect.Effect<tls.TLSSocket, ConnectError | TlsVerifyError, Scope.Scope> =>
  Effect.async<tls.TLSSocket, ConnectError | TlsVerifyError>((resume) => {
    const servername = Option.getOrElse(options.servername, () => net.isIP(host) !== 0 ? undefined : host)
    const secure = tls.connect({
      socket,
      host: Option.getOrElse(options.servername, () => host),
      ...(servername !== undefined ? { servername } : {}),
      secureContext: options.context,
      // Checked below, so that a bad certificate is told apart from a network failure.
      rejectUnauthorized: false
    })
    const onError = (error: NodeJS.ErrnoException) => {
      secure.destroy()
      resume(Effect.fail(new ConnectError({ host, port, reason: `TLS handshake failed: ${error.code ?? error.message}` })))
    }
    secure.once("error", onError)
    secure.once("secureConnect", () => {
      secure.off("error", onError)
      secure.on("error", () => {})
      const presented = secure.getPeerCertificate().fingerprint256
      const problem = Option.isSome(options.fingerprint)
        ? presented === options.fingerprint.value
          ? undefined
          : `its certificate is ${presented}, not the pinned ${options.fingerprint.value}`
        : secure.authorized
        ? undefined
        : explainVerifyError(String(secure.authorizationError))
      if (problem === undefined) return resume(Effect.succeed(secure))
      secure.destroy()
      resume(Effect.fail(new TlsVerifyError({ host, reason: problem })))
    })
    return Effect.sync(() => secure.destroy())
  }).pipe(
    Effect.timeoutFail({ duration: NETWORK_TIMEOUT, onTimeout: () => new ConnectError({ host, port, reason: "TLS handshake timed out" }) }),
    // Like the TCP socket under it, the TLS socket lives as long as the scope.
    Effect.tap((secure) => Effect.addFinalizer(() => Effect.sync(() => secure.destroy())))
  )
