/**
 * bore's NUL framing: every frame is a JSON text followed by one 0x00 byte.
 *
 * This mirrors tokio's `AnyDelimiterCodec` with a 256-byte limit, which is what bore uses:
 * - a 256-byte body is accepted; the reader fails as soon as 257 bytes are buffered without a
 *   NUL, without waiting for one;
 * - at end of stream, leftover bytes without a NUL are still a final frame.
 *
 * Frames are taken one at a time on demand, never eagerly: after an `Accept` frame the rest of
 * the stream is raw payload (which may well contain NUL bytes), so whatever follows the last
 * frame read must stay untouched for the splice.
 */

/** The longest frame body bore accepts, not counting the NUL. */
export const MAX_FRAME_LENGTH = 256

const NUL = 0

/** The bytes of one frame: the text followed by a NUL. */
export const encodeFrame = (text: string): Buffer => Buffer.from(`${text}\0`, "utf8")

export type FrameResult =
  | { readonly _tag: "Frame"; readonly body: Buffer }
  | { readonly _tag: "NeedMore" }
  | { readonly _tag: "TooLong" }

const needMore: FrameResult = { _tag: "NeedMore" }
const tooLong: FrameResult = { _tag: "TooLong" }

/** Bytes received on a framed stream, from which frames are taken one by one. */
export class FrameBuffer {
  private buffered: Buffer = Buffer.alloc(0)

  /** How many bytes are buffered (frames not yet taken, plus anything after them). */
  get length(): number {
    return this.buffered.length
  }

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk])
  }

  /** Takes the next frame if a whole one is buffered. */
  takeFrame(): FrameResult {
    // Like tokio's codec, look for the NUL only within the first MAX_FRAME_LENGTH + 1 bytes.
    const window = Math.min(this.buffered.length, MAX_FRAME_LENGTH + 1)
    const end = this.buffered.subarray(0, window).indexOf(NUL)
    if (end >= 0) {
      const body = this.buffered.subarray(0, end)
      this.buffered = this.buffered.subarray(end + 1)
      return { _tag: "Frame", body }
    }
    return this.buffered.length > MAX_FRAME_LENGTH ? tooLong : needMore
  }

  /**
   * At end of stream: the next frame, or the unterminated leftover as a final frame
   * (tokio's `decode_eof`). `undefined` once nothing is left.
   */
  takeFinalFrame(): Buffer | "TooLong" | undefined {
    const next = this.takeFrame()
    if (next._tag === "Frame") return next.body
    if (next._tag === "TooLong") return "TooLong"
    if (this.buffered.length === 0) return undefined
    return this.takeRemaining()
  }

  /** Everything buffered past the frames taken so far (raw payload after `Accept`). */
  takeRemaining(): Buffer {
    const rest = this.buffered
    this.buffered = Buffer.alloc(0)
    return rest
  }
}
