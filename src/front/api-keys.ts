/**
 * The API keys of the HTTP front (`--api-keys FILE`): one key per line; blank lines and lines
 * starting with `#` are skipped. A key's owner is known by a short fingerprint (the first 12 hex
 * digits of its SHA-256), which is what logs and tunnels carry: a key itself never leaves here.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import { readFileSync } from "node:fs"
import { Either, Option } from "effect"

/** Who owns a tunnel: the fingerprint of the key that created it. */
export type Owner = string & { readonly _brand: "Owner" }

/** The shortest key accepted: shorter ones are too easy to guess. */
export const MIN_KEY_LENGTH = 16

export interface ApiKeys {
  /** The owner of the key in an `Authorization: Bearer KEY` header, if it is one of ours. */
  readonly ownerOf: (authorization: string | undefined) => Option.Option<Owner>
  readonly size: number
}

const digest = (key: string) => createHash("sha256").update(key, "utf8").digest()

/**
 * The key an `Authorization: Bearer KEY` header presents, or undefined when there is none: no
 * header, or one no key can match (another scheme, no token). Only a presented key is a guess.
 */
export const presentedKey = (authorization: string | undefined): string | undefined =>
  /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1]

/** Parses the file's text; Left is a problem to show the operator. */
export const parseApiKeys = (text: string): Either.Either<ApiKeys, string> => {
  const digests: Array<Buffer> = []
  const lines = text.split(/\r?\n/)
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim()
    if (line === "" || line.startsWith("#")) continue
    if (/\s/.test(line)) return Either.left(`line ${index + 1}: a key may not contain spaces`)
    if (line.length < MIN_KEY_LENGTH) return Either.left(`line ${index + 1}: a key must be at least ${MIN_KEY_LENGTH} characters`)
    digests.push(digest(line))
  }
  if (digests.length === 0) return Either.left("no keys in the file")
  const ownerOf = (authorization: string | undefined): Option.Option<Owner> => {
    const key = presentedKey(authorization)
    if (key === undefined) return Option.none()
    const candidate = digest(key)
    // Compared against every key in constant time: which key matched leaks nothing either.
    let found: Buffer | undefined
    for (const known of digests) if (timingSafeEqual(known, candidate)) found = known
    return found === undefined ? Option.none() : Option.some(found.toString("hex").slice(0, 12) as Owner)
  }
  return Either.right({ ownerOf, size: digests.length })
}

/** Reads and parses the file. */
export const loadApiKeys = (path: string): Either.Either<ApiKeys, string> => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (error) {
    return Either.left(`cannot read ${path}: ${(error as Error).message}`)
  }
  return Either.mapLeft(parseApiKeys(text), (problem) => `${path}: ${problem}`)
}
