/**
 * HTTPS on the front (`--https-addr`): which certificate a visitor's handshake gets, and what the
 * plain port says once HTTPS is on.
 *
 * The certificate is chosen by the name the visitor asks for (SNI): an ACME certificate for that
 * name when `--acme-email` is set and the name is the front's (acme.ts decides which are), else
 * the operator's `--tls-cert` (typically `*.DOMAIN`). A handshake with no name, or a name that
 * neither covers, gets the operator's certificate, or fails when there is none: there is nothing
 * honest to show it.
 *
 * With HTTPS on, the plain port answers ACME's HTTP-01 challenges and redirects every other
 * request to the same URL over https (308, which keeps the method and body).
 */
import type * as net from "node:net"
import type * as tls from "node:tls"
import { Effect, FiberSet, Option, type Scope } from "effect"
import type { AcmeError, StateDirError } from "../errors.js"
import type { CertificateStore } from "../net/certificate-store.js"
import { secureServerSocket } from "../net/tls.js"
import { type AcmeConfig, makeAcmeCertificates } from "./acme.js"
import type { RequestHead } from "./http-request.js"

export interface HttpsConfig {
  readonly host: string
  readonly port: number
  /** Certificates from an ACME directory; without it, the operator's certificate serves every name. */
  readonly acme: Option.Option<AcmeConfig>
}

export interface FrontTls {
  /** Wraps an accepted socket as the server side of TLS, its certificate chosen by SNI. */
  readonly secure: (socket: net.Socket) => tls.TLSSocket
  /** The answer to an ACME HTTP-01 challenge request on the plain port, if it is one of ours. */
  readonly challengeResponse: (head: RequestHead) => Option.Option<Uint8Array>
}

const CHALLENGE_PATH = "/.well-known/acme-challenge/"

export const isChallengeRequest = (head: RequestHead) => head.target.startsWith(CHALLENGE_PATH)

export const makeFrontTls = (
  config: HttpsConfig,
  operator: Option.Option<CertificateStore>,
  isEligible: (name: string) => boolean
): Effect.Effect<FrontTls, AcmeError | StateDirError, Scope.Scope> =>
  Effect.gen(function*() {
    const defaultContext = () => Option.map(operator, (store) => store.current())
    if (Option.isNone(config.acme)) {
      return {
        secure: (socket) => secureServerSocket(socket, { context: Option.getOrUndefined(defaultContext()) }),
        challengeResponse: () => Option.none()
      }
    }
    const certificates = yield* makeAcmeCertificates(config.acme.value, isEligible)
    // Handshakes that wait for an order are fibers of the front, interrupted when it closes.
    const run = yield* FiberSet.makeRuntime<never>()
    const SNICallback = (servername: string, callback: (error: Error | null, context?: tls.SecureContext) => void) =>
      void run(Effect.map(certificates.contextFor(servername.toLowerCase()), (context) =>
        callback(null, Option.getOrUndefined(Option.orElse(context, defaultContext)))))
    return {
      secure: (socket) => secureServerSocket(socket, { context: Option.getOrUndefined(defaultContext()), SNICallback }),
      challengeResponse: (head) => {
        if (!isChallengeRequest(head)) return Option.none()
        const token = head.target.slice(CHALLENGE_PATH.length)
        return Option.some(Option.match(certificates.challengeResponse(token), {
          onNone: () => plainResponse(404, "Not Found", "no such challenge\n"),
          onSome: (keyAuthorization) => plainResponse(200, "OK", keyAuthorization)
        }))
      }
    }
  })

const plainResponse = (status: number, reason: string, body: string) => {
  const bytes = Buffer.from(body, "utf8")
  return Buffer.concat([
    Buffer.from(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${bytes.length}\r\n` +
        "Connection: close\r\nCache-Control: no-store\r\n\r\n",
      "latin1"
    ),
    bytes
  ])
}

/**
 * The redirect of a plain request to https: same host name, the HTTPS port (left out when it is
 * 443), same target. A request without a Host cannot be redirected anywhere sensible: 400.
 */
export const redirectToHttps = (head: RequestHead, httpsPort: number): Uint8Array => {
  const hostname = head.host === undefined ? undefined : /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d*)?$/.exec(head.host)?.[1]
  if (hostname === undefined || hostname === "") return plainResponse(400, "Bad Request", "a Host header is needed to redirect to https\n")
  const location = `https://${hostname}${httpsPort === 443 ? "" : `:${httpsPort}`}${head.target.startsWith("/") ? head.target : "/"}`
  return Buffer.from(
    `HTTP/1.1 308 Permanent Redirect\r\nLocation: ${location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    "latin1"
  )
}
