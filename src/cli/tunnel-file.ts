/**
 * `spore local --config FILE`: a JSON file that describes the tunnels to open, each with its own
 * local service and options, and optionally the server:
 *
 *   {
 *     "to": "tunnel.example.com", "controlPort": 7835,
 *     "tunnels": [
 *       { "localPort": 3000 },
 *       { "localPort": 5432, "localHost": "db.internal", "port": 20432, "proxyProtocol": "v2" }
 *     ]
 *   }
 *
 * Unknown keys are errors (a typo must not be silently ignored). The secret has no place here:
 * it comes from --secret or SPORE_SECRET, like everywhere else.
 */
import { FileSystem } from "@effect/platform"
import { Effect, Either, ParseResult, Schema } from "effect"
import { UsageError } from "./options.js"

const Port = Schema.Int.pipe(Schema.between(0, 65535))
const LocalPort = Schema.Int.pipe(Schema.between(1, 65535))

export const TunnelEntry = Schema.Struct({
  localPort: LocalPort,
  localHost: Schema.optional(Schema.NonEmptyString),
  port: Schema.optional(Port),
  proxyProtocol: Schema.optional(Schema.Literal("v1", "v2"))
})
export type TunnelEntry = typeof TunnelEntry.Type

export const TunnelFile = Schema.Struct({
  to: Schema.optional(Schema.NonEmptyString),
  controlPort: Schema.optional(LocalPort),
  tunnels: Schema.NonEmptyArray(TunnelEntry)
})
export type TunnelFile = typeof TunnelFile.Type

const decode = Schema.decodeUnknownEither(TunnelFile, { onExcessProperty: "error", errors: "first" })

/** Parses the text of a tunnel file; the error says where it is wrong. */
export const parseTunnelFile = (path: string, text: string): Either.Either<TunnelFile, UsageError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Either.left(new UsageError({ message: `--config ${path}: not JSON: ${(error as Error).message}` }))
  }
  return Either.mapLeft(decode(json), (error) =>
    new UsageError({ message: `--config ${path}: ${ParseResult.TreeFormatter.formatErrorSync(error).replaceAll("\n", " ")}` }))
}

/** Reads and parses a tunnel file. */
export const readTunnelFile = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(
      Effect.mapError((error) => new UsageError({ message: `--config ${path}: cannot read it: ${error.message}` }))
    )
    return yield* parseTunnelFile(path, text)
  })
