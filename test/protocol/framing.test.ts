import { describe, expect, it } from "@effect/vitest"
import { encodeFrame, FrameBuffer, MAX_FRAME_LENGTH } from "../../src/protocol/framing.js"

const bufferOf = (...chunks: Array<string | Buffer>) => {
  const frames = new FrameBuffer()
  for (const chunk of chunks) frames.push(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk)
  return frames
}

describe("framing", () => {
  it("writes compact text followed by one NUL", () => {
    expect(encodeFrame("{\"Hello\":0}").toString("hex")).toBe("7b2248656c6c6f223a307d00")
  })

  it("takes frames one at a time and leaves what follows untouched", () => {
    const frames = bufferOf("{\"Accept\":\"x\"}\0raw\0bytes")
    const first = frames.takeFrame()
    expect(first._tag === "Frame" && first.body.toString()).toBe("{\"Accept\":\"x\"}")
    expect(frames.takeRemaining().toString("latin1")).toBe("raw\0bytes")
  })

  it("joins a frame split across chunks", () => {
    const frames = bufferOf("{\"Hel", "lo\":1}\0")
    const frame = frames.takeFrame()
    expect(frame._tag === "Frame" && frame.body.toString()).toBe("{\"Hello\":1}")
  })

  it("accepts a 256-byte body and rejects 257 bytes without a NUL at once", () => {
    const body256 = "x".repeat(MAX_FRAME_LENGTH)
    expect(bufferOf(body256 + "\0").takeFrame()._tag).toBe("Frame")
    // 257 bytes then NUL: the NUL lies beyond the window, so it is too long.
    expect(bufferOf("x".repeat(257) + "\0").takeFrame()._tag).toBe("TooLong")
    // 256 bytes with no NUL keeps waiting; the 257th byte fails without waiting for a NUL.
    const slow = bufferOf(body256)
    expect(slow.takeFrame()._tag).toBe("NeedMore")
    slow.push(Buffer.from("A"))
    expect(slow.takeFrame()._tag).toBe("TooLong")
  })

  it("at end of stream decodes leftover bytes without a NUL as a final frame", () => {
    const frames = bufferOf("{\"Hello\":20013}")
    expect(frames.takeFrame()._tag).toBe("NeedMore")
    expect(frames.takeFinalFrame()?.toString()).toBe("{\"Hello\":20013}")
    expect(frames.takeFinalFrame()).toBeUndefined()
  })

  it("an empty frame is an empty body", () => {
    const frame = bufferOf("\0").takeFrame()
    expect(frame._tag === "Frame" && frame.body.length).toBe(0)
  })
})
