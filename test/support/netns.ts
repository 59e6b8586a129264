/**
 * Two hosts on one private link, for faults a userspace proxy cannot fake: two Linux network
 * namespaces made for this run, joined by a veth pair. A proxy's own kernel keeps acknowledging
 * what it receives; here the peer's kernel itself stops answering.
 *
 * Needs root and iproute2 (`ip`). Traffic stays on the link between the two namespaces.
 */
import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { Effect, type Scope } from "effect"

const IP = existsSync("/usr/sbin/ip") ? "/usr/sbin/ip" : "ip"
/** No `ip` command may take longer than this. */
const COMMAND_LIMIT_MS = 5_000

/** The link's /30; each namespace has its own network stack, so every run can use the same one. */
const SERVER_ADDRESS = "10.213.0.1"
const CLIENT_ADDRESS = "10.213.0.2"
const PREFIX_LENGTH = 30
/** Device names are per namespace: both ends are created inside the namespaces, never outside. */
const SERVER_DEVICE = "spore-srv"
const CLIENT_DEVICE = "spore-cli"
/** A MAC address no interface has: frames sent to it are dropped by the receiving host. */
const NOWHERE_MAC = "02:00:00:00:de:ad"

/** Runs `ip ARGS`, bounded in time; fails with its stderr. */
const ip = (args: ReadonlyArray<string>): Effect.Effect<void, Error> =>
  Effect.async<void, Error>((resume) => {
    const child = execFile(IP, args, { timeout: COMMAND_LIMIT_MS }, (error, _stdout, stderr) => {
      if (error === null) return resume(Effect.void)
      resume(Effect.fail(new Error(`ip ${args.join(" ")} failed (needs root and iproute2): ${stderr.trim() || error.message}`)))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** A network namespace that exists for the scope, with its loopback up. */
const namespace = (role: string) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `spore-${role}-${process.pid}-${randomBytes(4).toString("hex")}`
      yield* ip(["netns", "add", name])
      return name
    }),
    (name) => Effect.ignore(ip(["netns", "delete", name]))
  ).pipe(Effect.tap((name) => ip(["-n", name, "link", "set", "lo", "up"])))

export interface Host {
  /** The namespace's name. */
  readonly namespace: string
  /** Its address on the link. */
  readonly address: string
  /** The words that run a command inside it: `ip netns exec NAMESPACE`. */
  readonly exec: readonly [string, ...Array<string>]
}

export interface Link {
  readonly server: Host
  readonly client: Host
  /**
   * Cuts the link silently in both directions, as a pulled cable or a sleeping laptop does:
   * nothing is sent to either side (no FIN, no RST, no ICMP), both interfaces stay up, and
   * everything either side sends is dropped by the other's kernel unseen.
   *
   * Done by pointing each side's neighbour entry for the other at a MAC address nobody has: the
   * frames still cross the veth, but the receiving host drops them as addressed to another host.
   */
  readonly blackHole: Effect.Effect<void, Error>
}

/** Two namespaces joined by a veth pair, all up; both namespaces are deleted when the scope closes. */
export const makeLink: Effect.Effect<Link, Error, Scope.Scope> = Effect.gen(function*() {
  const serverNs = yield* namespace("srv")
  const clientNs = yield* namespace("cli")
  // Made inside the server namespace with its peer in the client one; both go with their namespaces.
  yield* ip(["-n", serverNs, "link", "add", SERVER_DEVICE, "type", "veth", "peer", "name", CLIENT_DEVICE, "netns", clientNs])
  yield* ip(["-n", serverNs, "address", "add", `${SERVER_ADDRESS}/${PREFIX_LENGTH}`, "dev", SERVER_DEVICE])
  yield* ip(["-n", clientNs, "address", "add", `${CLIENT_ADDRESS}/${PREFIX_LENGTH}`, "dev", CLIENT_DEVICE])
  yield* ip(["-n", serverNs, "link", "set", SERVER_DEVICE, "up"])
  yield* ip(["-n", clientNs, "link", "set", CLIENT_DEVICE, "up"])

  const unreachable = (ns: string, peer: string, device: string) =>
    ip(["-n", ns, "neigh", "replace", peer, "lladdr", NOWHERE_MAC, "dev", device, "nud", "permanent"])
  return {
    server: { namespace: serverNs, address: SERVER_ADDRESS, exec: [IP, "netns", "exec", serverNs] },
    client: { namespace: clientNs, address: CLIENT_ADDRESS, exec: [IP, "netns", "exec", clientNs] },
    blackHole: Effect.zipRight(
      unreachable(serverNs, CLIENT_ADDRESS, SERVER_DEVICE),
      unreachable(clientNs, SERVER_ADDRESS, CLIENT_DEVICE)
    )
  }
})

/**
 * One private namespace with nothing but its loopback, up, deleted when the scope closes: for a
 * test whose processes must all share one host of their own (a fixed port such as bore's 7835,
 * nothing reachable from outside). Its `address` is 127.0.0.1.
 */
export const makeLoopbackHost: Effect.Effect<Host, Error, Scope.Scope> = Effect.map(namespace("lo"), (name) => ({
  namespace: name,
  address: "127.0.0.1",
  exec: [IP, "netns", "exec", name]
}))
