import { describe, expect, it } from "@effect/vitest"
import { Redacted } from "effect"
import { makeAuthenticator } from "../../src/protocol/auth.js"
import { parseUuid, type Uuid } from "../../src/protocol/uuid.js"

const uuid = (text: string) => parseUuid(text) as Uuid

describe("auth", () => {
  it("answers the worked example from bore-wire/README.md", () => {
    const auth = makeAuthenticator(Redacted.make("s3cret"))
    expect(auth.answer(uuid("00000000-0000-0000-0000-000000000001"))).toBe(
      "9fd87285792256655c78a1ba11fa6b5cf175d9f9501345b91176cd9ded9df642"
    )
  })

  it("answers with an empty secret and the nil UUID", () => {
    const auth = makeAuthenticator(Redacted.make(""))
    expect(auth.answer(uuid("00000000-0000-0000-0000-000000000000"))).toBe(
      "d12735575423a0e7f53a6191fd5ffe258d92297e771ff55f4ba8e4672bf05aba"
    )
  })

  it("matches the answers recorded from bore in the transcripts", () => {
    // probe-auth-handshake.txt and its uppercase twin; the probes' secret is s3cret.
    const auth = makeAuthenticator(Redacted.make("s3cret"))
    expect(auth.validate(
      uuid("6fa55551-d980-4603-bcac-f3da99cc21b9"),
      "541e9477f19f468856103a6e2bccc94ab544b8df97d4bac69b09065f5a240c2b"
    )).toBe(true)
    expect(auth.validate(
      uuid("e473883a-9892-4ed2-8649-dcb9c55b899e"),
      "257D3CE9781FCA4392E1C42F5712A60DFF1639077A326F423E623BFE5FAFCFB2"
    )).toBe(true)
  })

  it("rejects wrong, malformed and truncated answers", () => {
    const auth = makeAuthenticator(Redacted.make("s3cret"))
    const challenge = uuid("00000000-0000-0000-0000-000000000001")
    const right = auth.answer(challenge)
    expect(auth.validate(challenge, right)).toBe(true)
    expect(auth.validate(challenge, makeAuthenticator(Redacted.make("other")).answer(challenge))).toBe(false)
    expect(auth.validate(challenge, "zz")).toBe(false)
    expect(auth.validate(challenge, "00")).toBe(false)
    expect(auth.validate(challenge, right.slice(0, 63))).toBe(false)
    expect(auth.validate(challenge, right + "00")).toBe(false)
    expect(auth.validate(challenge, "")).toBe(false)
  })
})
