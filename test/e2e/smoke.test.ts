import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { clientConfig, echoService, randomPayload, roundTrip, sha256, startServer, startTunnel } from "../support/net.js"

describe("tunnel smoke", () => {
  it.live("echoes bytes through a Spore server and client", () =>
    Effect.gen(function*() {
      const echo = yield* echoService
      const control = yield* startServer()
      const port = yield* startTunnel(clientConfig(control, echo))
      const payload = randomPayload(1 << 20)
      const back = yield* roundTrip(port, payload)
      expect(sha256(back)).toBe(sha256(payload))
    }).pipe(Effect.scoped))
})
