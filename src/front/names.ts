/**
 * Tunnel names: each is a DNS label, because with a domain it becomes `NAME.<domain>`.
 */
import { Effect, Either, Random } from "effect"

/** Names that would look like the service's own hosts (or invite phishing) if a tunnel took them. */
const RESERVED = new Set(["www", "api", "admin"])

/**
 * A name as a tunnel may use it (Right, lowercased) or what is wrong with it (Left, for a person).
 * The check runs on the text as given, before lowercasing, so that no Unicode character whose
 * lowercase is ASCII (the Kelvin sign lowercases to `k`) slips through.
 */
export const validateName = (text: string): Either.Either<string, string> => {
  if (text.length === 0) return Either.left("name is empty")
  if (text.length > 63) return Either.left("name is longer than 63 characters")
  if (!/^[A-Za-z0-9-]+$/.test(text)) return Either.left("name may hold only letters a-z, digits and -")
  if (text.startsWith("-") || text.endsWith("-")) return Either.left("name may not start or end with -")
  const name = text.toLowerCase()
  if (RESERVED.has(name)) return Either.left("name is reserved")
  return Either.right(name)
}

const LETTERS = "abcdefghijklmnopqrstuvwxyz"
const LETTERS_AND_DIGITS = `${LETTERS}0123456789`

/** One character of `alphabet`, from Effect's `Random` (seeded in tests, so deterministic). */
const pick = (alphabet: string) => Effect.map(Random.nextIntBetween(0, alphabet.length), (index) => alphabet[index]!)

/**
 * A name for a tunnel that did not ask for one: 10 characters of [a-z0-9] starting with a letter
 * (about 2^51 names, too many to guess), so it is a valid label and never a reserved one.
 */
export const randomName: Effect.Effect<string> = Effect.map(
  Effect.all([pick(LETTERS), Effect.replicateEffect(pick(LETTERS_AND_DIGITS), 9)]),
  ([first, rest]) => first + rest.join("")
)
