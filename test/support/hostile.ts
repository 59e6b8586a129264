/**
 * Hostile peers of a server's control port, for flood tests: each kind misbehaves in one way a
 * real attacker or a broken client does, and reports what the server sent and when it closed.
 *
 * Plain sockets and callbacks rather than fibers: thousands run at once. Each is bounded: it
 * gives up (and destroys its socket) after GIVE_UP_MS, and the slow one sends at most a dozen
 * bytes.
 */
import { randomUUID } from "node:crypto"
import * as net from "node:net"
import { Redacted } from "effect"
import { makeAuthenticator } from "../../src/protocol/auth.js"
import type { Uuid } from "../../src/protocol/uuid.js"

export const HOSTILE_KINDS = ["silent", "garbage", "oversized", "slow", "unknown-accept", "wrong-secret"] as const
export type HostileKind = (typeof HOSTILE_KINDS)[number]

/** A hostile peer never waits longer than this for the server to close it. */
const GIVE_UP_MS = 10_000

export interface HostileOutcome {
  readonly kind: HostileKind
  /** The frames the server sent, as text. */
  readonly frames: ReadonlyArray<string>
  /** Milliseconds from the connection's establishment to the server's close; undefined if it never closed (or never connected). */
  readonly closedAfterMs: number | undefined
}

/** What a hostile peer does once it has the server's Challenge (the server has a secret). */
const misbehave = (kind: HostileKind, socket: net.Socket, challenge: string, secret: string, stop: Array<() => void>) => {
  switch (kind) {
    case "silent":
      return
    case "garbage":
      return void socket.write("\u0001\u0002not json at all\u0000")
    case "oversized":
      return void socket.write("A".repeat(1000))
    case "slow": {
      // One byte a second of a frame that would be valid (the slowloris attack).
      const frame = Buffer.from("{\"Hello\":0}\u0000")
      let sent = 0
      const timer = setInterval(() => {
        if (sent < frame.length && !socket.destroyed) socket.write(frame.subarray(sent, ++sent))
      }, 1000)
      return void stop.push(() => clearInterval(timer))
    }
    case "unknown-accept": {
      const answer = makeAuthenticator(Redacted.make(secret)).answer(challenge as Uuid)
      return void socket.write(`{"Authenticate":"${answer}"}\u0000{"Accept":"${randomUUID()}"}\u0000`)
    }
    case "wrong-secret":
      return void socket.write(`{"Authenticate":"${"00".repeat(32)}"}\u0000`)
  }
}

/** Connects from `from` to the control port and misbehaves as `kind` until the server closes. */
export const runHostile = (kind: HostileKind, port: number, from: string, secret: string) =>
  new Promise<HostileOutcome>((resolve) => {
    let connectedAt: number | undefined
    const frames: Array<string> = []
    const stop: Array<() => void> = []
    let pending = Buffer.alloc(0)
    let done = false
    const finish = (closedAfterMs: number | undefined) => {
      if (done) return
      done = true
      clearTimeout(giveUp)
      for (const action of stop) action()
      socket.destroy()
      resolve({ kind, frames, closedAfterMs })
    }
    const giveUp = setTimeout(() => finish(undefined), GIVE_UP_MS)
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: from })
    socket.on("error", () => {})
    socket.once("connect", () => (connectedAt = Date.now()))
    socket.on("close", () => finish(connectedAt === undefined ? undefined : Date.now() - connectedAt))
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      for (let nul = pending.indexOf(0); nul >= 0; nul = pending.indexOf(0)) {
        const text = pending.subarray(0, nul).toString("utf8")
        pending = pending.subarray(nul + 1)
        frames.push(text)
        const challenge = /^\{"Challenge":"([0-9a-f-]{36})"\}$/.exec(text)?.[1]
        if (frames.length === 1 && challenge !== undefined) misbehave(kind, socket, challenge, secret, stop)
      }
    })
  })
