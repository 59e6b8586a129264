/**
 * The byte path: two sockets copied into each other with Node's own piping.
 *
 * Payload never passes through an Effect Stream or Queue (DESIGN.md has the measurements): Node's
 * `pipe` keeps backpressure both ways at a fraction of the cost. Each direction ends on its own:
 * when one side sends FIN, the other side's write half is ended and the opposite direction keeps
 * flowing until it ends too (real half-close, which bore 0.5 lacks). With `allowHalfOpen` and
 * Node's auto-destroy, a socket closes once it has both read and written its end. An error or
 * reset on either side aborts both.
 */
import type * as net from "node:net"
import { Effect } from "effect"

/**
 * Copies `a` into `b` and `b` into `a` until both directions are done, then resolves. `firstToB`
 * is written to `b` before anything read from `a` (bytes read past a frame before the splice).
 * Interrupting the effect destroys both sockets.
 */
export const splice = (a: net.Socket, b: net.Socket, firstToB?: Uint8Array): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const abort = () => {
      a.destroy()
      b.destroy()
    }
    if (a.destroyed || b.destroyed) {
      abort()
      resume(Effect.void)
      return
    }
    let open = 2
    // A side closes normally only after it has read and written its end; the other side may
    // still be flushing, so it is left to finish. Errors (resets included) abort both.
    const onClose = (hadError: boolean) => {
      open -= 1
      if (hadError) abort()
      if (open === 0) resume(Effect.void)
    }
    a.once("close", onClose)
    b.once("close", onClose)
    a.on("error", abort)
    b.on("error", abort)
    if (firstToB !== undefined && firstToB.length > 0) b.write(firstToB)
    a.pipe(b)
    b.pipe(a)
    return Effect.sync(abort)
  })
