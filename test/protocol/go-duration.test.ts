import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { formatGoDuration, parseGoDuration } from "../../src/protocol/go-duration.js"

describe("Go durations (NullBore's ttl)", () => {
  it("reads what time.ParseDuration reads", () => {
    const cases: Array<[string, number]> = [
      ["1h", 3_600_000],
      ["1h30m", 5_400_000],
      ["90s", 90_000],
      ["2.5s", 2500],
      ["500ms", 500],
      [".5h", 1_800_000],
      ["1m0.5s", 60_500],
      ["+3s", 3000],
      ["0", 0],
      ["0s", 0],
      ["1500us", 1]
    ]
    for (const [text, ms] of cases) expect(parseGoDuration(text), text).toEqual(Either.right(ms))
  })

  it("refuses what it refuses, and negative durations", () => {
    for (const text of ["", "1", "h", "1x", "1h 30m", "1.2.3s", "-1h", "1hh", "s1"]) {
      expect(Either.isLeft(parseGoDuration(text)), text).toBe(true)
    }
  })

  it("writes what Duration.String writes", () => {
    expect(formatGoDuration(3_600_000)).toBe("1h0m0s")
    expect(formatGoDuration(5_400_000)).toBe("1h30m0s")
    expect(formatGoDuration(90_000)).toBe("1m30s")
    expect(formatGoDuration(2500)).toBe("2.5s")
    expect(formatGoDuration(500)).toBe("500ms")
    expect(formatGoDuration(0)).toBe("0s")
    expect(formatGoDuration(7_200_001)).toBe("2h0m0.001s")
  })
})
