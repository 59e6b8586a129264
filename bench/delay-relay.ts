/**
 * A slow link for the `delayed` bench section: a TCP relay that listens on one address and
 * forwards each connection to a target, holding every chunk for a fixed delay in each direction
 * (10 ms each way stands for a 20 ms RTT). Order is kept (one FIFO queue per direction, the same
 * delay for every chunk), and so is backpressure: the reading side pauses while more than
 * IN_FLIGHT bytes are held or the writing side is full. A half-close crosses with the same delay
 * as the data before it; an error on either side resets the other at once. Each direction has one
 * timer at most, cleared when its connection goes, so nothing is left after `close`.
 *
 * TCP's own handshake costs its round trip too: the relay accepts on loopback at once, but opens
 * its connection to the target only one RTT later, and does not read the near side before then.
 * So a connecting side's first bytes arrive 1.5 RTT after its connect began (SYN, SYN-ACK, then
 * the data), as over a real link; a target that speaks first is heard 0.5 RTT early.
 */
import * as net from "node:net"

export interface Address {
  readonly host: string
  readonly port: number
}

/** Bytes held in one direction before its reader pauses: a window, 1 MiB per 10 ms is 100 MB/s. */
const IN_FLIGHT = 1 << 20

/** One direction of a relayed connection: what `from` sends reaches `to` `delayMs` later. */
const delayedPipe = (from: net.Socket, to: net.Socket, delayMs: number) => {
  /** Chunks in order with the time each is due; `null` is the sender's end. */
  const queue: Array<{ readonly due: number; readonly chunk: Buffer | null }> = []
  let held = 0
  let toIsFull = false
  let timer: NodeJS.Timeout | undefined

  const flowControl = () => {
    const tooMuch = held > IN_FLIGHT || toIsFull
    if (tooMuch && !from.isPaused()) from.pause()
    else if (!tooMuch && from.isPaused()) from.resume()
  }
  const deliver = () => {
    timer = undefined
    if (to.destroyed) return
    // The head's time is up (the timer was set for it); the rest go as they come due, so a timer
    // firing a little early by the loop's coarser clock does not cost a 1 ms re-arm.
    const now = performance.now()
    do {
      const { chunk } = queue.shift()!
      if (chunk === null) to.end()
      else {
        held -= chunk.length
        if (!to.write(chunk)) toIsFull = true
      }
    } while (queue.length > 0 && queue[0]!.due <= now)
    if (queue.length > 0) timer = setTimeout(deliver, Math.max(1, queue[0]!.due - now))
    flowControl()
  }
  const hold = (chunk: Buffer | null) => {
    queue.push({ due: performance.now() + delayMs, chunk })
    timer ??= setTimeout(deliver, delayMs)
  }

  from.on("data", (chunk: Buffer) => {
    held += chunk.length
    hold(chunk)
    flowControl()
  })
  from.on("end", () => hold(null))
  to.on("drain", () => {
    toIsFull = false
    flowControl()
  })
  return {
    /** Drops what is held: the connection is gone. */
    stop: () => {
      clearTimeout(timer)
      timer = undefined
      queue.length = 0
    }
  }
}

/** Starts the relay; resolves once it listens. `close` stops it and every connection through it. */
export const startDelayRelay = (listen: Address, target: Address, delayMs: number) =>
  new Promise<{ readonly close: () => Promise<void> }>((resolve, reject) => {
    /** How to tear down each connection still open (or still in its handshake). */
    const connections = new Set<() => void>()

    /** Relays `near` to the target, once its handshake's round trip has passed. */
    const relay = (near: net.Socket) => {
      const far = net.connect({ host: target.host, port: target.port, allowHalfOpen: true })
      near.setNoDelay(true)
      far.setNoDelay(true)
      const up = delayedPipe(near, far, delayMs)
      const down = delayedPipe(far, near, delayMs)
      near.resume()
      const destroy = () => {
        up.stop()
        down.stop()
        near.destroy()
        far.destroy()
        connections.delete(destroy)
      }
      connections.add(destroy)
      // An error on one side resets the other (a peer's reset crosses as a reset, not an end).
      const failed = (other: net.Socket) => () => {
        if (!other.destroyed) other.resetAndDestroy()
        destroy()
      }
      near.on("error", failed(far))
      far.on("error", failed(near))
      // After both have closed cleanly (each end delivered), there is nothing left to clear.
      let closed = 0
      const onClose = () => ++closed === 2 && destroy()
      near.on("close", onClose)
      far.on("close", onClose)
    }

    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (near) => {
      const abandon = () => {
        clearTimeout(handshake)
        connections.delete(abandon)
        near.destroy()
      }
      const handshake = setTimeout(() => {
        connections.delete(abandon)
        near.off("error", abandon)
        relay(near)
      }, 2 * delayMs)
      connections.add(abandon)
      near.once("error", abandon)
    })
    server.once("error", reject)
    server.listen(listen.port, listen.host, () =>
      resolve({
        close: () =>
          new Promise<void>((closed) => {
            for (const destroy of [...connections]) destroy()
            server.close(() => closed())
          })
      }))
  })
