/**
 * Bytes moved, per direction, as a Prometheus counter read at scrape time: the bytes of sockets
 * still open (Node counts them in `bytesRead` and `bytesWritten`) plus the totals of those that
 * have closed. Nothing is done per chunk, so the byte path pays nothing for it.
 *
 * Series are kept once seen (one per label set, e.g. per tunnel port: bounded by the port range).
 */
import type * as net from "node:net"
import type { Labels, Registry, Sample } from "./registry.js"

/** Which of a socket's counters is the "in" direction; the other one is "out". */
export type InIs = "bytesRead" | "bytesWritten"

export interface Traffic {
  /** Counts `socket`'s bytes under `labels` from now until it closes, and after. */
  readonly track: (labels: Labels, socket: net.Socket, inIs: InIs) => void
}

interface Series {
  readonly labels: Labels
  closedIn: number
  closedOut: number
  readonly live: Map<net.Socket, InIs>
}

const outOf = (inIs: InIs): InIs => inIs === "bytesRead" ? "bytesWritten" : "bytesRead"

export const makeTraffic = (registry: Registry, name: string, help: string, labelNames: ReadonlyArray<string>): Traffic => {
  const series = new Map<string, Series>()

  registry.computed(name, help, "counter", [...labelNames, "direction"], () => {
    const samples: Array<Sample> = []
    for (const entry of series.values()) {
      let bytesIn = entry.closedIn
      let bytesOut = entry.closedOut
      for (const [socket, inIs] of entry.live) {
        bytesIn += socket[inIs]
        bytesOut += socket[outOf(inIs)]
      }
      samples.push({ labels: { ...entry.labels, direction: "in" }, value: bytesIn })
      samples.push({ labels: { ...entry.labels, direction: "out" }, value: bytesOut })
    }
    return samples
  })

  const track = (labels: Labels, socket: net.Socket, inIs: InIs) => {
    const key = JSON.stringify(labels)
    let entry = series.get(key)
    if (entry === undefined) {
      entry = { labels, closedIn: 0, closedOut: 0, live: new Map() }
      series.set(key, entry)
    }
    const counted = entry
    counted.live.set(socket, inIs)
    socket.once("close", () => {
      counted.live.delete(socket)
      counted.closedIn += socket[inIs]
      counted.closedOut += socket[outOf(inIs)]
    })
  }

  return { track }
}
