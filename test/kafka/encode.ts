/**
 * An independent test encoder for the responses the tunnel rewrites, built from plain objects
 * and sharing no code with `src/kafka/` (so a mistake in the codec is not repeated here).
 *
 * Each response is encoded whole, following Kafka's JSON schemas for every version (Metadata
 * v0-12 with topics and partitions, FindCoordinator v0-6, DescribeCluster v0-2, ApiVersions
 * v0-4), then `trailing` bytes. A test encodes an object, rewrites it, and compares the result
 * with the encoding of the same object with the expected addresses: byte for byte.
 *
 * `Writer` chains the same encodings, for the Reader's tests (src's Writer only has what the
 * tunnel writes itself: a broker's Host and Port).
 */

export interface Tag {
  readonly tag: number
  readonly data: Buffer
}

const cat = (parts: ReadonlyArray<Buffer>): Buffer => Buffer.concat(parts)
const none = Buffer.alloc(0)

export const i8 = (n: number) => Buffer.of(n & 0xff)
export const i16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b }
export const i32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b }

export const uvarint = (n: number): Buffer => {
  const out: Array<number> = []
  for (let rest = n; ; rest = Math.floor(rest / 128)) {
    if (rest < 128) { out.push(rest); break }
    out.push((rest % 128) + 128)
  }
  return Buffer.from(out)
}

export const str = (flexible: boolean, s: string | null): Buffer => {
  if (s === null) return flexible ? uvarint(0) : i16(-1)
  const bytes = Buffer.from(s, "utf8")
  return cat([flexible ? uvarint(bytes.length + 1) : i16(bytes.length), bytes])
}

export const arr = <A>(flexible: boolean, items: ReadonlyArray<A> | null, item: (a: A) => Buffer): Buffer => {
  if (items === null) return flexible ? uvarint(0) : i32(-1)
  return cat([flexible ? uvarint(items.length + 1) : i32(items.length), ...items.map(item)])
}

export const tags = (fields: ReadonlyArray<Tag>): Buffer =>
  cat([uvarint(fields.length), ...fields.flatMap((f) => [uvarint(f.tag), uvarint(f.data.length), f.data])])

/** A zigzag 32-bit varint. */
export const varint = (n: number): Buffer => uvarint(((n << 1) ^ (n >> 31)) >>> 0)

/** Every Kafka encoding, chained: bytes for the Reader that the tunnel never writes itself. */
export class Writer {
  private readonly chunks: Array<Buffer> = []

  private add(bytes: Buffer): this {
    this.chunks.push(bytes)
    return this
  }

  int8(n: number): this { return this.add(i8(n)) }
  int16(n: number): this { return this.add(i16(n)) }
  int32(n: number): this { return this.add(i32(n)) }
  int64(n: bigint): this { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return this.add(b) }
  boolean(value: boolean): this { return this.add(i8(value ? 1 : 0)) }
  uvarint(n: number): this { return this.add(uvarint(n)) }
  varint(n: number): this { return this.add(varint(n)) }
  string(value: string | null): this { return this.add(str(false, value)) }
  compactString(value: string | null): this { return this.add(str(true, value)) }
  bytes(value: Buffer | null): this { return this.add(value === null ? i32(-1) : cat([i32(value.length), value])) }
  compactBytes(value: Buffer | null): this { return this.add(value === null ? uvarint(0) : cat([uvarint(value.length + 1), value])) }
  array<A>(items: ReadonlyArray<A> | null, item: (a: A) => Buffer): this { return this.add(arr(false, items, item)) }
  compactArray<A>(items: ReadonlyArray<A> | null, item: (a: A) => Buffer): this { return this.add(arr(true, items, item)) }
  taggedFields(fields: ReadonlyArray<Tag>): this { return this.add(tags(fields)) }

  toBuffer(): Buffer {
    return cat(this.chunks)
  }
}

/** Tags only where the version is flexible. */
const tagsIf = (flexible: boolean, fields: ReadonlyArray<Tag>) => (flexible ? tags(fields) : none)

// ---------------------------------------------------------------- Metadata (key 3), v0-12

export interface MetadataBroker {
  readonly nodeId: number
  readonly host: string
  readonly port: number
  readonly rack: string | null
  readonly tags: ReadonlyArray<Tag>
}

export interface MetadataPartition {
  readonly errorCode: number
  readonly partitionIndex: number
  readonly leaderId: number
  readonly leaderEpoch: number
  readonly replicaNodes: ReadonlyArray<number>
  readonly isrNodes: ReadonlyArray<number>
  readonly offlineReplicas: ReadonlyArray<number>
}

export interface MetadataTopic {
  readonly errorCode: number
  readonly name: string
  readonly topicId: Buffer
  readonly isInternal: boolean
  readonly partitions: ReadonlyArray<MetadataPartition>
  readonly topicAuthorizedOperations: number
}

export interface MetadataResponse {
  readonly correlationId: number
  readonly headerTags: ReadonlyArray<Tag>
  readonly throttleTimeMs: number
  readonly brokers: ReadonlyArray<MetadataBroker>
  readonly clusterId: string | null
  readonly controllerId: number
  readonly topics: ReadonlyArray<MetadataTopic>
  readonly clusterAuthorizedOperations: number
  readonly tags: ReadonlyArray<Tag>
  readonly trailing: Buffer
}

/** The header, ThrottleTimeMs and Brokers: the part of a Metadata response the tunnel reads. */
export const encodeMetadataHead = (v: number, m: MetadataResponse): Buffer => {
  const flex = v >= 9
  return cat([
    i32(m.correlationId), tagsIf(flex, m.headerTags),
    v >= 3 ? i32(m.throttleTimeMs) : none,
    arr(flex, m.brokers, (b) => cat([
      i32(b.nodeId), str(flex, b.host), i32(b.port), v >= 1 ? str(flex, b.rack) : none, tagsIf(flex, b.tags)
    ]))
  ])
}

export const encodeMetadata = (v: number, m: MetadataResponse): Buffer => {
  const flex = v >= 9
  const ids = (nodes: ReadonlyArray<number>) => arr(flex, nodes, i32)
  return cat([
    encodeMetadataHead(v, m),
    v >= 2 ? str(flex, m.clusterId) : none,
    v >= 1 ? i32(m.controllerId) : none,
    arr(flex, m.topics, (t) => cat([
      i16(t.errorCode), str(flex, t.name), v >= 10 ? t.topicId : none, v >= 1 ? i8(t.isInternal ? 1 : 0) : none,
      arr(flex, t.partitions, (p) => cat([
        i16(p.errorCode), i32(p.partitionIndex), i32(p.leaderId), v >= 7 ? i32(p.leaderEpoch) : none,
        ids(p.replicaNodes), ids(p.isrNodes), v >= 5 ? ids(p.offlineReplicas) : none, tagsIf(flex, [])
      ])),
      v >= 8 ? i32(t.topicAuthorizedOperations) : none, tagsIf(flex, [])
    ])),
    v >= 8 && v <= 10 ? i32(m.clusterAuthorizedOperations) : none,
    tagsIf(flex, m.tags),
    m.trailing
  ])
}

// ---------------------------------------------------------------- FindCoordinator (key 10), v0-6

export interface Coordinator {
  readonly key: string
  readonly nodeId: number
  readonly host: string
  readonly port: number
  readonly errorCode: number
  readonly errorMessage: string | null
  readonly tags: ReadonlyArray<Tag>
}

export interface FindCoordinatorResponse {
  readonly correlationId: number
  readonly headerTags: ReadonlyArray<Tag>
  readonly throttleTimeMs: number
  /** v0-3: the one coordinator, inline. */
  readonly errorCode: number
  readonly errorMessage: string | null
  readonly nodeId: number
  readonly host: string
  readonly port: number
  /** v4-6. */
  readonly coordinators: ReadonlyArray<Coordinator>
  readonly tags: ReadonlyArray<Tag>
  readonly trailing: Buffer
}

export const encodeFindCoordinator = (v: number, f: FindCoordinatorResponse): Buffer => {
  const flex = v >= 3
  const head = cat([i32(f.correlationId), tagsIf(flex, f.headerTags)])
  if (v >= 4) {
    return cat([
      head, i32(f.throttleTimeMs),
      arr(true, f.coordinators, (c) => cat([
        str(true, c.key), i32(c.nodeId), str(true, c.host), i32(c.port), i16(c.errorCode), str(true, c.errorMessage), tags(c.tags)
      ])),
      tags(f.tags), f.trailing
    ])
  }
  return cat([
    head, v >= 1 ? i32(f.throttleTimeMs) : none, i16(f.errorCode), v >= 1 ? str(flex, f.errorMessage) : none,
    i32(f.nodeId), str(flex, f.host), i32(f.port), tagsIf(flex, f.tags), f.trailing
  ])
}

// ---------------------------------------------------------------- DescribeCluster (key 60), v0-2

export interface DescribeClusterBroker {
  readonly brokerId: number
  readonly host: string
  readonly port: number
  readonly rack: string | null
  readonly isFenced: boolean
  readonly tags: ReadonlyArray<Tag>
}

export interface DescribeClusterResponse {
  readonly correlationId: number
  readonly headerTags: ReadonlyArray<Tag>
  readonly throttleTimeMs: number
  readonly errorCode: number
  readonly errorMessage: string | null
  readonly endpointType: number
  readonly clusterId: string
  readonly controllerId: number
  readonly brokers: ReadonlyArray<DescribeClusterBroker>
  readonly clusterAuthorizedOperations: number
  readonly tags: ReadonlyArray<Tag>
  readonly trailing: Buffer
}

export const encodeDescribeCluster = (v: number, d: DescribeClusterResponse): Buffer =>
  cat([
    i32(d.correlationId), tags(d.headerTags),
    i32(d.throttleTimeMs), i16(d.errorCode), str(true, d.errorMessage), v >= 1 ? i8(d.endpointType) : none,
    str(true, d.clusterId), i32(d.controllerId),
    arr(true, d.brokers, (b) => cat([
      i32(b.brokerId), str(true, b.host), i32(b.port), str(true, b.rack), v >= 2 ? i8(b.isFenced ? 1 : 0) : none, tags(b.tags)
    ])),
    i32(d.clusterAuthorizedOperations), tags(d.tags), d.trailing
  ])

// ---------------------------------------------------------------- ApiVersions (key 18), v0-4

export interface ApiVersionsEntry {
  readonly apiKey: number
  readonly minVersion: number
  readonly maxVersion: number
  readonly tags: ReadonlyArray<Tag>
}

export interface ApiVersionsResponse {
  readonly correlationId: number
  readonly errorCode: number
  readonly apiKeys: ReadonlyArray<ApiVersionsEntry>
  readonly throttleTimeMs: number
  readonly tags: ReadonlyArray<Tag>
  readonly trailing: Buffer
}

/** Always a v0 header (no tagged fields), even when the body is flexible (v3+). */
export const encodeApiVersions = (v: number, a: ApiVersionsResponse): Buffer => {
  const flex = v >= 3
  return cat([
    i32(a.correlationId), i16(a.errorCode),
    arr(flex, a.apiKeys, (e) => cat([i16(e.apiKey), i16(e.minVersion), i16(e.maxVersion), tagsIf(flex, e.tags)])),
    v >= 1 ? i32(a.throttleTimeMs) : none, tagsIf(flex, a.tags), a.trailing
  ])
}
