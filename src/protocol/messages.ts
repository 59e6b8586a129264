/**
 * bore's messages, as serde's externally tagged enums: `{"Hello":20020}`, `"Heartbeat"`.
 *
 * Decoding is as lenient as serde_json and no more: whitespace is fine, UUIDs may take any form
 * the uuid crate reads, but variant names are case-sensitive, a port is a JSON integer in
 * 0..=65535 (not a string, float or negative), an object has exactly one key, and anything that
 * is not UTF-8 or not JSON is a parse error.
 */
import { Either, ParseResult, Schema } from "effect"
import * as net from "node:net"
import { MessageParseError } from "../errors.js"
import { parseUuid, type Uuid } from "./uuid.js"


/** A TCP port as bore sends it (Rust `u16`). */
const Port = Schema.Int.pipe(Schema.between(0, 65535))

/** A UUID read in any form bore accepts, written lowercase and hyphenated. */
const UuidText = Schema.transformOrFail(Schema.String, Schema.String.pipe(Schema.brand("Uuid")), {
  strict: true,
  decode: (text, _, ast) => {
    const id = parseUuid(text)
    return id === undefined ? ParseResult.fail(new ParseResult.Type(ast, text, "not a UUID")) : ParseResult.succeed(id)
  },
  encode: ParseResult.succeed
})

/**
 * One enum variant with a payload: `{"<Tag>": value}` on the wire, `{ _tag, <field>: value }`
 * in Spore.
 */
const variant = <const Tag extends string, const Field extends string, A, I>(
  tag: Tag,
  field: Field,
  value: Schema.Schema<A, I>
) =>
  Schema.transform(
    Schema.Struct({ [tag]: value } as { [K in Tag]: Schema.Schema<A, I> }),
    Schema.Struct({ _tag: Schema.Literal(tag), [field]: Schema.typeSchema(value) } as
      & { _tag: Schema.Literal<[Tag]> }
      & { [K in Field]: Schema.Schema<A> }),
    {
      strict: false,
      decode: (wire) => ({ _tag: tag, [field]: (wire as Record<string, unknown>)[tag] }),
      encode: (message) => ({ [tag]: (message as Record<string, unknown>)[field] })
    }
  )

/** A unit variant: `"<Tag>"` on the wire (serde also reads `{"<Tag>":null}`). */
const unitVariant = <const Tag extends string>(tag: Tag) =>
  Schema.Union(
    Schema.transform(Schema.Literal(tag), Schema.Struct({ _tag: Schema.Literal(tag) }), {
      strict: true,
      decode: () => ({ _tag: tag }),
      encode: () => tag
    }),
    Schema.transform(
      Schema.Struct({ [tag]: Schema.Null } as { [K in Tag]: typeof Schema.Null }),
      Schema.Struct({ _tag: Schema.Literal(tag) }),
      { strict: false, decode: () => ({ _tag: tag }), encode: () => ({ [tag]: null }) }
    )
  )

/**
 * Spore's extensions, within DESIGN.md's compatibility rules:
 * - `{"Spore":3}`: a client offers extensions on its control stream after the Hello reply. A bore
 *   server never reads there, so only a Spore server sees it. (Older clients offer 1 or 2.)
 * - `{"Spore":n}` from the server: its answer to an offer of 2 or more, saying which version it
 *   speaks, the lower of the offer and its own: from 2 it announces visitors with `Visitor`, from
 *   3 it takes warm pool streams. Never sent to a version 1 client, which would not know it.
 * - `{"Lease":"<token>"}`: a Spore server's answer to any offer: the tunnel's port stays reserved
 *   for a while if the control connection is lost, and the token resumes it. Only clients that
 *   made the offer ever receive it.
 * - `{"Resume":"<token>"}`: instead of Hello, a returning client takes its tunnel back. Sent only
 *   to a server that gave a lease; a bore server closes on it, and the client falls back to Hello.
 * - `{"Visitor":"<uuid> <source ip> <destination ip> <source port> <destination port>"}`: in
 *   place of `Connection`, to version 2 clients: the visitor's address and the public address it
 *   reached, in the order of a PROXY protocol v1 line, for `--proxy-protocol`.
 * - `{"Pool":"<token>"}`: instead of Hello, a version 3 client opens a warm data stream of the
 *   tunnel the lease token names. It stays idle until the server hands it a visitor, announced
 *   on that stream itself with a `Visitor` frame, and the bytes follow as after an `Accept`.
 */
export const EXTENSIONS_VERSION = 3

/** The most warm pool streams a server keeps for one tunnel, and so the most a client opens. */
export const MAX_POOL_STREAMS = 64

/** The visitor announced by a `Visitor` frame: who, from where, to which public address. */
export interface VisitorAnnouncement {
  readonly id: Uuid
  readonly source: { readonly address: string; readonly port: number }
  readonly destination: { readonly address: string; readonly port: number }
}

const portOf = (text: string) => /^\d{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : undefined

/** A `Visitor` payload, one line of five fields separated by single spaces; undefined if it is not one. */
const parseVisitorLine = (text: string): VisitorAnnouncement | undefined => {
  const [id, sourceAddress, destinationAddress, sourcePort, destinationPort, ...rest] = text.split(" ")
  const uuid = parseUuid(id ?? "")
  const ports = [portOf(sourcePort ?? ""), portOf(destinationPort ?? "")]
  if (uuid === undefined || rest.length > 0 || net.isIP(sourceAddress ?? "") === 0 || net.isIP(destinationAddress ?? "") === 0 ||
    ports[0] === undefined || ports[1] === undefined) {
    return undefined
  }
  return { id: uuid, source: { address: sourceAddress!, port: ports[0] }, destination: { address: destinationAddress!, port: ports[1] } }
}

const visitorLineOf = (visitor: VisitorAnnouncement) =>
  `${visitor.id} ${visitor.source.address} ${visitor.destination.address} ${visitor.source.port} ${visitor.destination.port}`

const VisitorLine = Schema.transformOrFail(Schema.String, Schema.Struct({
  id: Schema.String.pipe(Schema.brand("Uuid")),
  source: Schema.Struct({ address: Schema.String, port: Schema.Number }),
  destination: Schema.Struct({ address: Schema.String, port: Schema.Number })
}), {
  strict: true,
  decode: (text, _, ast) => {
    const visitor = parseVisitorLine(text)
    return visitor === undefined ? ParseResult.fail(new ParseResult.Type(ast, text, "not a visitor line")) : ParseResult.succeed(visitor)
  },
  encode: (visitor) => ParseResult.succeed(visitorLineOf(visitor as VisitorAnnouncement))
})

/** A lease token: 128 random bits in hex. */
const TOKEN = /^[0-9a-f]{32}$/
const LeaseToken = Schema.String.pipe(Schema.pattern(TOKEN))

/** What a client sends to a server. */
export const ClientMessage = Schema.Union(
  variant("Authenticate", "answer", Schema.String),
  variant("Hello", "port", Port),
  variant("Accept", "id", UuidText),
  variant("Spore", "version", Port),
  variant("Resume", "token", LeaseToken),
  variant("Pool", "token", LeaseToken)
)
export type ClientMessage = typeof ClientMessage.Type

/** What a server sends to a client. */
export const ServerMessage = Schema.Union(
  variant("Challenge", "id", UuidText),
  variant("Hello", "port", Port),
  unitVariant("Heartbeat"),
  variant("Connection", "id", UuidText),
  variant("Error", "message", Schema.String),
  variant("Lease", "token", LeaseToken),
  variant("Spore", "version", Port),
  variant("Visitor", "visitor", VisitorLine)
)
export type ServerMessage = typeof ServerMessage.Type

export const ClientMessages = {
  authenticate: (answer: string): ClientMessage => ({ _tag: "Authenticate", answer }),
  hello: (port: number): ClientMessage => ({ _tag: "Hello", port }),
  accept: (id: Uuid): ClientMessage => ({ _tag: "Accept", id }),
  offerExtensions: { _tag: "Spore", version: EXTENSIONS_VERSION } as ClientMessage,
  resume: (token: string): ClientMessage => ({ _tag: "Resume", token }),
  pool: (token: string): ClientMessage => ({ _tag: "Pool", token })
}

export const ServerMessages = {
  challenge: (id: Uuid): ServerMessage => ({ _tag: "Challenge", id }),
  hello: (port: number): ServerMessage => ({ _tag: "Hello", port }),
  heartbeat: { _tag: "Heartbeat" } as ServerMessage,
  connection: (id: Uuid): ServerMessage => ({ _tag: "Connection", id }),
  error: (message: string): ServerMessage => ({ _tag: "Error", message }),
  lease: (token: string): ServerMessage => ({ _tag: "Lease", token }),
  /** The answer to an offer of `offered`: the version both sides speak. */
  extensions: (offered: number): ServerMessage => ({ _tag: "Spore", version: Math.min(offered, EXTENSIONS_VERSION) }),
  visitor: (visitor: VisitorAnnouncement): ServerMessage => ({ _tag: "Visitor", visitor })
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

/**
 * What serde_json accepts for these enums besides string contents: a bare string, or an object
 * of one key whose value is a string, an unsigned integer or null. JSON.parse alone would also
 * take floats (`1.0`), `-0`, duplicate keys and nested values, which serde rejects.
 */
const STRING_LITERAL = /"(?:[^"\\]|\\.)*"/g
const ENUM_SHAPE = /^\s*(?:""|\{\s*""\s*:\s*(?:""|\d+|null)\s*\})\s*$/

const parseJson = (body: Uint8Array): Either.Either<unknown, MessageParseError> => {
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    return Either.left(new MessageParseError({ reason: "frame is not UTF-8" }))
  }
  if (!ENUM_SHAPE.test(text.replace(STRING_LITERAL, "\"\""))) {
    return Either.left(new MessageParseError({ reason: `not a message: ${JSON.stringify(text)}` }))
  }
  try {
    return Either.right(JSON.parse(text))
  } catch {
    return Either.left(new MessageParseError({ reason: `invalid JSON: ${JSON.stringify(text)}` }))
  }
}

/**
 * The frames every new connection carries (`Heartbeat`, `Connection`, `Visitor`, `Accept`,
 * `Challenge`), read without Schema: decoding them through it cost about 60-90 µs of CPU per
 * connection on each side (profiled). The schemas stay the definition: anything this does not
 * take goes through them, and a property test holds the two to the same answers.
 */
const fastDecode = (json: unknown, tags: ReadonlySet<string>): { readonly _tag: string; readonly [field: string]: unknown } | undefined => {
  if (json === "Heartbeat") return tags.has("Heartbeat") ? { _tag: "Heartbeat" } : undefined
  if (typeof json !== "object" || json === null) return undefined
  const keys = Object.keys(json)
  if (keys.length !== 1 || !tags.has(keys[0]!)) return undefined
  const tag = keys[0]!
  const value = (json as Record<string, unknown>)[tag]
  if (typeof value !== "string") return undefined
  if (tag === "Visitor") {
    const visitor = parseVisitorLine(value)
    return visitor === undefined ? undefined : { _tag: tag, visitor }
  }
  if (tag === "Pool") return TOKEN.test(value) ? { _tag: tag, token: value } : undefined
  const id = parseUuid(value)
  return id === undefined ? undefined : { _tag: tag, id }
}

/** Decoding parsed JSON through the schema alone: the definition `fastDecode` must agree with. */
const schemaDecoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })
  return (json: unknown): Either.Either<A, MessageParseError> =>
    Either.mapLeft(decode(json), (error) => new MessageParseError({ reason: error.message }))
}

const decoder = <A, I>(schema: Schema.Schema<A, I>, fastTags: ReadonlySet<string>) => {
  const slow = schemaDecoder(schema)
  return {
    fast: (body: Uint8Array): Either.Either<A, MessageParseError> =>
      Either.flatMap(parseJson(body), (json) => {
        const fast = fastDecode(json, fastTags)
        return fast === undefined ? slow(json) : Either.right(fast as A)
      }),
    slow: (body: Uint8Array) => Either.flatMap(parseJson(body), slow)
  }
}

const clientDecoder = decoder(ClientMessage, new Set(["Accept", "Pool"]))
const serverDecoder = decoder(ServerMessage, new Set(["Heartbeat", "Connection", "Visitor", "Challenge"]))

/** The field of each variant that holds its payload (`Heartbeat` has none). */
const PAYLOAD: Record<string, string> = {
  Authenticate: "answer",
  Hello: "port",
  Accept: "id",
  Spore: "version",
  Resume: "token",
  Pool: "token",
  Challenge: "id",
  Connection: "id",
  Error: "message",
  Lease: "token",
  Visitor: "visitor"
}

/**
 * serde_json's compact text of a message, written directly (Schema's encoding cost as much as its
 * decoding); `schemaEncoder` below is the definition it is tested against.
 */
const encodeMessage = (message: { readonly _tag: string }): string => {
  if (message._tag === "Heartbeat") return "\"Heartbeat\""
  const value = (message as unknown as Record<string, unknown>)[PAYLOAD[message._tag]!]
  return JSON.stringify({ [message._tag]: message._tag === "Visitor" ? visitorLineOf(value as VisitorAnnouncement) : value })
}

/** Encoding through the schema: the definition `encodeMessage` must match. */
const schemaEncoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const encode = Schema.encodeSync(schema)
  return (message: A): string => JSON.stringify(encode(message))
}

/** A frame body as a client message (what a server reads). */
export const decodeClientMessage = clientDecoder.fast
/** A frame body as a server message (what a client reads). */
export const decodeServerMessage = serverDecoder.fast
/** The compact JSON text of a client message, as serde_json writes it. */
export const encodeClientMessage: (message: ClientMessage) => string = encodeMessage
/** The compact JSON text of a server message, as serde_json writes it. */
export const encodeServerMessage: (message: ServerMessage) => string = encodeMessage

/** The schemas alone, for the tests that hold the fast paths above to them. */
export const BySchema = {
  decodeClientMessage: clientDecoder.slow,
  decodeServerMessage: serverDecoder.slow,
  encodeClientMessage: schemaEncoder(ClientMessage),
  encodeServerMessage: schemaEncoder(ServerMessage)
}
