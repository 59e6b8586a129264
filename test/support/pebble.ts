/**
 * Debian's `pebble` ACME test server (RFC 8555) for end-to-end tests of certificate issuance,
 * with real HTTP-01 validation: pebble resolves every name through a `pebble-challtestsrv` DNS
 * server that answers 127.0.0.1 (and no AAAA), and fetches the challenge from
 * 127.0.0.1:httpPort, the port the server under test serves plain HTTP on.
 *
 * Pebble's own HTTPS listeners use the test certificate for localhost and 127.0.0.1
 * (test/fixtures/tls/server.pem), so a client trusts them with test/fixtures/tls/ca.pem. The CA
 * that signs the certificates pebble issues is generated anew at every start: a test that
 * restarts the server under test must keep the same pebble running.
 *
 * scripts/test-setup.sh installs pebble; tests skip with `describe.skipIf(!hasPebble())`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { Resolver } from "node:dns/promises"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import * as https from "node:https"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { tlsFixture } from "./tls.js"

const PEBBLE = "/usr/bin/pebble"
const CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"
/** Run under it when present, so that pebble dies with the test process however that ends. */
const SETPRIV = "/usr/bin/setpriv"
const HOST = "127.0.0.1"
/** How long pebble and its DNS server may take to answer after being started. */
const START_TIMEOUT_MS = 10_000
const POLL_INTERVAL_MS = 25

export const hasPebble = () => existsSync(PEBBLE) && existsSync(CHALLTESTSRV)

export interface Pebble {
  /** The ACME directory, https://127.0.0.1:PORT/dir. */
  readonly directoryUrl: string
  /** The CA that signed pebble's own HTTPS listener certificate: what an ACME client must trust to talk to it. */
  readonly directoryCaFile: string
  /** The root that the certificates pebble issues chain to (this start's: a new one every start). */
  readonly issuerRootPem: () => Promise<string>
  /** How many certificates pebble has issued so far. */
  readonly issuedCount: () => number
  /** Everything pebble and its DNS server printed so far, for a failing test's log. */
  readonly logs: () => string
  readonly stop: () => Promise<void>
}

export interface PebbleOptions {
  /** The port on 127.0.0.1 that HTTP-01 validation connects to, for every name. */
  readonly httpPort: number
  /** The validity of the certificates pebble issues, in seconds (pebble's default: 5 years). */
  readonly certificateValiditySeconds?: number
  /**
   * The percentage of new orders that reuse a valid authorization of the same account and name
   * instead of validating again (PEBBLE_AUTHZREUSE; pebble's default is a random 50 %, this
   * helper's 0: every order is validated).
   */
  readonly authzReusePercent?: number
}

interface Child {
  readonly name: string
  readonly child: ChildProcess
  readonly output: () => string
  /** Set once the process has exited. */
  readonly exit: () => string | undefined
  readonly closed: Promise<void>
}

const running = new Set<ChildProcess>()
let exitHookInstalled = false
const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL")
  })
}

const run = (name: string, file: string, args: ReadonlyArray<string>, env: Record<string, string>): Child => {
  installExitHook()
  const [command, commandArgs] = existsSync(SETPRIV)
    ? [SETPRIV, ["--pdeathsig", "SIGKILL", "--", file, ...args]]
    : [file, [...args]]
  const child = spawn(command, commandArgs, { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] })
  running.add(child)
  let output = ""
  let exit: string | undefined
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const closed = new Promise<void>((resolve) => {
    child.once("error", (error) => {
      exit ??= `could not start: ${error.message}`
      running.delete(child)
      resolve()
    })
    child.once("close", (code, signal) => {
      exit ??= signal === null ? `exited with code ${code}` : `killed by ${signal}`
      running.delete(child)
      resolve()
    })
  })
  return { name, child, output: () => output, exit: () => exit, closed }
}

const kill = async (child: Child) => {
  if (child.exit() === undefined) child.child.kill("SIGKILL")
  await child.closed
}

/** A port on 127.0.0.1 that nothing listens on right now. */
const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** GETs an https URL of pebble's, trusting its listener's CA; the status and the body. */
const httpsGet = (url: string, ca: string, timeoutMs: number) =>
  new Promise<{ readonly status: number; readonly body: string }>((resolve, reject) => {
    const request = https.get(url, { ca, timeout: timeoutMs, agent: false }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }))
      response.on("error", reject)
    })
    request.on("timeout", () => request.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)))
    request.on("error", reject)
  })

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const describeChildren = (children: ReadonlyArray<Child>) =>
  children.map((c) => `--- ${c.name} (${c.exit() ?? "running"}):\n${c.output()}`).join("\n")

/**
 * Polls `ready` until it resolves true, failing when a process exits or the deadline passes,
 * with what the processes printed.
 */
const waitUntil = async (what: string, children: ReadonlyArray<Child>, deadline: number, ready: () => Promise<boolean>) => {
  let lastError = ""
  for (;;) {
    const exited = children.find((c) => c.exit() !== undefined)
    if (exited !== undefined) throw new Error(`${exited.name} ${exited.exit()} before ${what}\n${describeChildren(children)}`)
    try {
      if (await ready()) return
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error)
    }
    if (Date.now() > deadline) {
      throw new Error(`not within ${START_TIMEOUT_MS} ms: ${what} (last error: ${lastError})\n${describeChildren(children)}`)
    }
    await delay(POLL_INTERVAL_MS)
  }
}

const startOnce = async (options: PebbleOptions): Promise<Pebble> => {
  const [dnsPort, dnsManagementPort, acmePort, managementPort, tlsPort] = await Promise.all(
    Array.from({ length: 5 }, freePort)
  )
  const directoryCaFile = tlsFixture("ca.pem")
  const ca = readFileSync(directoryCaFile, "utf8")
  const dir = mkdtempSync(join(tmpdir(), "spore-pebble-"))
  const configFile = join(dir, "pebble-config.json")
  writeFileSync(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `${HOST}:${acmePort}`,
        managementListenAddress: `${HOST}:${managementPort}`,
        certificate: tlsFixture("server.pem"),
        privateKey: tlsFixture("server-key.pem"),
        httpPort: options.httpPort,
        // TLS-ALPN-01 validation would connect here; nothing listens.
        tlsPort,
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        ...(options.certificateValiditySeconds === undefined
          ? {}
          : { certificateValidityPeriod: options.certificateValiditySeconds })
      }
    })
  )
  const dns = run("pebble-challtestsrv", CHALLTESTSRV, [
    "-defaultIPv4",
    HOST,
    "-defaultIPv6",
    "",
    "-dns01",
    `${HOST}:${dnsPort}`,
    "-http01",
    "",
    "-https01",
    "",
    "-tlsalpn01",
    "",
    // It cannot be turned off ("" would mean port 80 on every address).
    "-management",
    `${HOST}:${dnsManagementPort}`
  ], {})
  const pebble = run("pebble", PEBBLE, ["-config", configFile, "-dnsserver", `${HOST}:${dnsPort}`, "-strict=false"], {
    PEBBLE_VA_NOSLEEP: "1",
    PEBBLE_WFE_NONCEREJECT: "0",
    PEBBLE_AUTHZREUSE: String(options.authzReusePercent ?? 0)
  })
  const children = [dns, pebble]
  const removeConfig = () => rmSync(dir, { recursive: true, force: true })
  let stopped: Promise<void> | undefined
  const stop = () => (stopped ??= Promise.all(children.map(kill)).then(removeConfig))
  const directoryUrl = `https://${HOST}:${acmePort}/dir`
  try {
    const deadline = Date.now() + START_TIMEOUT_MS
    const resolver = new Resolver({ timeout: 200, tries: 1 })
    resolver.setServers([`${HOST}:${dnsPort}`])
    await Promise.all([
      waitUntil("its DNS server answered", children, deadline, async () =>
        (await resolver.resolve4("ready.spore.test")).includes(HOST)),
      waitUntil(`${directoryUrl} answered`, children, deadline, async () =>
        (await httpsGet(directoryUrl, ca, 1000)).status === 200)
    ])
  } catch (error) {
    await stop()
    throw error
  }
  // Pebble has read its configuration: nothing is left behind should the test process be killed.
  removeConfig()
  let root: Promise<string> | undefined
  const issuerRootPem = () =>
    (root ??= httpsGet(`https://${HOST}:${managementPort}/roots/0`, ca, 5000).then(({ body, status }) => {
      if (status !== 200) throw new Error(`pebble's /roots/0 answered ${status}: ${body}`)
      return body
    }).catch((error: unknown) => {
      root = undefined
      throw error
    }))
  return {
    directoryUrl,
    directoryCaFile,
    issuerRootPem,
    // Pebble logs "Issued certificate serial SERIAL for order ORDER" once per certificate.
    issuedCount: () => pebble.output().match(/Issued certificate serial /g)?.length ?? 0,
    logs: () => describeChildren(children),
    stop
  }
}

/**
 * Starts pebble-challtestsrv and pebble on free ports of 127.0.0.1 and waits until both answer.
 * A free port taken in between (by another test) makes a start fail; it is tried again then.
 */
export const startPebble = async (options: PebbleOptions): Promise<Pebble> => {
  for (let attempt = 1;; attempt++) {
    try {
      return await startOnce(options)
    } catch (error) {
      if (attempt >= 3 || !(error instanceof Error && /address already in use/.test(error.message))) throw error
    }
  }
}
