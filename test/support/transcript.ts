/**
 * Golden bore transcripts (`../shared/bore-wire/*.txt`, captured from the real Rust bore) and what
 * both replay directions share: the parser, the values that differ between the recording and a
 * live run (UUIDs, tunnel ports, HMAC answers), scripted sockets that check what they receive,
 * and the loop that walks a transcript in order.
 *
 * Nothing here uses Spore's framing or message codecs: the replays judge Spore's bytes with code
 * that cannot share their bugs. Only the HMAC is Spore's (`src/protocol/auth.ts`, checked against
 * bore's worked example in its own tests), used to recompute answers the recording got right.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs"
import type * as net from "node:net"
import { fileURLToPath } from "node:url"
import { Data, Duration, Effect, Redacted, type Scope, TestClock, TestServices } from "effect"
import { makeAuthenticator } from "../../src/protocol/auth.js"
import { parseUuid } from "../../src/protocol/uuid.js"

// ---------------------------------------------------------------------------------------------
// The format
// ---------------------------------------------------------------------------------------------

export type Direction = "C->S" | "S->C"

const DATA_KINDS = ["FRAME", "RAW", "PARTIAL"] as const
const CLOSE_KINDS = ["FIN", "EOF", "RST", "CLOSE", "SHUT_WR", "TIMEOUT"] as const
export type DataKind = typeof DATA_KINDS[number]
export type CloseKind = typeof CLOSE_KINDS[number]

export interface TranscriptEvent {
  /** Where the event is in its file, for failure messages. */
  readonly source: string
  readonly t: number
  readonly conn: string
  readonly dir: Direction
  readonly kind: DataKind | CloseKind
  /** The bytes of a FRAME (NUL included), RAW or PARTIAL; empty for the other kinds. */
  readonly bytes: Buffer
}

export interface Transcript {
  /** The file name, e.g. `real-plain.txt`. */
  readonly name: string
  /** Position among all transcripts in sorted order: gives each replay its own ports. */
  readonly index: number
  readonly events: ReadonlyArray<TranscriptEvent>
}

const isDataKind = (kind: string): kind is DataKind => (DATA_KINDS as ReadonlyArray<string>).includes(kind)
const isCloseKind = (kind: string): kind is CloseKind => (CLOSE_KINDS as ReadonlyArray<string>).includes(kind)

/** The kind of a close event (FIN, RST, ...). */
export const closeKind = ({ kind, source }: TranscriptEvent): CloseKind => {
  if (!isCloseKind(kind)) throw new Error(`${source}: ${kind} is not a close`)
  return kind
}

const isKind = (kind: string): kind is DataKind | CloseKind => isDataKind(kind) || isCloseKind(kind)

/** Whether the event carries bytes (FRAME, RAW, PARTIAL) rather than being a close. */
export const isData = (event: TranscriptEvent): boolean => isDataKind(event.kind)

/** Parses one transcript; throws on anything malformed, so a broken file cannot pass silently. */
export const parseTranscript = (name: string, index: number, text: string): Transcript => {
  const events: Array<TranscriptEvent> = []
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "" || line.startsWith("#")) return
    const source = `${name}:${i + 1}`
    const [t, conn, dir, kind, hex] = line.split("\t")
    if (t === undefined || conn === undefined || hex === undefined || kind === undefined || !isKind(kind)) {
      throw new Error(`${source}: not a transcript line: ${JSON.stringify(line)}`)
    }
    if (dir !== "C->S" && dir !== "S->C") throw new Error(`${source}: bad direction ${dir}`)
    const bytes = hex === "-" ? Buffer.alloc(0) : Buffer.from(hex, "hex")
    const carriesBytes = isDataKind(kind)
    if (carriesBytes !== (hex !== "-") || (carriesBytes && bytes.length * 2 !== hex.length)) {
      throw new Error(`${source}: bad hex for ${kind}`)
    }
    if (kind === "FRAME" && bytes.indexOf(0) !== bytes.length - 1) throw new Error(`${source}: a FRAME ends with its only NUL`)
    if (kind === "PARTIAL" && bytes.includes(0)) throw new Error(`${source}: a PARTIAL has no NUL`)
    events.push({ source, t: Number(t), conn, dir, kind, bytes })
  })
  return { name, index, events }
}

/** Every transcript in `dir`, sorted by name. Fails loudly if the folder is missing or empty. */
export const loadTranscripts = (dir: URL): ReadonlyArray<Transcript> => {
  if (!existsSync(dir)) {
    throw new Error(`golden transcripts not found at ${fileURLToPath(dir)} (expected ../shared/bore-wire)`)
  }
  const names = readdirSync(dir).filter((name) => name.endsWith(".txt")).sort()
  if (names.length === 0) throw new Error(`no golden transcripts (*.txt) in ${fileURLToPath(dir)}`)
  return names.map((name, index) => parseTranscript(name, index, readFileSync(new URL(name, dir), "latin1")))
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/** bore's control port, and the local service the recorded `bore local` exposed. */
const RECORDED_CONTROL_PORT = 7835
const RECORDED_LOCAL_PORT = 18080

/** What a connection of the recording was connected to. */
export type Endpoint =
  /** The control port: control streams and data streams alike. */
  | { readonly _tag: "Control" }
  /** A tunnel's public port; `port` undefined means the most recent tunnel's. */
  | { readonly _tag: "Visitor"; readonly port: number | undefined }
  /** The service behind `bore local`. */
  | { readonly _tag: "LocalService" }

/**
 * `c<N>:<port>` in real-*.txt; in probe-*.txt labels starting with `ext` are visitors (with the
 * port in the label, or of the latest tunnel), every other label is a control-port connection.
 */
export const endpointOf = (conn: string): Endpoint => {
  const real = /^c\d+:(\d+)$/.exec(conn)
  if (real !== null) {
    const port = Number(real[1])
    if (port === RECORDED_CONTROL_PORT) return { _tag: "Control" }
    if (port === RECORDED_LOCAL_PORT) return { _tag: "LocalService" }
    return { _tag: "Visitor", port }
  }
  const ext = /^ext(?::(\d+)|-.*)?$/.exec(conn)
  if (ext !== null) return { _tag: "Visitor", port: ext[1] === undefined ? undefined : Number(ext[1]) }
  return { _tag: "Control" }
}

/** Connection labels whose endpoint passes `keep`, in order of first appearance. */
export const connsInOrder = (transcript: Transcript, keep: (endpoint: Endpoint) => boolean): Array<string> =>
  [...new Set(transcript.events.map((event) => event.conn))].filter((conn) => keep(endpointOf(conn)))

/** The events of one connection. */
export const eventsOf = (transcript: Transcript, conn: string) => transcript.events.filter((event) => event.conn === conn)

// ---------------------------------------------------------------------------------------------
// Values that change between the recording and a live run
// ---------------------------------------------------------------------------------------------

export const HEARTBEAT = Buffer.from("\"Heartbeat\"\0", "latin1")
/**
 * A Spore client's offer of extensions, sent after the Hello reply where a bore server never reads
 * (DESIGN.md's compatibility rules). It is the one frame a Spore client adds to bore's sequence.
 */
export const SPORE_OFFER = Buffer.from("{\"Spore\":3}\0", "latin1")
export const frameText = (bytes: Uint8Array): string => Buffer.from(bytes).toString("latin1")
export const textBytes = (text: string): Buffer => Buffer.from(text, "latin1")

/** Bytes for a failure message: as a JSON string, shortened. */
export const show = (bytes: Uint8Array): string => {
  const text = JSON.stringify(frameText(bytes))
  return text.length > 160 ? `${text.slice(0, 150)}..." (${bytes.length} bytes)` : text
}

/** What bore writes: lowercase, hyphenated, version 4. */
const CANONICAL_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** The server frames that carry a fresh UUID: `{"Challenge":id}` and `{"Connection":id}`. */
export const uuidFrame = (frame: Uint8Array) => {
  const match = /^\{"(Challenge|Connection)":"([^"]*)"\}\0$/.exec(frameText(frame))
  return match === null ? undefined : { tag: match[1], id: match[2] }
}
export const isCanonicalV4 = (id: string) => CANONICAL_V4.test(id)

/** The textual forms a client may write a UUID in (braced and urn: wrap the hyphenated ones). */
const uuidForms = (id: string): Array<string> => {
  const simple = id.replaceAll("-", "")
  const byteArray = `[${[...Buffer.from(simple, "hex")].join(",")}]`
  return [id, id.toUpperCase(), simple, simple.toUpperCase(), byteArray]
}

/** Recorded UUIDs (challenges, connection ids) and the ones the live peer chose instead. */
export class UuidBindings {
  private readonly actual = new Map<string, string>()

  /** Binds a recorded UUID on first sight; returns a complaint if it was bound to another. */
  bind(recorded: string, actual: string): string | undefined {
    const known = this.actual.get(recorded)
    if (known !== undefined && known !== actual) return `${recorded} was ${known} before, now ${actual}`
    this.actual.set(recorded, actual)
    return undefined
  }

  actualFor(recorded: string): string | undefined {
    return this.actual.get(recorded)
  }

  /** Replaces each recorded UUID in `text` with its live value, in the same textual form. */
  substitute(text: string): string {
    let result = text
    for (const [recorded, actual] of this.actual) {
      const to = uuidForms(actual)
      uuidForms(recorded).forEach((form, i) => result = result.replaceAll(form, to[i]))
    }
    return result
  }
}

/** The recording server's tunnel range (`--min-port 20000 --max-port 20100`). */
export const RECORDED_RANGE = { minPort: 20000, maxPort: 20100 }

/** Ports in this window are the recording's tunnel ports (in range or just out of it) and move. */
const MOVABLE = { min: 19000, max: 31000 }

/**
 * Each transcript gets its own ports, below Linux's ephemeral range (32768 and up) so that no
 * outgoing connection can hold one. Only in-range ports are ever bound: with 31 transcripts the
 * highest is 20100 + 5500; an out-of-range value like 30000 may land above 32768, which is fine
 * since the server must refuse it without binding.
 */
export const portOffset = (transcript: Transcript) => 1000 + transcript.index * 150

/** Recorded tunnel ports and the live ones: moved by an offset, or learned from a Hello(0) reply. */
export class PortMap {
  private readonly learned = new Map<number, number>()
  constructor(readonly offset: number) {}

  map(recorded: number): number {
    const learned = this.learned.get(recorded)
    if (learned !== undefined) return learned
    return recorded >= MOVABLE.min && recorded <= MOVABLE.max ? recorded + this.offset : recorded
  }

  /** The server picked `actual` where the recorded server picked `recorded`. */
  learn(recorded: number, actual: number): void {
    this.learned.set(recorded, actual)
  }
}

const HELLO = /("Hello"\s*:\s*)(\d+)/

/** The port a Hello frame (or unterminated Hello) asks for or announces, if it is one. */
export const helloPort = (frame: Uint8Array): number | undefined => {
  const match = HELLO.exec(frameText(frame))
  return match === null ? undefined : Number(match[2])
}

/**
 * A client frame with its Hello port moved. Moved ports keep their digit count, so the frame
 * keeps its length: probe-frame-limits pads a Hello to exactly 256 and 257 bytes.
 */
export const withMappedHelloPort = (text: string, ports: PortMap): string => {
  const result = text.replace(HELLO, (_, head: string, port: string) => `${head}${ports.map(Number(port))}`)
  if (result.length !== text.length) throw new Error(`mapping the port of ${JSON.stringify(text)} changed its length`)
  return result
}

/** The secret the recorded servers and clients used. */
export const RECORDED_SECRET = "s3cret"

/** bore's HMAC under the recorded secret. */
const recordedAuth = makeAuthenticator(Redacted.make(RECORDED_SECRET))

const AUTHENTICATE = /^(\{"Authenticate":")([^"]*)("\}\0)$/

/**
 * An Authenticate frame recomputed for the live challenge, in the recorded answer's case. Only a
 * right answer is recomputed: a deliberately wrong one must stay wrong.
 */
export const reanswered = (text: string, recordedChallenge: string | undefined, actualChallenge: string | undefined) => {
  const match = AUTHENTICATE.exec(text)
  const recorded = recordedChallenge === undefined ? undefined : parseUuid(recordedChallenge)
  const actual = actualChallenge === undefined ? undefined : parseUuid(actualChallenge)
  if (match === null || recorded === undefined || actual === undefined) return text
  const [, head, answer, tail] = match
  if (!recordedAuth.validate(recorded, answer)) return text
  const fresh = recordedAuth.answer(actual)
  return `${head}${/[A-F]/.test(answer) ? fresh.toUpperCase() : fresh}${tail}`
}

// ---------------------------------------------------------------------------------------------
// Scripted sockets
// ---------------------------------------------------------------------------------------------

/** A replay found Spore saying something other than bore did. */
export class ReplayMismatch extends Data.TaggedError("ReplayMismatch")<{ readonly message: string }> {}

/**
 * How long any single wait on a peer may take before the test fails with a description rather
 * than vitest's bare timeout. It is a real-time watchdog, never part of the timing under test
 * (that runs on the TestClock); on loopback every wait ends in milliseconds.
 */
const WATCHDOG = Duration.seconds(5)

/** Fails with `message()` if `effect` has not finished after WATCHDOG of real time. */
export const withWatchdog = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  message: () => string
): Effect.Effect<A, E | ReplayMismatch, R> =>
  TestServices.provideWithLive(effect, (waiting) =>
    Effect.timeoutFail(waiting, {
      duration: WATCHDOG,
      onTimeout: () => new ReplayMismatch({ message: `${message()} (nothing for ${Duration.format(WATCHDOG)})` })
    }))

type Progress<A> = { readonly done: A } | "wait" | { readonly mismatch: string }

/** Frames a peer may pass over where a transcript has none. */
export interface SkipOptions {
  readonly skipHeartbeats: boolean
  readonly skipFrames?: ReadonlyArray<Buffer>
}

/**
 * One end of a TCP connection that a replay drives: it records everything received, and waits
 * on socket events (never on a clock) for what the transcript says comes next.
 */
export class Peer {
  private received = Buffer.alloc(0)
  private cursor = 0
  private ended = false
  private closed = false

  private constructor(readonly label: string, readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => this.received = Buffer.concat([this.received, chunk]))
    socket.on("end", () => this.ended = true)
    socket.on("close", () => this.closed = true)
    // Resets and writes after the far side closed are part of the script, not failures.
    socket.on("error", () => {})
  }

  /** Takes over `socket` for the rest of the scope, which destroys it. */
  static own(label: string, socket: net.Socket): Effect.Effect<Peer, never, Scope.Scope> {
    return Effect.acquireRelease(Effect.sync(() => new Peer(label, socket)), (peer) => Effect.sync(() => peer.socket.destroy()))
  }

  /** Bytes received and not yet matched. */
  get unread(): Buffer {
    return this.received.subarray(this.cursor)
  }

  /** The other side ended its stream, or the socket closed (either way nothing more comes). */
  get finished(): boolean {
    return this.ended || this.closed
  }

  /** Writes bytes in one write; a socket already closed or ended just drops them. */
  send(bytes: Uint8Array): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.socket.destroyed || this.socket.writableEnded) return resume(Effect.void)
      this.socket.write(bytes, () => resume(Effect.void))
    })
  }

  /** Our side's close events: FIN and SHUT_WR end, CLOSE destroys, RST resets. */
  close(kind: CloseKind): Effect.Effect<void, ReplayMismatch> {
    return Effect.suspend(() => {
      if (this.socket.destroyed) return Effect.void
      switch (kind) {
        case "FIN":
        case "SHUT_WR":
        case "EOF":
          this.socket.end()
          return Effect.void
        case "CLOSE":
          this.socket.destroy()
          return Effect.void
        case "RST":
          this.socket.resetAndDestroy()
          return Effect.void
        case "TIMEOUT":
          return Effect.fail(new ReplayMismatch({ message: `${this.label}: TIMEOUT is not something a peer can do` }))
      }
    })
  }

  /** The next frame (up to and including its NUL), optionally skipping some frames before it. */
  nextFrame(options: SkipOptions): Effect.Effect<Buffer, ReplayMismatch> {
    return this.until("a frame", () => {
      this.skipLeading(options)
      const end = this.unread.indexOf(0)
      if (end < 0) return "wait"
      const frame = Buffer.from(this.unread.subarray(0, end + 1))
      this.cursor += end + 1
      return { done: frame }
    })
  }

  /** Exactly `expected` next (raw payload may arrive in any chunks). */
  expectBytes(expected: Uint8Array): Effect.Effect<void, ReplayMismatch> {
    return this.until(`the bytes ${show(expected)}`, () => {
      const n = Math.min(this.unread.length, expected.length)
      if (!this.unread.subarray(0, n).equals(expected.subarray(0, n))) {
        return { mismatch: `expected ${show(expected)}, received ${show(this.unread)}` }
      }
      if (n < expected.length) return "wait"
      this.cursor += n
      return { done: undefined }
    })
  }

  /** Waits until the other side has ended or closed the connection. */
  awaitFinished(): Effect.Effect<void, ReplayMismatch> {
    return this.until("the connection to end", () => this.finished ? { done: undefined } : "wait")
  }

  /** What is left unread; frames are skipped first as asked. */
  leftover(options: SkipOptions): Buffer {
    this.skipLeading(options)
    return this.unread
  }

  private skipLeading(options: SkipOptions): void {
    const skippable = [...(options.skipHeartbeats ? [HEARTBEAT] : []), ...(options.skipFrames ?? [])]
    let skipped = true
    while (skipped) {
      const next = skippable.find((frame) => this.unread.subarray(0, frame.length).equals(frame))
      skipped = next !== undefined
      if (next !== undefined) this.cursor += next.length
    }
  }

  /** Re-checks on every socket event until `check` is done; a finished stream that is not, fails. */
  private until<A>(what: string, check: () => Progress<A>): Effect.Effect<A, ReplayMismatch> {
    const wait = Effect.async<A, ReplayMismatch>((resume) => {
      const attempt = (): boolean => {
        const progress = check()
        if (progress !== "wait") {
          resume("done" in progress ? Effect.succeed(progress.done) : this.fail(progress.mismatch))
          return true
        }
        if (this.finished) {
          resume(this.fail(`waiting for ${what}, the connection ended; unread: ${show(this.unread)}`))
          return true
        }
        return false
      }
      const onEvent = () => {
        if (attempt()) stop()
      }
      const stop = () => {
        this.socket.off("data", onEvent)
        this.socket.off("end", onEvent)
        this.socket.off("close", onEvent)
      }
      if (attempt()) return
      this.socket.on("data", onEvent)
      this.socket.on("end", onEvent)
      this.socket.on("close", onEvent)
      return Effect.sync(stop)
    })
    return withWatchdog(wait, () => `${this.label}: waited for ${what}; unread: ${show(this.unread)}`)
  }

  private fail(message: string) {
    return Effect.fail(new ReplayMismatch({ message: `${this.label}: ${message}` }))
  }
}

/** Fails unless `actual` is byte for byte `expected`. */
export const expectSame = (where: string, expected: Uint8Array, actual: Uint8Array): Effect.Effect<void, ReplayMismatch> =>
  Buffer.from(expected).equals(actual)
    ? Effect.void
    : Effect.fail(new ReplayMismatch({ message: `${where}: expected ${show(expected)}, received ${show(actual)}` }))

// ---------------------------------------------------------------------------------------------
// Walking a transcript
// ---------------------------------------------------------------------------------------------

/**
 * A gap this long between two events is a timer firing in the recording (the 3 s handshake
 * timeout, the 10 s pending expiry); shorter gaps are latency and pass in no time here.
 */
export const TIMER_GAP_MS = 2500

/**
 * Chunks sent less than 1 ms apart on one connection, with nothing in between, were one write in
 * the recording ("Accept + extra bytes in the SAME write", "Authenticate+Accept sent in ONE
 * write"): they go out as one, so the peer reads them in one chunk as bore's peer did.
 */
const SAME_WRITE_MS = 1

/** One side of a replay: what it does with its own events, and how it checks the other side's. */
export interface ReplaySide {
  /** The direction this side plays; events in the other direction are expectations. */
  readonly plays: Direction
  /** Connections this side has no part in (their events still take time). */
  readonly skips: (conn: string) => boolean
  /** Makes sure `conn` exists before its first event. */
  readonly open: (event: TranscriptEvent) => Effect.Effect<void, ReplayMismatch, Scope.Scope>
  /** Sends our bytes for one or more events that go out as one write. */
  readonly send: (events: ReadonlyArray<TranscriptEvent>) => Effect.Effect<void, ReplayMismatch>
  /** Our FIN, RST or CLOSE. */
  readonly close: (event: TranscriptEvent) => Effect.Effect<void, ReplayMismatch>
  /** Waits for and checks the other side's bytes. */
  readonly expectData: (event: TranscriptEvent) => Effect.Effect<void, ReplayMismatch>
  /** Notes the other side's close, to be checked once the script is over. */
  readonly expectClose: (event: TranscriptEvent) => Effect.Effect<void, ReplayMismatch>
  /** The scripted socket of an opened connection. */
  readonly peer: (conn: string) => Peer
}

/** Groups events into steps: our writes that were one write in the recording form one step. */
const steps = (events: ReadonlyArray<TranscriptEvent>, side: ReplaySide): Array<Array<TranscriptEvent>> => {
  const result: Array<Array<TranscriptEvent>> = []
  for (const event of events) {
    const last = result.at(-1)
    const previous = last?.at(-1)
    const sameWrite = last !== undefined && previous !== undefined && event.dir === side.plays &&
      previous.dir === side.plays && isData(event) && isData(previous) && event.conn === previous.conn &&
      event.t - previous.t < SAME_WRITE_MS
    if (sameWrite) last.push(event)
    else result.push([event])
  }
  return result
}

/**
 * Plays `events` in order. Time passes on the TestClock only where the recording shows a timer
 * firing (a gap of TIMER_GAP_MS or more), after the connection involved has been opened. A close
 * the timer caused (the 3 s handshake timeout, the 10 s expiry) is checked on the spot, not at
 * the end: the connection must be open before the clock moves and closed after. `startAt` is the
 * recorded time `events` start from, when a transcript is played in parts.
 */
export const play = (
  events: ReadonlyArray<TranscriptEvent>,
  side: ReplaySide,
  startAt = 0
): Effect.Effect<void, ReplayMismatch, Scope.Scope> =>
  Effect.gen(function*() {
    let clock = startAt
    for (const step of steps(events, side)) {
      const first = step[0]
      const gap = first.t - clock
      clock = step.at(-1)!.t
      if (side.skips(first.conn)) continue
      yield* side.open(first)
      const timer = gap >= TIMER_GAP_MS
      const timedClose = timer && first.dir !== side.plays && !isData(first)
      if (timedClose && side.peer(first.conn).finished) {
        return yield* new ReplayMismatch({ message: `${first.source} ${first.conn}: closed before its timer fired` })
      }
      if (timer) yield* TestClock.adjust(Duration.millis(gap))
      if (first.dir === side.plays) {
        yield* isData(first) ? side.send(step) : side.close(first)
      } else if (timedClose) {
        yield* side.peer(first.conn).awaitFinished()
      } else {
        yield* isData(first) ? side.expectData(first) : side.expectClose(first)
      }
    }
  })
