import { describe, expect, it } from "@effect/vitest"
import { renewalTime } from "../../src/front/acme.js"

const DAY = 24 * 3600_000

describe("renewalTime", () => {
  it("renews a 90-day certificate 30 days before it ends, as certbot does", () => {
    const from = new Date("2026-01-01T00:00:00Z")
    const to = new Date(from.getTime() + 90 * DAY)
    expect(renewalTime(from, to)).toBe(from.getTime() + 60 * DAY)
  })

  it("renews a short certificate with a third of its life left", () => {
    const from = new Date("2026-01-01T00:00:00Z")
    expect(renewalTime(from, new Date(from.getTime() + 9_000))).toBe(from.getTime() + 6_000)
    expect(renewalTime(from, new Date(from.getTime() + 30 * DAY))).toBe(from.getTime() + 20 * DAY)
  })

  it("renews a five-year certificate 30 days before it ends, not a third of five years", () => {
    const from = new Date("2026-01-01T00:00:00Z")
    const to = new Date(from.getTime() + 5 * 365 * DAY)
    expect(renewalTime(from, to)).toBe(to.getTime() - 30 * DAY)
  })
})
