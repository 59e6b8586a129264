/**
 * Where the editable spots sit in the responses the tunnel decodes: the host and port of each
 * broker (Metadata, FindCoordinator, DescribeCluster) and each MaxVersion (ApiVersions).
 *
 * A map, not a decoded object: `rewrite.ts` edits a response by splicing new bytes over these
 * spots and copying every other byte as it came, which keeps tagged fields, racks, the
 * header's tags and trailing bytes exactly as the broker sent them. In every layout a broker's
 * Port follows its Host directly, so one span covers both, and no length or size field encloses
 * a Host (tagged sections are never opened), so a longer or shorter host needs no other fix-up.
 *
 * Metadata is walked only through its Brokers array (the first or second field); the rest is
 * never read. The other three are small and are walked to the end of their body, so a
 * truncated one is caught rather than half-edited. Brokers with a node id below 0 (a
 * FindCoordinator error, say) are not mapped: nothing about them is edited or reported.
 */
import { KafkaCodecError } from "../errors.js"
import { ApiKey, isFlexible } from "./apis.js"
import { Reader } from "./wire.js"

/** Where one broker's address sits: the bytes [start, end) are its Host then its Port. */
export interface EndpointSpot {
  readonly nodeId: number
  readonly host: string
  readonly port: number
  readonly start: number
  readonly end: number
  /** Whether the Host is a compact string (flexible versions) or an int16-length one. */
  readonly compact: boolean
}

/** Where one ApiVersions entry's MaxVersion (int16) sits. */
export interface VersionSpot {
  readonly apiKey: number
  readonly maxVersion: number
  readonly offset: number
}

export interface ResponseMap {
  readonly endpoints: ReadonlyArray<EndpointSpot>
  readonly maxVersions: ReadonlyArray<VersionSpot>
}

/**
 * The newest version of each response layout known here. ApiVersions v4 has the v3 layout
 * (it only changed what SupportedFeatures may contain), and Java clients 3.9+ send it first.
 */
export const MAX_MAPPED_VERSION: ReadonlyMap<number, number> = new Map<number, number>([
  [ApiKey.Metadata, 12],
  [ApiKey.FindCoordinator, 6],
  [ApiKey.DescribeCluster, 2],
  [ApiKey.ApiVersions, 4]
])

/** The Kafka error code a broker answers an ApiVersions version it does not speak with. */
const UNSUPPORTED_VERSION = 35

/** A reader with the string/array/tags encoding of one version bound in. */
class Walk {
  readonly endpoints: Array<EndpointSpot> = []
  readonly maxVersions: Array<VersionSpot> = []

  constructor(readonly reader: Reader, readonly flexible: boolean) {}

  string(): string | null {
    return this.flexible ? this.reader.compactString() : this.reader.string()
  }

  /** Walks an array's items; a null array is walked as an empty one. */
  array(item: () => void): void {
    if (this.flexible) this.reader.compactArray(item)
    else this.reader.array(item)
  }

  tags(): void {
    if (this.flexible) this.reader.taggedFields()
  }

  /** Response header: correlation id, then tagged fields in header v1. */
  header(version: 0 | 1): void {
    this.reader.int32()
    if (version === 1) this.reader.taggedFields()
  }

  /** A broker's Host and Port, after its node id has been read. */
  endpoint(nodeId: number): void {
    const start = this.reader.offset
    const host = this.string()
    const port = this.reader.int32()
    if (nodeId < 0) return
    if (host === null) throw new KafkaCodecError({ reason: "null-host", offset: start, nodeId })
    this.endpoints.push({ nodeId, host, port, start, end: this.reader.offset, compact: this.flexible })
  }
}

const metadata = (walk: Walk, version: number): void => {
  const r = walk.reader
  walk.header(walk.flexible ? 1 : 0)
  if (version >= 3) r.int32() // ThrottleTimeMs
  walk.array(() => {
    walk.endpoint(r.int32())
    if (version >= 1) walk.string() // Rack
    walk.tags()
  })
}

const findCoordinator = (walk: Walk, version: number): void => {
  const r = walk.reader
  walk.header(walk.flexible ? 1 : 0)
  if (version >= 4) {
    r.int32() // ThrottleTimeMs
    walk.array(() => {
      walk.string() // Key
      walk.endpoint(r.int32())
      r.int16() // ErrorCode
      walk.string() // ErrorMessage
      walk.tags()
    })
  } else {
    if (version >= 1) r.int32() // ThrottleTimeMs
    r.int16() // ErrorCode
    if (version >= 1) walk.string() // ErrorMessage
    walk.endpoint(r.int32())
  }
  walk.tags()
}

const describeCluster = (walk: Walk, version: number): void => {
  const r = walk.reader
  walk.header(1)
  r.int32() // ThrottleTimeMs
  r.int16() // ErrorCode
  walk.string() // ErrorMessage
  if (version >= 1) r.int8() // EndpointType
  walk.string() // ClusterId
  r.int32() // ControllerId
  walk.array(() => {
    walk.endpoint(r.int32())
    walk.string() // Rack
    if (version >= 2) r.boolean() // IsFenced
    walk.tags()
  })
  r.int32() // ClusterAuthorizedOperations
  walk.tags()
}

const apiVersions = (walk: Walk, version: number): void => {
  const r = walk.reader
  walk.header(0)
  r.int16() // ErrorCode
  const start = r.offset
  const entry = () => {
    const apiKey = r.int16()
    r.int16() // MinVersion
    const offset = r.offset
    walk.maxVersions.push({ apiKey, maxVersion: r.int16(), offset })
    walk.tags()
  }
  const keys = walk.flexible ? r.compactArray(entry) : r.array(entry)
  // Non-nullable, and a null here is how a v0 answer to a v3 request first shows (see below).
  if (keys === null) throw new KafkaCodecError({ reason: "null-api-keys", offset: start })
  if (version >= 1) r.int32() // ThrottleTimeMs
  walk.tags()
}

const walk = (apiKey: number, version: number, response: Buffer): ResponseMap => {
  const w = new Walk(new Reader(response), isFlexible(apiKey, version))
  if (apiKey === ApiKey.Metadata) metadata(w, version)
  else if (apiKey === ApiKey.FindCoordinator) findCoordinator(w, version)
  else if (apiKey === ApiKey.DescribeCluster) describeCluster(w, version)
  else apiVersions(w, version)
  return { endpoints: w.endpoints, maxVersions: w.maxVersions }
}

/**
 * The editable spots of a response (the bytes after the int32 size), or undefined when this
 * API or version is not one mapped here. Throws KafkaCodecError when the bytes do not fit.
 */
export const mapResponse = (apiKey: number, apiVersion: number, response: Buffer): ResponseMap | undefined => {
  const max = MAX_MAPPED_VERSION.get(apiKey)
  if (max === undefined || apiVersion < 0 || apiVersion > max || !Number.isInteger(apiVersion)) return undefined
  try {
    return walk(apiKey, apiVersion, response)
  } catch (error) {
    // A broker that does not speak the requested ApiVersions version answers UNSUPPORTED_VERSION
    // in the v0 layout; Kafka's own client retries the parse as v0 when the first one fails.
    if (
      apiKey === ApiKey.ApiVersions && apiVersion > 0 && error instanceof KafkaCodecError &&
      response.length >= 6 && response.readInt16BE(4) === UNSUPPORTED_VERSION
    ) {
      try {
        return walk(apiKey, 0, response)
      } catch {
        throw error
      }
    }
    throw error
  }
}
