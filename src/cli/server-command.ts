/** `spore server`: flags, their validation, and the running server. */
import { Command, Options } from "@effect/cli"
import * as os from "node:os"
import * as path from "node:path"
import { Config, Duration, Effect, Either, Option, Redacted } from "effect"
import { DEFAULT_WEEKLY_LIMIT, LETS_ENCRYPT_DIRECTORY } from "../front/acme.js"
import type { HttpsConfig } from "../front/https.js"
import { loadApiKeys } from "../front/api-keys.js"
import { makeVisitorFilter, parseCidr } from "../visitors/visitor-filter.js"
import { DEFAULT_LIMITS, type ServerLimits } from "../limits/limits.js"
import { type ServerProgramConfig, startServer } from "./layers.js"
import { DEFAULT_TLS_CONTROL_PORT } from "./tunnel-flags.js"
import * as Logging from "./logger.js"
import { bufferOptions, checkHostPort, drainOption, logFormatOption, metricsAddrOption, checkBuffers, checkCount, checkIpAddress, checkPort, checkSeconds, checkSecret, integerOption, optionalTextOption, secretOption, textOption, UsageError } from "./options.js"

const cidrList = (name: string, text: string) =>
  Options.text(name).pipe(Options.withDescription(text), Options.repeated)

/** A limit flag: `--max-pending` defaults to DEFAULT_LIMITS.maxPending and reads SPORE_MAX_PENDING. */
const limitOption = (flag: string, limit: keyof typeof DEFAULT_LIMITS, text: string) =>
  integerOption(flag, text, { default: DEFAULT_LIMITS[limit], env: [`SPORE_${flag.toUpperCase().replaceAll("-", "_")}`] })

const limitOptions = {
  maxHandshakes: limitOption("max-handshakes", "maxHandshakes", "Connections to the control port in their handshake at once (default: a quarter of the open-file limit, 256 to 16384); past it, one silent for over a second, or else the oldest of the address holding the most, is closed to make room."),
  maxConnsPerIp: limitOption("max-conns-per-ip", "maxConnsPerIp", "Tunnel control connections allowed at once from one IP address."),
  maxTunnels: limitOption("max-tunnels", "maxTunnels", "Tunnels allowed at once, counting those held for a lost client."),
  maxPending: limitOption("max-pending", "maxPending", "Visitors of one tunnel allowed to wait for its client; more are closed at once."),
  maxConnsPerTunnel: limitOption("max-conns-per-tunnel", "maxConnsPerTunnel", "Visitors of one tunnel allowed at once, waiting or connected; more are closed at once."),
  maxHttpConnsPerIp: limitOption("max-http-conns-per-ip", "maxHttpConnsPerIp", "With --http-addr: connections to the HTTP front allowed at once from one IP address; more get a 429."),
  allowVisitor: cidrList(
    "allow-visitor",
    "Serve visitors only from this address or CIDR block (IPv4 or IPv6); repeat for more. Default: everyone."
  ),
  denyVisitor: cidrList(
    "deny-visitor",
    "Close visitors from this address or CIDR block at once; repeat for more. Wins over --allow-visitor."
  )
}

/** What the command does, in `--help`. */
export const description = "Run the public server that clients open tunnels on."

export const options = {
  minPort: integerOption("min-port", "Lowest public port a tunnel may get.", {
    default: 1024,
    env: ["SPORE_MIN_PORT", "BORE_MIN_PORT"]
  }),
  maxPort: integerOption("max-port", "Highest public port a tunnel may get.", {
    default: 65535,
    env: ["SPORE_MAX_PORT", "BORE_MAX_PORT"]
  }),
  secret: secretOption,
  bindAddr: textOption("bind-addr", "IP address the control port listens on.", {
    default: "0.0.0.0",
    env: ["SPORE_BIND_ADDR"]
  }),
  bindTunnels: optionalTextOption("bind-tunnels", "IP address the public tunnel ports listen on. Default: the --bind-addr.", {
    env: ["SPORE_BIND_TUNNELS"]
  }),
  controlPort: integerOption("control-port", "Port clients connect to (bore's is 7835; 0 picks a free one).", {
    default: 7835,
    env: ["SPORE_CONTROL_PORT"]
  }),
  tlsCert: optionalTextOption(
    "tls-cert",
    "PEM certificate (a chain allowed) for TLS from Spore clients (spore local --tls) on --tls-port; plaintext stays on --control-port for bore peers. Reloaded on SIGHUP and when the file changes.",
    { env: ["SPORE_TLS_CERT"] }
  ),
  tlsKey: optionalTextOption("tls-key", "With --tls-cert: the certificate's PEM private key.", { env: ["SPORE_TLS_KEY"] }),
  tlsPort: integerOption("tls-port", "With --tls-cert: the TLS control port (0 picks a free one).", {
    default: DEFAULT_TLS_CONTROL_PORT,
    env: ["SPORE_TLS_PORT"]
  }),
  requireTls: Options.boolean("require-tls").pipe(
    Options.withDescription("With --tls-cert: refuse plaintext on --control-port, telling each peer to use TLS. bore clients then cannot connect.")
  ),
  leaseSeconds: integerOption(
    "lease-seconds",
    "How long a Spore client's port stays reserved for it after its connection is lost.",
    { default: 30, env: ["SPORE_LEASE_SECONDS"] }
  ),
  drainSeconds: drainOption,
  metricsAddr: metricsAddrOption,
  httpAddr: optionalTextOption(
    "http-addr",
    "Serve named HTTP tunnels (spore http), their API and status page on HOST:PORT, e.g. 0.0.0.0:80. Default: off.",
    { env: ["SPORE_HTTP_ADDR"] }
  ),
  domain: optionalTextOption(
    "domain",
    "With --http-addr: serve tunnel NAME at http://NAME.DOMAIN (a wildcard DNS name pointing here). Always at /t/NAME/.",
    { env: ["SPORE_DOMAIN"] }
  ),
  apiKeys: optionalTextOption(
    "api-keys",
    "With --http-addr (required there): a file of API keys, one per line, that may create HTTP tunnels.",
    { env: ["SPORE_API_KEYS"] }
  ),
  httpsAddr: optionalTextOption(
    "https-addr",
    "With --http-addr: also serve the front over TLS on HOST:PORT, e.g. 0.0.0.0:443, with --tls-cert (a wildcard for *.DOMAIN) or --acme-email; plain http then redirects there.",
    { env: ["SPORE_HTTPS_ADDR"] }
  ),
  acmeEmail: optionalTextOption(
    "acme-email",
    "With --https-addr and --domain: get a certificate for DOMAIN and for each tunnel's NAME.DOMAIN over ACME (HTTP-01, answered on --http-addr, which must be reachable on port 80), as this contact.",
    { env: ["SPORE_ACME_EMAIL"] }
  ),
  acmeDirectory: textOption("acme-directory", "With --acme-email: the ACME directory's URL (Let's Encrypt's staging one for trials).", {
    default: LETS_ENCRYPT_DIRECTORY,
    env: ["SPORE_ACME_DIRECTORY"]
  }),
  acmeCa: optionalTextOption("acme-ca", "With --acme-email: the PEM CA of a private ACME directory (step-ca, pebble). Default: the system's.", {
    env: ["SPORE_ACME_CA"]
  }),
  acmeWeeklyLimit: integerOption(
    "acme-weekly-limit",
    "With --acme-email: certificates for new names asked for in any 7 days, at most (renewals not counted; Let's Encrypt allows 50 a week per domain).",
    { default: DEFAULT_WEEKLY_LIMIT, env: ["SPORE_ACME_WEEKLY_LIMIT"] }
  ),
  stateDir: optionalTextOption(
    "state-dir",
    "With --acme-email: where the ACME account and certificates are kept across restarts. Default: $STATE_DIRECTORY (systemd's StateDirectory=), else ~/.local/state/spore.",
    { env: ["SPORE_STATE_DIR"] }
  ),
  dashboard: optionalTextOption(
    "dashboard",
    "With --http-addr: serve a status page of every HTTP tunnel, without a key, on HOST:PORT (keep it private, e.g. 127.0.0.1:4040).",
    { env: ["SPORE_DASHBOARD"] }
  ),
  trustedProxy: cidrList(
    "trusted-proxy",
    "With --http-addr: a load balancer's address or CIDR block whose connections may name their client (PROXY header or X-Forwarded-For); repeat for more. Default: nobody is believed."
  ),
  cluster: optionalTextOption(
    "cluster",
    "With --http-addr: serve HTTP tunnels as a node of the cluster whose names are in this Redis, redis://[:PASSWORD@]HOST:PORT[/DB]; needs --node-addr and the nodes' shared SPORE_CLUSTER_SECRET.",
    { env: ["SPORE_CLUSTER"] }
  ),
  nodeAddr: optionalTextOption(
    "node-addr",
    "With --cluster: the IP:PORT this node listens on for the other nodes, which reach it there (keep it on a private network).",
    { env: ["SPORE_NODE_ADDR"] }
  ),
  logFormat: logFormatOption,
  ...bufferOptions,
  ...limitOptions
}

type Flags = Command.Command.ParseConfig<typeof options>

const checkCidrs = (name: string, texts: ReadonlyArray<string>) =>
  Effect.forEach(texts, (text) =>
    Either.match(parseCidr(text), {
      onLeft: (problem) => Effect.fail(new UsageError({ message: `--${name}: ${problem}` })),
      onRight: Effect.succeed
    }))

const checkLimits = (flags: Flags): Effect.Effect<ServerLimits, UsageError> =>
  Effect.gen(function*() {
    return {
      maxHandshakes: yield* checkCount("max-handshakes", flags.maxHandshakes),
      maxConnsPerIp: yield* checkCount("max-conns-per-ip", flags.maxConnsPerIp),
      maxTunnels: yield* checkCount("max-tunnels", flags.maxTunnels),
      maxPending: yield* checkCount("max-pending", flags.maxPending),
      maxConnsPerTunnel: yield* checkCount("max-conns-per-tunnel", flags.maxConnsPerTunnel),
      maxHttpConnsPerIp: yield* checkCount("max-http-conns-per-ip", flags.maxHttpConnsPerIp),
      visitors: makeVisitorFilter(
        yield* checkCidrs("allow-visitor", flags.allowVisitor),
        yield* checkCidrs("deny-visitor", flags.denyVisitor)
      )
    }
  })

const toConfig = (flags: Flags): Effect.Effect<ServerProgramConfig, UsageError> =>
  Effect.gen(function*() {
    const minPort = yield* checkPort("min-port", flags.minPort, { allowZero: false })
    const maxPort = yield* checkPort("max-port", flags.maxPort, { allowZero: false })
    if (minPort > maxPort) return yield* new UsageError({ message: "port range is empty (--min-port is above --max-port)" })
    const bindAddr = yield* checkIpAddress("bind-addr", flags.bindAddr)
    const bindTunnels = yield* checkIpAddress("bind-tunnels", Option.getOrElse(flags.bindTunnels, () => bindAddr))
    const limits = yield* checkLimits(flags)
    return {
      minPort,
      maxPort,
      secret: yield* checkSecret(flags.secret),
      bindAddr,
      bindTunnels,
      controlPort: yield* checkPort("control-port", flags.controlPort, { allowZero: true }),
      lease: Duration.seconds(yield* checkSeconds("lease-seconds", flags.leaseSeconds, { min: 0 })),
      buffers: yield* checkBuffers(flags),
      limits,
      drain: Duration.seconds(yield* checkSeconds("drain-seconds", flags.drainSeconds, { min: 0 })),
      metricsAddr: yield* Effect.transposeMapOption(flags.metricsAddr, (text) => checkHostPort("metrics-addr", text)),
      tls: yield* checkTls(flags),
      http: yield* checkHttpFront(flags, limits),
      cluster: yield* checkCluster(flags)
    }
  })

/** The shortest cluster secret accepted: nodes trust each other's word about visitors on it. */
const MIN_CLUSTER_SECRET = 16

const checkCluster = (flags: Flags): Effect.Effect<ServerProgramConfig["cluster"], UsageError> =>
  Effect.gen(function*() {
    if (Option.isNone(flags.cluster)) {
      if (Option.isSome(flags.nodeAddr)) return yield* usage("--node-addr needs --cluster")
      return Option.none()
    }
    const url = flags.cluster.value
    if (!/^rediss?:\/\/[^/\s]+(\/\d+)?$/.test(url)) return yield* usage(`--cluster must be a Redis URL like redis://10.0.0.5:6379, not ${url}`)
    if (Option.isNone(flags.httpAddr)) return yield* usage("--cluster needs --http-addr: a cluster serves HTTP tunnels (TCP tunnels stay per server)")
    if (Option.isSome(flags.acmeEmail)) {
      return yield* usage("--acme-email does not work in a cluster (each node would answer other nodes' challenges): give every node the same --tls-cert, a wildcard for *.DOMAIN")
    }
    if (Option.isNone(flags.nodeAddr)) return yield* usage("--cluster needs --node-addr IP:PORT: where the other nodes reach this one")
    const nodeAddress = yield* checkHostPort("node-addr", flags.nodeAddr.value)
    if (nodeAddress.host === "0.0.0.0" || nodeAddress.host === "::") {
      return yield* usage(`--node-addr must be the address other nodes reach this one at, not ${nodeAddress.host}`)
    }
    const secret = yield* Config.option(Config.redacted("SPORE_CLUSTER_SECRET")).pipe(Effect.orElseSucceed(() => Option.none()))
    if (Option.isNone(secret) || Redacted.value(secret.value).length < MIN_CLUSTER_SECRET) {
      return yield* usage(`--cluster needs SPORE_CLUSTER_SECRET in the environment: the same secret of at least ${MIN_CLUSTER_SECRET} characters on every node`)
    }
    return Option.some({ url, nodeAddress, secret: secret.value })
  })

const checkTls = (flags: Flags): Effect.Effect<ServerProgramConfig["tls"], UsageError> =>
  Effect.gen(function*() {
    if (Option.isNone(flags.tlsCert)) {
      if (Option.isSome(flags.tlsKey)) return yield* new UsageError({ message: "--tls-key needs --tls-cert" })
      if (flags.requireTls) return yield* new UsageError({ message: "--require-tls needs --tls-cert and --tls-key" })
      return Option.none()
    }
    if (Option.isNone(flags.tlsKey)) return yield* new UsageError({ message: "--tls-cert needs --tls-key: the certificate's private key" })
    const port = yield* checkPort("tls-port", flags.tlsPort, { allowZero: true })
    if (port !== 0 && port === flags.controlPort) return yield* new UsageError({ message: "--tls-port must differ from --control-port (plaintext and TLS are separate ports)" })
    return Option.some({ certFile: flags.tlsCert.value, keyFile: flags.tlsKey.value, port, require: flags.requireTls })
  })

/** A DNS name of one or more labels (no wildcard, no trailing dot), lowercased. */
const checkDomain = (text: string) => {
  const domain = text.toLowerCase()
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/
  return domain.length <= 253 && domain.split(".").every((part) => label.test(part))
    ? Effect.succeed(domain)
    : Effect.fail(new UsageError({ message: `--domain must be a DNS name such as tunnel.example.com, not ${text}` }))
}

const checkHttpFront = (flags: Flags, limits: ServerLimits): Effect.Effect<ServerProgramConfig["http"], UsageError> =>
  Effect.gen(function*() {
    const trustedProxies = yield* checkCidrs("trusted-proxy", flags.trustedProxy)
    if (Option.isNone(flags.httpAddr)) {
      const stray = (["domain", "apiKeys", "dashboard", "httpsAddr", "acmeEmail"] as const).find((name) => Option.isSome(flags[name]))
      if (stray === undefined && trustedProxies.length > 0) return yield* new UsageError({ message: "--trusted-proxy needs --http-addr" })
      if (stray === undefined) return Option.none()
      const flag = { domain: "domain", apiKeys: "api-keys", dashboard: "dashboard", httpsAddr: "https-addr", acmeEmail: "acme-email" }[stray]
      return yield* new UsageError({ message: `--${flag} needs --http-addr` })
    }
    const address = yield* checkHostPort("http-addr", flags.httpAddr.value)
    if (Option.isNone(flags.apiKeys)) {
      return yield* new UsageError({ message: "--http-addr needs --api-keys FILE: the keys that may create tunnels" })
    }
    const keys = loadApiKeys(flags.apiKeys.value)
    if (Either.isLeft(keys)) return yield* new UsageError({ message: `--api-keys: ${keys.left}` })
    const domain = yield* Effect.transposeMapOption(flags.domain, checkDomain)
    return Option.some({
      ...address,
      domain,
      https: yield* checkHttps(flags, domain),
      keys: keys.right,
      dashboard: yield* Effect.transposeMapOption(flags.dashboard, (text) => checkHostPort("dashboard", text)),
      trustedProxies,
      limits
    })
  })

const usage = (message: string) => Effect.fail(new UsageError({ message }))

/** Where systemd's StateDirectory= puts it, else the XDG state home. */
const defaultStateDir = () =>
  process.env.STATE_DIRECTORY?.split(":")[0] ??
    path.join(process.env.XDG_STATE_HOME ?? path.join(os.homedir(), ".local", "state"), "spore")

const checkHttps = (flags: Flags, domain: Option.Option<string>): Effect.Effect<Option.Option<HttpsConfig>, UsageError> =>
  Effect.gen(function*() {
    if (Option.isNone(flags.httpsAddr)) {
      if (Option.isSome(flags.acmeEmail)) return yield* usage("--acme-email needs --https-addr: the certificates are for the HTTPS front")
      return Option.none()
    }
    const address = yield* checkHostPort("https-addr", flags.httpsAddr.value)
    if (Option.isNone(flags.acmeEmail)) {
      if (Option.isNone(flags.tlsCert)) {
        return yield* usage("--https-addr needs a certificate: --tls-cert and --tls-key (e.g. a wildcard for *.DOMAIN), or --acme-email to get one for each name")
      }
      if (Option.isSome(flags.acmeCa)) return yield* usage("--acme-ca needs --acme-email")
      return Option.some({ ...address, acme: Option.none() })
    }
    if (Option.isNone(domain)) {
      return yield* usage("--acme-email needs --domain: certificates are asked for DOMAIN and NAME.DOMAIN (ACME cannot certify an address)")
    }
    const email = flags.acmeEmail.value
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) return yield* usage(`--acme-email must be an e-mail address, not ${email}`)
    let directory: URL | undefined
    try {
      directory = new URL(flags.acmeDirectory)
    } catch {
      directory = undefined
    }
    if (directory?.protocol !== "https:") return yield* usage(`--acme-directory must be an https:// URL, not ${flags.acmeDirectory}`)
    return Option.some({
      ...address,
      acme: Option.some({
        email,
        directoryUrl: directory.href,
        caFile: flags.acmeCa,
        stateDir: Option.getOrElse(flags.stateDir, defaultStateDir),
        weeklyLimit: yield* checkCount("acme-weekly-limit", flags.acmeWeeklyLimit)
      })
    })
  })

export const serverCommand = Command.make("server", options, (flags) =>
  Logging.withLogFormat(flags.logFormat, () =>
    Effect.gen(function*() {
      const config = yield* toConfig(flags)
      yield* startServer(config)
      return yield* Effect.never
    }).pipe(Effect.scoped))).pipe(
    Command.withDescription(description)
  )
