/**
 * Helpers for end-to-end tests of named HTTP tunnels (`spore server --http-addr`, `spore http`):
 * an API keys file, the real server and client processes, an undici Agent that resolves every
 * name to 127.0.0.1 (so a request carries a real `Host: NAME.spore.test:PORT`), and a local web
 * app that reports what reached it.
 */
import { createHash, randomBytes } from "node:crypto"
import type { LookupAddress } from "node:dns"
import { mkdtempSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import type * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { Agent } from "undici"
import { WebSocketServer } from "ws"
import { LOOPBACK } from "./net.js"
import { type Running, startSpore, within } from "./process.js"

export const DOMAIN = "spore.test"

/** A tunnel as the API and the status page describe it. */
export interface TunnelView {
  readonly id: string
  readonly name: string
  readonly url: string
  readonly online: boolean
  readonly connections: number
  readonly totalConnections: number
  readonly bytesIn: number
  readonly bytesOut: number
}

/** What the tunnel API answers: a tunnel, a list of them (`tunnels`), or an `error`. */
export type ApiBody = Partial<TunnelView> & { readonly tunnels?: ReadonlyArray<TunnelView>; readonly error?: string }

export interface ApiAnswer {
  readonly status: number
  readonly headers: Headers
  /** The JSON body; undefined for an empty one (204). */
  readonly body: ApiBody | undefined
}

/** A call to the HTTP front's REST API on 127.0.0.1, with `key` as the Bearer token if given. */
export const callApi = (port: number, method: string, path: string, options: { key?: string | undefined; body?: unknown } = {}) =>
  within(`${method} ${path}`, 5, Effect.promise(async (): Promise<ApiAnswer> => {
    const headers: Record<string, string> = {}
    if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`
    if (options.body !== undefined) headers["content-type"] = "application/json"
    const response = await fetch(`http://${LOOPBACK}:${port}${path}`, {
      method,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
    })
    const text = await response.text()
    return { status: response.status, headers: response.headers, body: text === "" ? undefined : JSON.parse(text) as ApiBody }
  }))

/** Two API keys, each at least 16 characters. */
export const KEY_A = "key-a-0123456789abcdef"
export const KEY_B = "key-b-fedcba9876543210"

/** A file of API keys, one a line (with a comment and a blank line, which are skipped). */
export const writeKeys = (...keys: ReadonlyArray<string>): string => {
  const path = join(mkdtempSync(join(tmpdir(), "spore-keys-")), "api-keys")
  writeFileSync(path, `# test keys\n\n${keys.join("\n")}\n`)
  return path
}

/**
 * A `lookup` for net.connect that resolves every host name to 127.0.0.1, the way a wildcard DNS
 * record would point `*.spore.test` at the server.
 */
export const loopbackLookup = (
  _hostname: string,
  options: { all?: boolean },
  callback: (error: NodeJS.ErrnoException | null, address: string | ReadonlyArray<LookupAddress>, family?: number) => void
): void => {
  if (options.all === true) callback(null, [{ address: LOOPBACK, family: 4 }])
  else callback(null, LOOPBACK, 4)
}

/**
 * An undici Agent whose connections all go to 127.0.0.1, whatever the URL's host; keep-alive
 * pooled. With `ca`, https URLs are checked against that CA (and only it).
 */
export const loopbackAgent = (options: { connections?: number; ca?: string | Buffer } = {}) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new Agent({
        connect: { lookup: loopbackLookup as never, ...(options.ca === undefined ? {} : { ca: options.ca }) },
        ...(options.connections === undefined ? {} : { connections: options.connections }),
        // Bounded: no test waits forever on a response.
        headersTimeout: 10_000,
        bodyTimeout: 10_000
      })
    ),
    (agent) => Effect.promise(() => agent.destroy())
  )

export interface HttpServer {
  readonly process: Running
  /** The port of the HTTP front on 127.0.0.1. */
  readonly port: number
  /** The port of the operator's status page, with `dashboard`. */
  readonly dashboardPort: number | undefined
  /** The HTTPS port, when `extra` asked for `--https-addr`. */
  readonly httpsPort: number | undefined
  readonly keysFile: string
}

/** `spore server` with an HTTP front on 127.0.0.1 (port 0 unless `port`), tunnels at NAME.spore.test (unless `noDomain`). */
export const startHttpServer = (options: {
  readonly keysFile: string
  readonly port?: number
  readonly dashboard?: boolean
  /** More flags (`--https-addr` and its certificate flags, say). */
  readonly extra?: ReadonlyArray<string>
  /** Without `--domain`: tunnels only at /t/NAME/, their URLs on 127.0.0.1. */
  readonly noDomain?: boolean
}) =>
  Effect.gen(function*() {
    const https = options.extra?.includes("--https-addr") === true
    const process = yield* startSpore([
      "server", "--bind-addr", LOOPBACK, "--control-port", "0", "--min-port", "38000", "--max-port", "38100",
      "--http-addr", `${LOOPBACK}:${options.port ?? 0}`, ...(options.noDomain === true ? [] : ["--domain", DOMAIN]),
      "--api-keys", options.keysFile,
      ...(options.dashboard === true ? ["--dashboard", `${LOOPBACK}:0`] : []),
      ...(options.extra ?? [])
    ])
    const port = Number((yield* within("the http front", 15, process.waitFor(/http front listening on 127\.0\.0\.1:(\d+)/)))[1])
    const httpsPort = https
      ? Number((yield* within("the https front", 15, process.waitFor(/https front listening on 127\.0\.0\.1:(\d+)/)))[1])
      : undefined
    const dashboardPort = options.dashboard === true
      ? Number((yield* within("the dashboard", 15, process.waitFor(/status page of every http tunnel at https?:\/\/127\.0\.0\.1:(\d+)\//)))[1])
      : undefined
    return { process, port, httpsPort, dashboardPort, keysFile: options.keysFile } satisfies HttpServer
  })

export interface HttpClient {
  readonly process: Running
  readonly name: string
  readonly url: string
}

/** `spore http LOCAL_PORT` to the front on 127.0.0.1:`serverPort`, once it says it is online. */
export const startHttpClient = (
  serverPort: number,
  localPort: number,
  options: {
    readonly key: string
    readonly name?: string
    readonly extra?: ReadonlyArray<string>
    /** The server's URL, if not http://127.0.0.1:serverPort. */
    readonly to?: string
  }
) =>
  Effect.gen(function*() {
    const process = yield* startSpore([
      "http", String(localPort), "--to", options.to ?? `http://${LOOPBACK}:${serverPort}`, "--token", options.key,
      "--local-host", LOOPBACK,
      ...(options.name === undefined ? [] : ["--name", options.name]),
      ...(options.extra ?? [])
    ])
    const online = yield* within("the tunnel online", 15, process.waitFor(/^(\S+) is online at (\S+)$/m))
    return { process, name: online[1]!, url: online[2]! } satisfies HttpClient
  })

/** What the local app saw of a request, as `/echo` answers it. */
export interface Echo {
  readonly method: string
  readonly url: string
  readonly host: string | undefined
  readonly forwardedFor: string | undefined
  readonly forwardedProto: string | undefined
  readonly forwardedHost: string | undefined
  readonly remotePort: number | undefined
}

export interface LocalApp {
  readonly port: number
  /** The body `/download` serves (32 MiB of random bytes, made on first use) and its SHA-256. */
  readonly download: () => { readonly bytes: Buffer; readonly sha256: string }
  /** How many chunks `/stream` has written so far. */
  readonly streamed: () => number
}

export const DOWNLOAD_BYTES = 32 * 1024 * 1024
export const STREAM_CHUNKS = 5

/** A header's value; repeated ones joined as Node joins them. */
const header = (request: http.IncomingMessage, name: string): string | undefined => {
  const value = request.headers[name]
  return Array.isArray(value) ? value.join(", ") : value
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

/**
 * The local web app behind a tunnel, a node:http server on 127.0.0.1 port 0 (anything else it
 * does not know answers the echo):
 *
 *   /page          a small HTML page with `<h1 id="app-title">`
 *   /hash          the request body's length, SHA-256 and Transfer-Encoding, as JSON
 *   /download      DOWNLOAD_BYTES random bytes, their SHA-256 in `X-Sha256`
 *   /bytes?size=N  N random bytes (the same for the same N), their SHA-256 in `X-Sha256`
 *   /stream        STREAM_CHUNKS chunks of `chunk N\n`, chunked; the last waits for `/release`
 *   /release       lets `/stream` write its last chunk
 *   /echo (WS)     a WebSocket echo server
 *   anything else  the echo: method, url and the Host and X-Forwarded-* headers, as JSON
 */
export const localApp = Effect.acquireRelease(
  Effect.async<LocalApp & { server: http.Server; wss: WebSocketServer }>((resume) => {
    let made: { readonly bytes: Buffer; readonly sha256: string } | undefined
    const download = () => {
      if (made === undefined) {
        const bytes = randomBytes(DOWNLOAD_BYTES)
        made = { bytes, sha256: sha256(bytes) }
      }
      return made
    }
    const sized = new Map<number, Buffer>()
    let streamed = 0
    let release: (() => void) | undefined
    const released = new Promise<void>((resolve) => (release = resolve))
    const json = (response: http.ServerResponse, body: unknown) => {
      const text = JSON.stringify(body)
      response.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) })
      response.end(text)
    }
    const server = http.createServer(async (request, response) => {
      const path = new URL(request.url ?? "/", "http://app").pathname
      if (path === "/page") {
        const page = `<!doctype html><html><head><title>the app</title></head><body><h1 id="app-title">Hello from the app</h1></body></html>`
        response.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Content-Length": Buffer.byteLength(page) })
        return response.end(page)
      }
      if (path === "/hash") {
        const hash = createHash("sha256")
        let length = 0
        for await (const chunk of request as AsyncIterable<Buffer>) {
          hash.update(chunk)
          length += chunk.length
        }
        return json(response, { length, sha256: hash.digest("hex"), transferEncoding: request.headers["transfer-encoding"] ?? null })
      }
      if (path === "/bytes") {
        const size = Number(new URL(request.url ?? "/", "http://app").searchParams.get("size"))
        const bytes = sized.get(size) ?? randomBytes(size)
        sized.set(size, bytes)
        response.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": bytes.length, "X-Sha256": sha256(bytes) })
        return response.end(bytes)
      }
      if (path === "/download") {
        const { bytes, sha256: digest } = download()
        response.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": bytes.length, "X-Sha256": digest })
        return response.end(bytes)
      }
      if (path === "/stream") {
        response.writeHead(200, { "Content-Type": "text/plain" })
        for (let index = 1; index < STREAM_CHUNKS; index++) {
          response.write(`chunk ${index}\n`)
          streamed = index
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        await released
        response.write(`chunk ${STREAM_CHUNKS}\n`)
        streamed = STREAM_CHUNKS
        return response.end()
      }
      if (path === "/release") {
        release?.()
        return json(response, { released: true })
      }
      json(response, {
        method: request.method ?? "",
        url: request.url ?? "",
        host: request.headers.host,
        forwardedFor: header(request, "x-forwarded-for"),
        forwardedProto: header(request, "x-forwarded-proto"),
        forwardedHost: header(request, "x-forwarded-host"),
        remotePort: request.socket.remotePort
      } satisfies Echo)
    })
    const wss = new WebSocketServer({ server, path: "/echo", maxPayload: 8 * 1024 * 1024 })
    wss.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })))
    server.listen(0, LOOPBACK, () =>
      resume(Effect.succeed({ server, wss, port: (server.address() as net.AddressInfo).port, download, streamed: () => streamed })))
  }),
  ({ server, wss }) =>
    Effect.sync(() => {
      for (const client of wss.clients) client.terminate()
      wss.close()
      server.closeAllConnections()
      server.close()
    })
)
