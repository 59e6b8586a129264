/**
 * A client that vanishes without a FIN or RST (cable pulled, laptop asleep) is noticed by the
 * server within its TCP_USER_TIMEOUT, although the server's heartbeats keep the control socket
 * busy (so keepalive never starts): the kernel gives up on the unacknowledged heartbeats after
 * CONTROL_USER_TIMEOUT instead of retrying for its default of about 15 minutes.
 *
 * Server and client are the real executable on two hosts (Linux network namespaces, so this needs
 * root), and the link between them is cut silently. The kernel's timer runs in real time.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { CONTROL_USER_TIMEOUT } from "../../src/net/tuning.js"
import { makeLink } from "../support/netns.js"
import { startSpore } from "../support/process.js"

const CONTROL_PORT = "7835"
/** Starting a process and opening a tunnel. */
const STARTUP_LIMIT = Duration.seconds(10)
/** The kernel gives up at its first retransmission timeout past the user timeout; slack for a slow machine. */
const DETECTION_LIMIT = Duration.sum(CONTROL_USER_TIMEOUT, Duration.seconds(12))
/** Sooner than this, it was not the timeout: something must have closed the connection. */
const DETECTION_EARLIEST = Duration.subtract(CONTROL_USER_TIMEOUT, Duration.seconds(1))

const seconds = (duration: Duration.Duration) => `${Duration.toSeconds(duration).toFixed(1)} s`

const within = (limit: Duration.Duration, what: () => string) => <A>(self: Effect.Effect<A, Error>) =>
  Effect.timeoutFail(self, { duration: limit, onTimeout: () => new Error(`not within ${seconds(limit)}: ${what()}`) })

describe("server liveness", () => {
  it.live("a client whose link goes silent (no FIN, no RST) loses its tunnel within the control user timeout", () =>
    Effect.gen(function*() {
      const link = yield* makeLink
      const server = yield* startSpore(
        ["server", "--bind-addr", link.server.address, "--control-port", CONTROL_PORT, "--min-port", "20000", "--max-port", "20100"],
        {},
        { prefix: link.server.exec }
      )
      yield* server.waitFor(/server listening on/).pipe(within(STARTUP_LIMIT, () => `server start\n${server.stderr()}`))
      const client = yield* startSpore(
        ["local", "9", "--to", link.server.address, "--control-port", CONTROL_PORT],
        {},
        { prefix: link.client.exec }
      )
      const port = (yield* client.waitFor(/listening at [\d.]+:(\d+)/).pipe(
        within(STARTUP_LIMIT, () => `client start\n${client.stderr()}`)
      ))[1]!
      yield* server.waitFor(new RegExp(`tunnel open on port ${port}\\b`)).pipe(
        within(STARTUP_LIMIT, () => `tunnel open\n${server.stderr()}`)
      )
      expect(server.stderr(), "the tunnel was lost before the link was cut").not.toMatch(/lost its client|went away/)

      yield* link.blackHole
      const [detection] = yield* Effect.timed(
        server.waitFor(new RegExp(`tunnel on port ${port} lost its client`)).pipe(
          within(DETECTION_LIMIT, () =>
            `the server did not notice its silent client (the kernel's own limit is ~15 min: is TCP_USER_TIMEOUT ` +
            `set on control sockets?)\nserver:\n${server.stderr()}\nclient:\n${client.stderr()}`)
        )
      )
      expect(
        Duration.greaterThanOrEqualTo(detection, DETECTION_EARLIEST),
        `lost after ${seconds(detection)}, sooner than a timeout could fire: the cut let a FIN or RST through\n${server.stderr()}`
      ).toBe(true)
      expect(
        Duration.lessThanOrEqualTo(detection, DETECTION_LIMIT),
        `lost after ${seconds(detection)}`
      ).toBe(true)
    }).pipe(Effect.scoped), 45_000)
})
