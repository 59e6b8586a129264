import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  ClientMessages,
  decodeClientMessage,
  decodeServerMessage,
  encodeClientMessage,
  encodeServerMessage,
  ServerMessages
} from "../../src/protocol/messages.js"
import { parseUuid, type Uuid } from "../../src/protocol/uuid.js"

const client = (text: string | Buffer) => decodeClientMessage(typeof text === "string" ? Buffer.from(text) : text)
const server = (text: string) => decodeServerMessage(Buffer.from(text))
const id = "16e59492-1470-4b95-bcf5-0dbb6b90b533" as Uuid

describe("messages", () => {
  it("encodes every message exactly as bore's table shows", () => {
    expect(encodeClientMessage({ _tag: "Hello", port: 0 })).toBe("{\"Hello\":0}")
    expect(encodeClientMessage({ _tag: "Authenticate", answer: "ab" })).toBe("{\"Authenticate\":\"ab\"}")
    expect(encodeClientMessage({ _tag: "Accept", id })).toBe(`{"Accept":"${id}"}`)
    expect(encodeServerMessage({ _tag: "Challenge", id })).toBe(`{"Challenge":"${id}"}`)
    expect(encodeServerMessage({ _tag: "Hello", port: 20020 })).toBe("{\"Hello\":20020}")
    expect(encodeServerMessage({ _tag: "Heartbeat" })).toBe("\"Heartbeat\"")
    expect(encodeServerMessage({ _tag: "Connection", id })).toBe(`{"Connection":"${id}"}`)
    expect(encodeServerMessage({ _tag: "Error", message: "invalid secret" })).toBe("{\"Error\":\"invalid secret\"}")
  })

  it("escapes error strings as serde_json does", () => {
    expect(encodeServerMessage({ _tag: "Error", message: "a\"b\\c\n\u0001é/" })).toBe(
      "{\"Error\":\"a\\\"b\\\\c\\n\\u0001é/\"}"
    )
  })

  it("decodes what it encodes", () => {
    for (const message of [
      { _tag: "Hello", port: 65535 },
      { _tag: "Authenticate", answer: "00ff" },
      { _tag: "Accept", id }
    ] as const) {
      expect(client(encodeClientMessage(message))).toEqual(Either.right(message))
    }
    expect(server("\"Heartbeat\"")).toEqual(Either.right({ _tag: "Heartbeat" }))
    expect(server("{\"Heartbeat\":null}")).toEqual(Either.right({ _tag: "Heartbeat" }))
    expect(server("{\"Error\":\"something odd\"}")).toEqual(Either.right({ _tag: "Error", message: "something odd" }))
  })

  it("accepts bore's leniencies (probe-lenient-inputs, probe-accept-uuid-formats)", () => {
    expect(client(" { \"Hello\" : 20011 } ")).toEqual(Either.right({ _tag: "Hello", port: 20011 }))
    const forms = [
      "7C53D0E4-2505-4FA4-8255-15C3BBB7C772",
      "7c53d0e425054fa4825515c3bbb7c772",
      "{7c53d0e4-2505-4fa4-8255-15c3bbb7c772}",
      "urn:uuid:7c53d0e4-2505-4fa4-8255-15c3bbb7c772"
    ]
    for (const form of forms) {
      expect(client(`{"Accept":"${form}"}`)).toEqual(
        Either.right({ _tag: "Accept", id: "7c53d0e4-2505-4fa4-8255-15c3bbb7c772" })
      )
    }
    expect(client("{\"Authenticate\":\"257D3CE9\"}")).toEqual(Either.right({ _tag: "Authenticate", answer: "257D3CE9" }))
  })

  it("rejects what bore rejects (probe-bad-inputs and probe-accept-uuid-formats)", () => {
    const rejected: Array<string | Buffer> = [
      "garbage",
      "",
      Buffer.from([0xff, 0xfe]),
      "{\"hello\":0}",
      "{\"Hello\":\"0\"}",
      "{\"Hello\":65536}",
      "{\"Hello\":-1}",
      "{\"Hello\":1.0}",
      "{\"Hello\":1e2}",
      "{\"Hello\":-0}",
      "{\"Hello\":1,\"Hello\":2}",
      "{\"Hello\":1,\"Accept\":\"x\"}",
      "{\"Hello\":[1]}",
      "\"Heartbeat\"",
      "{\"Ping\":1}",
      "{\"Accept\":[161,166,130,231,253,163,67,96,131,33,19,96,31,214,82,159]}",
      "{\"Accept\":\"not-a-uuid\"}",
      "{\"Accept\":\"{7c53d0e425054fa4825515c3bbb7c772}\"}",
      "\uFEFF{\"Hello\":0}",
      "{\"Hello\":0} x"
    ]
    for (const input of rejected) {
      const result = client(input)
      expect(Either.isLeft(result), `should reject ${JSON.stringify(input.toString())}`).toBe(true)
      if (Either.isLeft(result)) expect(result.left.message).toBe("unable to parse message")
    }
  })

  it("a client rejects variants it does not know, as bore's client does", () => {
    expect(Either.isLeft(server("{\"Ping\":1}"))).toBe(true)
    expect(Either.isLeft(server("{\"Accept\":\"16e59492-1470-4b95-bcf5-0dbb6b90b533\"}"))).toBe(true)
  })

  it("reads UUIDs in every accepted form", () => {
    expect(parseUuid("7C53D0E4-2505-4FA4-8255-15C3BBB7C772")).toBe("7c53d0e4-2505-4fa4-8255-15c3bbb7c772")
    expect(parseUuid("7c53d0e4-2505-4fa4-8255-15c3bbb7c77")).toBeUndefined()
    expect(parseUuid("urn:uuid:7c53d0e425054fa4825515c3bbb7c772")).toBeUndefined()
  })
})

describe("Spore's Visitor frame", () => {
  it("carries the visitor's id and both addresses in the order of a PROXY v1 line", () => {
    const visitor = {
      id: "6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b" as Uuid,
      source: { address: "203.0.113.7", port: 51234 },
      destination: { address: "::ffff:198.51.100.1", port: 20417 }
    }
    const text = encodeServerMessage(ServerMessages.visitor(visitor))
    expect(text).toBe("{\"Visitor\":\"6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b 203.0.113.7 ::ffff:198.51.100.1 51234 20417\"}")
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(256)
    expect(decodeServerMessage(Buffer.from(text))).toEqual(Either.right({ _tag: "Visitor", visitor }))
  })

  it("rejects a line that is not five well-formed fields", () => {
    for (const line of [
      "6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b 203.0.113.7 198.51.100.1 51234",
      "6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b 203.0.113.7 198.51.100.1 51234 20417 extra",
      "not-a-uuid 203.0.113.7 198.51.100.1 51234 20417",
      "6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b example.com 198.51.100.1 51234 20417",
      "6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b 203.0.113.7 198.51.100.1 65536 20417"
    ]) {
      expect(Either.isLeft(decodeServerMessage(Buffer.from(JSON.stringify({ Visitor: line })))), line).toBe(true)
    }
  })

  it("the server answers an offer with the lower of the two versions; a client offers 3", () => {
    expect(encodeServerMessage(ServerMessages.extensions(2))).toBe("{\"Spore\":2}")
    expect(encodeServerMessage(ServerMessages.extensions(3))).toBe("{\"Spore\":3}")
    expect(encodeServerMessage(ServerMessages.extensions(9))).toBe("{\"Spore\":3}")
    expect(encodeClientMessage(ClientMessages.offerExtensions)).toBe("{\"Spore\":3}")
  })

  it("a warm pool stream names its tunnel by the lease token, and nothing else passes for one", () => {
    const token = "0123456789abcdef0123456789abcdef"
    expect(encodeClientMessage(ClientMessages.pool(token))).toBe(`{"Pool":"${token}"}`)
    expect(decodeClientMessage(Buffer.from(`{"Pool":"${token}"}`))).toEqual(Either.right(ClientMessages.pool(token)))
    for (const bad of ["0123", token.toUpperCase(), `${token}0`, 7]) {
      expect(Either.isLeft(decodeClientMessage(Buffer.from(JSON.stringify({ Pool: bad })))), String(bad)).toBe(true)
    }
  })
})
