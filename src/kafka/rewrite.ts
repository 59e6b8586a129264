/**
 * Broker-address rewriting for a Kafka-aware tunnel, pure: no I/O.
 *
 * A Kafka client learns broker addresses from Metadata, FindCoordinator and DescribeCluster
 * responses and then connects to them directly, so a tunnel must hand out its own public
 * endpoints instead. It must also keep clients on versions whose layouts it knows, which it does
 * by lowering the MaxVersions in ApiVersions responses to `VERSION_CAPS`.
 *
 * Everything else passes through byte for byte: an edit splices new Host/Port bytes over the old
 * ones (see `response-map.ts`) and copies the rest, including bytes after the parsed body (the
 * librdkafka mock appends an extra 0x00 to Metadata v9+). An API or version whose layout is not
 * known here is returned unchanged rather than guessed at. Bytes that do not fit the layout
 * throw a `KafkaCodecError`.
 */
import { ApiKey, VERSION_CAPS } from "./apis.js"
import { type EndpointSpot, mapResponse } from "./response-map.js"
import { Reader, Writer } from "./wire.js"

export interface RequestHeader {
  readonly apiKey: number
  readonly apiVersion: number
  readonly correlationId: number
}

/**
 * Reads the start of a request (the bytes after the int32 size): api_key int16, api_version
 * int16, correlation_id int32. Throws KafkaCodecError if shorter than 8 bytes.
 */
export const readRequestHeader = (request: Buffer): RequestHeader => {
  const reader = new Reader(request)
  const apiKey = reader.int16()
  const apiVersion = reader.int16()
  const correlationId = reader.int32()
  return { apiKey, apiVersion, correlationId }
}

export interface BrokerAddress {
  readonly nodeId: number
  readonly host: string
  readonly port: number
}

const REWRITTEN: ReadonlySet<number> = new Set([
  ApiKey.Metadata,
  ApiKey.FindCoordinator,
  ApiKey.DescribeCluster,
  ApiKey.ApiVersions
])

/**
 * Whether responses to this request are decoded (to rewrite broker addresses or cap versions):
 * Metadata, FindCoordinator, DescribeCluster and ApiVersions, any version. All others pass
 * through untouched.
 */
export const isRewritten = (header: RequestHeader): boolean => REWRITTEN.has(header.apiKey)

const addressOfSpot = ({ host, nodeId, port }: EndpointSpot): BrokerAddress => ({ nodeId, host, port })

/**
 * The brokers a response names, node id >= 0 only, in order, deduplicated by node id (the first
 * mention wins). `response` is the whole response after the int32 size (starting with
 * correlation_id). Empty for ApiVersions, and for a version whose layout is not known.
 */
export const brokersIn = (header: RequestHeader, response: Buffer): ReadonlyArray<BrokerAddress> => {
  const map = mapResponse(header.apiKey, header.apiVersion, response)
  if (map === undefined) return []
  const seen = new Set<number>()
  const brokers: Array<BrokerAddress> = []
  for (const spot of map.endpoints) {
    if (seen.has(spot.nodeId)) continue
    seen.add(spot.nodeId)
    brokers.push(addressOfSpot(spot))
  }
  return brokers
}

/** A Host then a Port, in the string encoding the spot had. */
const encodeEndpoint = (compact: boolean, host: string, port: number): Buffer => {
  const writer = new Writer()
  if (compact) writer.compactString(host)
  else writer.string(host)
  return writer.int32(port).toBuffer()
}

/**
 * The response with the host and port of every broker with node id >= 0 replaced by
 * `addressOf(broker)` (called once per mention), and for ApiVersions every MaxVersion above
 * VERSION_CAPS lowered to the cap (a 2-byte overwrite in a copy: `response` itself is never
 * modified). Everything else is preserved byte for byte. Returns the response without the size
 * prefix; when there is nothing to change, that is `response` itself.
 */
export const rewriteResponse = (
  header: RequestHeader,
  response: Buffer,
  addressOf: (broker: BrokerAddress) => { readonly host: string; readonly port: number }
): Buffer => {
  const map = mapResponse(header.apiKey, header.apiVersion, response)
  if (map === undefined) return response
  if (map.endpoints.length > 0) {
    const pieces: Array<Buffer> = []
    let copied = 0
    for (const spot of map.endpoints) {
      const { host, port } = addressOf(addressOfSpot(spot))
      pieces.push(response.subarray(copied, spot.start), encodeEndpoint(spot.compact, host, port))
      copied = spot.end
    }
    pieces.push(response.subarray(copied))
    return Buffer.concat(pieces)
  }
  const lowered = map.maxVersions.flatMap((spot) => {
    const cap = VERSION_CAPS.get(spot.apiKey)
    return cap !== undefined && spot.maxVersion > cap ? [{ offset: spot.offset, cap }] : []
  })
  if (lowered.length === 0) return response
  const copy = Buffer.from(response)
  for (const { cap, offset } of lowered) copy.writeInt16BE(cap, offset)
  return copy
}
