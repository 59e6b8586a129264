/**
 * Client replay: the server side (S->C) of each golden transcript, written by the real bore server
 * in real-*.txt and by a scripted server in probe-real-client-*.txt, is played by a fake server on
 * 127.0.0.1 (and a fake local service for the 18080 connections) against a real Spore client, and
 * what the client sends (C->S) must be what bore's client sent, byte for byte (HMAC answers
 * included: the fake server sends the recorded challenges and the client has the recorded secret).
 *
 * Every transcript is one or more runs of `bore local` (real-port-errors has four): each control
 * stream that is not a data stream (no Accept) starts a Spore client, configured from that run's
 * Hello. Visitors (public port) are skipped: there is no public port here. The fake server says
 * exactly what was recorded, UUIDs included, so nothing needs rewriting. Closes are checked once
 * the script is over, like the server replay's.
 */
import { describe, it } from "@effect/vitest"
import * as net from "node:net"
import { Cause, Effect, Exit, Fiber, Option, Queue, type Scope } from "effect"
import * as Client from "../../src/client/client.js"
import type { ClientConfig } from "../../src/client/config.js"
import { clientLayer } from "../support/client.js"
import { clientConfig, echoService, LOOPBACK } from "../support/net.js"
import { goldenTranscripts as transcripts, replayWhole, ScriptedSide } from "../support/replay.js"
import {
  connsInOrder,
  endpointOf,
  eventsOf,
  expectSame,
  frameText,
  helloPort,
  type Peer,
  RECORDED_SECRET,
  ReplayMismatch,
  SPORE_OFFER,
  type Transcript,
  type TranscriptEvent,
  withWatchdog
} from "../support/transcript.js"

/** A Spore client adds only its extension offer to what bore's client sends. */
const CLIENT_SKIPS = { skipHeartbeats: false, skipFrames: [SPORE_OFFER] }

/** Everything where a bore client did the talking: real runs, and probes of the real client. */
const againstClient = transcripts.filter((t) => t.name.startsWith("real-") || t.name.startsWith("probe-real-client-"))

/** How one run of the client must end up once its script has been played. */
type Outcome =
  | { readonly _tag: "Running" }
  | { readonly _tag: "Fails"; readonly error: string; readonly message: string; readonly exact: boolean }

const running: Outcome = { _tag: "Running" }
/** The run fails with this error and exactly bore's text (wrappers match on it). */
const failsWith = (error: string, message: string): Outcome => ({ _tag: "Fails", error, message, exact: true })
/** The run fails with this error, its message mentioning bore's text. */
const failsMentioning = (error: string, message: string): Outcome => ({ _tag: "Fails", error, message, exact: false })

interface ClientSetup {
  /** The secret each run of the client is given. */
  readonly secret?: string
  /** What listens on the local port: the script (default), a real echo service, or nothing. */
  readonly localService?: "scripted" | "echo" | "dead"
  /** Per run, in order; runs not listed must still be running when the script is over. */
  readonly outcomes?: ReadonlyArray<Outcome>
}

const PORT_NOT_IN_RANGE = "server error: client port number not in allowed range"

/** What each recording implies about its clients, beyond running with no secret. */
const SETUPS: Record<string, ClientSetup> = {
  "real-auth.txt": { secret: RECORDED_SECRET },
  "probe-real-client-fixed-challenge.txt": { secret: RECORDED_SECRET },
  // The capture's wrong secret was "wrong": its Authenticate is reproduced byte for byte.
  "real-wrong-secret.txt": { secret: "wrong", outcomes: [failsWith("ServerRejected", "server error: invalid secret")] },
  "real-client-no-secret.txt": {
    outcomes: [failsWith("AuthenticationError", "server requires authentication, but no client secret was provided")]
  },
  // The client has a secret, the server none: it sees no Challenge for 3 s.
  "real-server-no-secret.txt": {
    secret: RECORDED_SECRET,
    outcomes: [failsWith("AuthenticationError", "expected authentication challenge, but no secret was required")]
  },
  "real-port-errors.txt": {
    outcomes: [
      running,
      failsWith("ServerRejected", "server error: port already in use"),
      failsWith("ServerRejected", PORT_NOT_IN_RANGE),
      failsWith("ServerRejected", PORT_NOT_IN_RANGE)
    ]
  },
  // Nothing listens on the local port: the data stream is dropped, the tunnel carries on.
  "real-dead-local.txt": { localService: "dead" },
  "probe-real-client-vs-fake-server-bad-frame.txt": {
    outcomes: [failsMentioning("ControlConnectionLost", "frame error, invalid byte length")]
  },
  "probe-real-client-vs-fake-server-unknown-variant.txt": {
    outcomes: [failsMentioning("ControlConnectionLost", "unable to parse message")]
  },
  // Survives an Error frame, a stray Hello and Challenge, and serves the Connection that follows.
  "probe-real-client-vs-fake-server-behaviour.txt": { localService: "echo" }
}

/** A listener on 127.0.0.1:0 whose connections queue up, in accept order, for the script. */
const fakeListener = Effect.gen(function*() {
  const accepted = yield* Effect.acquireRelease(
    Queue.unbounded<net.Socket>(),
    // Connections the script never took are closed with the test.
    (queue) =>
      Effect.map(Queue.takeAll(queue), (sockets) => {
        for (const socket of sockets) socket.destroy()
      })
  )
  const server = yield* Effect.acquireRelease(
    Effect.async<net.Server>((resume) => {
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        socket.on("error", () => {})
        Queue.unsafeOffer(accepted, socket)
      })
      server.listen(0, LOOPBACK, () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.sync(() => server.close())
  )
  return { port: (server.address() as net.AddressInfo).port, accepted }
})
type FakeListener = Effect.Effect.Success<typeof fakeListener>

/** A port on 127.0.0.1 where nothing listens (bound, then closed). */
const deadPort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, LOOPBACK, () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** One run of `bore local`, played by a Spore client. */
const runClient = (config: ClientConfig) =>
  Effect.scoped(Client.run({ ...config, reconnect: false }, () => Effect.void)).pipe(Effect.provide(clientLayer))
type ClientFailure = Effect.Effect.Error<ReturnType<typeof runClient>>

interface Run {
  /** The control stream that starts it. */
  readonly conn: string
  /** The port its Hello asks for, as recorded. */
  readonly port: number
  readonly outcome: Outcome
  fiber?: Fiber.RuntimeFiber<never, ClientFailure>
}

/** A data stream sends Accept; every other control-port stream is a run of the client. */
const isDataStream = (transcript: Transcript, conn: string) =>
  eventsOf(transcript, conn).some((event) => event.dir === "C->S" && frameText(event.bytes).startsWith("{\"Accept\""))

const runsOf = (transcript: Transcript, setup: ClientSetup): Array<Run> => {
  const starts = connsInOrder(transcript, (endpoint) => endpoint._tag === "Control")
    .filter((conn) => !isDataStream(transcript, conn))
  if (setup.outcomes !== undefined && setup.outcomes.length > starts.length) {
    throw new Error(`${transcript.name}: ${setup.outcomes.length} outcomes for ${starts.length} runs`)
  }
  return starts.map((conn, i) => {
    const hello = eventsOf(transcript, conn).find((event) => event.dir === "C->S" && helloPort(event.bytes) !== undefined)
    return { conn, port: hello === undefined ? 0 : helloPort(hello.bytes)!, outcome: setup.outcomes?.[i] ?? running }
  })
}

/** We are bore's server (and the local service); Spore clients answer. */
class ClientReplay extends ScriptedSide {
  readonly plays = "S->C" as const

  private constructor(
    private readonly runs: ReadonlyArray<Run>,
    private readonly setup: ClientSetup,
    private readonly server: FakeListener,
    private readonly local: FakeListener | undefined,
    private readonly localPort: number
  ) {
    super()
  }

  static make(transcript: Transcript) {
    return Effect.gen(function*() {
      const setup = SETUPS[transcript.name] ?? {}
      const server = yield* fakeListener
      const kind = setup.localService ?? "scripted"
      const local = kind === "scripted" ? yield* fakeListener : undefined
      const localPort = local?.port ?? (kind === "echo" ? yield* echoService : yield* deadPort)
      return new ClientReplay(runsOf(transcript, setup), setup, server, local, localPort)
    })
  }

  /** Visitors talk to the public port, which only exists on a real server. */
  override skips(conn: string) {
    return endpointOf(conn)._tag === "Visitor"
  }

  /** Takes `conn` from the next accepted connection; the first stream of a run starts its client. */
  override open(event: TranscriptEvent) {
    return Effect.gen(this, function*() {
      if (this.isOpen(event.conn)) return
      const run = this.runs.find((run) => run.conn === event.conn)
      if (run !== undefined) yield* this.start(run)
      const listener = endpointOf(event.conn)._tag === "LocalService" ? this.local : this.server
      if (listener === undefined) {
        return yield* new ReplayMismatch({ message: `${event.source}: ${event.conn} needs the scripted local service` })
      }
      const socket = yield* withWatchdog(Queue.take(listener.accepted), () => `${event.source}: ${event.conn} never connected`)
      yield* this.own(event.conn, socket)
    })
  }

  override send(events: ReadonlyArray<TranscriptEvent>) {
    return this.peer(events[0].conn).send(Buffer.concat(events.map((event) => event.bytes)))
  }

  protected override expectFrame(event: TranscriptEvent, peer: Peer) {
    return Effect.flatMap(peer.nextFrame(CLIENT_SKIPS), (frame) => expectSame(`${event.source} ${event.conn}`, event.bytes, frame))
  }

  /**
   * Once the script is over: the closes each client made on its own have happened; each run has
   * its outcome; then the clients are stopped (the capture's harness killed bore) and the closes
   * that caused must show too. Nothing unexpected was sent, and no connection was left untaken.
   */
  override get finish(): Effect.Effect<void, ReplayMismatch> {
    return Effect.gen(this, function*() {
      const stillRunning = new Set(this.runs.filter((run) => run.outcome._tag === "Running").map((run) => run.conn))
      for (const event of this.closes.filter((event) => !stillRunning.has(event.conn))) {
        yield* this.peer(event.conn).awaitFinished()
      }
      for (const run of this.runs) yield* checkOutcome(run)
      for (const run of this.runs) if (run.fiber !== undefined) yield* Fiber.interrupt(run.fiber)
      for (const event of this.closes.filter((event) => stillRunning.has(event.conn))) {
        yield* this.peer(event.conn).awaitFinished()
      }
      yield* this.nothingLeft(() => CLIENT_SKIPS)
      for (const listener of [this.server, this.local]) {
        const extra = listener === undefined ? 0 : yield* Queue.size(listener.accepted)
        if (extra > 0) return yield* new ReplayMismatch({ message: `${extra} connection(s) the transcript does not have` })
      }
    })
  }

  private start(run: Run): Effect.Effect<void, never, Scope.Scope> {
    return Effect.gen(this, function*() {
      const secret = this.setup.secret
      const config = clientConfig(this.server.port, this.localPort, { port: run.port, ...(secret === undefined ? {} : { secret }) })
      run.fiber = yield* Effect.forkScoped(runClient(config))
    })
  }
}

/** A running client must not have ended; a failing one must fail with the error and text given. */
const checkOutcome = (run: Run): Effect.Effect<void, ReplayMismatch> =>
  Effect.gen(function*() {
    const fiber = run.fiber
    if (fiber === undefined) return yield* new ReplayMismatch({ message: `${run.conn}: the client never started` })
    const outcome = run.outcome
    if (outcome._tag === "Running") {
      const ended = yield* Fiber.poll(fiber)
      if (Option.isSome(ended)) {
        return yield* new ReplayMismatch({ message: `${run.conn}: the client ended: ${describeExit(ended.value)}` })
      }
      return
    }
    const exit = yield* withWatchdog(Fiber.await(fiber), () => `${run.conn}: the client did not fail`)
    const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
    const matches = Option.isSome(error) && error.value._tag === outcome.error &&
      (outcome.exact ? error.value.message === outcome.message : error.value.message.includes(outcome.message))
    if (!matches) {
      const wanted = `${outcome.error} ${outcome.exact ? "" : "mentioning "}${JSON.stringify(outcome.message)}`
      return yield* new ReplayMismatch({ message: `${run.conn}: expected ${wanted}, got ${describeExit(exit)}` })
    }
  })

const describeExit = (exit: Exit.Exit<never, ClientFailure>) =>
  Exit.isSuccess(exit) ? "success" : Option.match(Cause.failureOption(exit.cause), {
    onNone: () => Cause.pretty(exit.cause),
    onSome: (error) => `${error._tag}: ${JSON.stringify(error.message)}`
  })

describe("client replay: bore's server against a Spore client", () => {
  for (const transcript of againstClient) {
    it.effect(transcript.name, () => replayWhole(transcript, ClientReplay.make(transcript)))
  }
})
