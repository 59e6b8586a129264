/**
 * The body of `POST /v1/tunnels`, NullBore's create request, checked field by field:
 *
 *   name          string   the name to take (random when absent)
 *   local_port    integer  1-65535: the client's local port, shown in the API (NullBore's
 *                          clients always send it; Spore's own send it too, it is optional here)
 *   ttl           string   a Go duration ("1h", "90m", "1h30m"): the tunnel then ends that long
 *                          after creation, its control connection closed with 1000 so its
 *                          client does not come back. Absent or "0": it lives as long as its
 *                          client (NullBore's hosted service defaults to 1h; that is its quota)
 *   idle_ttl      boolean  the ttl counts from the tunnel's last request instead
 *   device_name   string   shown in the API
 *   source        string   shown in the API ("cli", "daemon")
 *   auth_user     string   with auth_pass: visitors must give them (HTTP basic auth), which
 *   auth_pass     string   the front checks and takes off before the app sees the request
 *   host_header   string   Spore's own: the Host the app is sent instead of the visitor's (dev
 *                          servers such as Vite refuse a foreign one); X-Forwarded-Host keeps it
 *
 * Anything else is refused by name, so that a typo is not silently ignored.
 */
import { Duration, Either, Option } from "effect"
import { ApiRefusal } from "../errors.js"
import { parseGoDuration } from "../protocol/go-duration.js"
import type { CreateOptions } from "./http-tunnels.js"

/** Longest text accepted in device_name, source, auth_user and auth_pass. */
export const MAX_FIELD_LENGTH = 256

const FIELDS = new Set(["name", "local_port", "ttl", "idle_ttl", "device_name", "source", "auth_user", "auth_pass", "host_header"])

/** A Host value: a name or an address, with a port if any (no spaces, no controls, no path). */
const HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/

/** Whether `text` may be sent as a request's Host (`host_header`, `spore http --host-header`). */
export const isHostValue = (text: string) => HOST.test(text)

export interface CreateRequest {
  readonly name: Option.Option<string>
  readonly options: CreateOptions
}

const refuse = (detail: string) => Either.left(new ApiRefusal({ reason: "bad-body", detail }))

const optionalText = (body: Record<string, unknown>, field: string): Either.Either<Option.Option<string>, ApiRefusal> => {
  const value = body[field]
  if (value === undefined || value === null || value === "") return Either.right(Option.none())
  if (typeof value !== "string") return refuse(`${field} must be a string`)
  if (value.length > MAX_FIELD_LENGTH) return refuse(`${field} is longer than ${MAX_FIELD_LENGTH} characters`)
  return Either.right(Option.some(value))
}

/** Checks a parsed JSON body; a refusal is a 400 saying what is wrong. */
export const checkCreateRequest = (body: unknown): Either.Either<CreateRequest, ApiRefusal> =>
  Either.gen(function*() {
    if (typeof body !== "object" || body === null || Array.isArray(body)) return yield* refuse("the body must be a JSON object")
    const fields = body as Record<string, unknown>
    const unknown = Object.keys(fields).filter((key) => !FIELDS.has(key))
    if (unknown.length > 0) return yield* refuse(`unknown field ${unknown[0]}`)

    const name = yield* optionalText(fields, "name")
    const port = fields.local_port
    if (port !== undefined && port !== null && (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535)) {
      return yield* refuse("local_port must be 1-65535")
    }
    const ttlText = fields.ttl
    let ttl = Option.none<Duration.Duration>()
    if (ttlText !== undefined && ttlText !== null && ttlText !== "") {
      if (typeof ttlText !== "string") return yield* refuse(`ttl must be a duration such as "1h"`)
      const ms = parseGoDuration(ttlText)
      if (Either.isLeft(ms)) return yield* refuse(`invalid ttl: ${ms.left}`)
      if (ms.right > 0) ttl = Option.some(Duration.millis(ms.right))
    }
    const idle = fields.idle_ttl
    if (idle !== undefined && idle !== null && typeof idle !== "boolean") return yield* refuse("idle_ttl must be true or false")

    const user = yield* optionalText(fields, "auth_user")
    const password = yield* optionalText(fields, "auth_pass")
    if (Option.isSome(user) !== Option.isSome(password)) return yield* refuse("auth_user and auth_pass go together")
    if (Option.isSome(user) && user.value.includes(":")) return yield* refuse("auth_user may not contain a colon")

    const hostHeader = yield* optionalText(fields, "host_header")
    if (Option.isSome(hostHeader) && !isHostValue(hostHeader.value)) return yield* refuse("host_header must be a host, with a port if any")

    return {
      name,
      options: {
        hostHeader,
        ttl,
        idleTtl: idle === true,
        localPort: typeof port === "number" ? Option.some(port) : Option.none(),
        deviceName: yield* optionalText(fields, "device_name"),
        source: yield* optionalText(fields, "source"),
        basicAuth: Option.zipWith(user, password, (user, password) => ({ user, password }))
      }
    }
  })
