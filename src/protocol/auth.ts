/**
 * bore's challenge/response authentication.
 *
 * key = SHA-256(UTF-8 secret); answer = hex(HMAC-SHA256(key, the 16 raw bytes of the challenge
 * UUID)). The server compares in constant time and sends nothing on success.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto"
import { Redacted } from "effect"
import type { Uuid } from "./uuid.js"
import { uuidBytes } from "./uuid.js"

export interface Authenticator {
  /** The `Authenticate` answer to a server's challenge. */
  readonly answer: (challenge: Uuid) => string
  /** Whether a client's answer is right; accepts upper- or lowercase hex, like bore. */
  readonly validate: (challenge: Uuid, answer: string) => boolean
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/

export const makeAuthenticator = (secret: Redacted.Redacted<string>): Authenticator => {
  const key = createHash("sha256").update(Redacted.value(secret), "utf8").digest()
  const tag = (challenge: Uuid) => createHmac("sha256", key).update(uuidBytes(challenge)).digest()
  return {
    answer: (challenge) => tag(challenge).toString("hex"),
    validate: (challenge, answer) => {
      if (!HEX.test(answer)) return false
      const given = Buffer.from(answer, "hex")
      const expected = tag(challenge)
      return given.length === expected.length && timingSafeEqual(given, expected)
    }
  }
}
