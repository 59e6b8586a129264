/**
 * UUIDs as bore's serde/uuid crate reads and writes them.
 *
 * Written: lowercase, hyphenated. Read: any case, hyphenated, simple (32 hex digits), braced
 * (`{...}`) or `urn:uuid:` forms. A JSON array of 16 bytes is NOT accepted (bore rejects it).
 */
import { randomUUID } from "node:crypto"
import { Brand, Effect } from "effect"

/** A UUID in canonical form: lowercase and hyphenated. */
export type Uuid = string & Brand.Brand<"Uuid">

const HYPHENATED = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const SIMPLE = /^[0-9a-fA-F]{32}$/

/** Reads a UUID in any form bore accepts; `undefined` if it is not one. */
export const parseUuid = (text: string): Uuid | undefined => {
  let hyphenated = text
  if (text.startsWith("urn:uuid:")) hyphenated = text.slice("urn:uuid:".length)
  else if (text.startsWith("{") && text.endsWith("}")) hyphenated = text.slice(1, -1)
  else if (SIMPLE.test(text)) {
    hyphenated = [text.slice(0, 8), text.slice(8, 12), text.slice(12, 16), text.slice(16, 20), text.slice(20)]
      .join("-")
  }
  return HYPHENATED.test(hyphenated) ? (hyphenated.toLowerCase() as Uuid) : undefined
}

/** The 16 raw bytes of a UUID (what bore's HMAC signs). */
export const uuidBytes = (id: Uuid): Buffer => Buffer.from(id.replaceAll("-", ""), "hex")

/** A new random (v4) UUID. */
export const randomUuid: Effect.Effect<Uuid> = Effect.sync(() => randomUUID() as Uuid)
