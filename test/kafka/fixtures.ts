/**
 * Sample responses for the rewrite tests, and the same responses with the addresses a tunnel
 * would hand out. The samples mix what goes wrong in practice: null and very long racks, node
 * ids below 0, a host longer than 127 bytes (so a compact length grows from one varint byte to
 * two and back), unknown tagged fields at every level, and trailing bytes.
 */
import type { BrokerAddress } from "../../src/kafka/rewrite.js"
import type {
  ApiVersionsResponse,
  DescribeClusterResponse,
  FindCoordinatorResponse,
  MetadataResponse,
  Tag
} from "./encode.js"

const tag = (n: number, text: string): Tag => ({ tag: n, data: Buffer.from(text) })

export const LONG_HOST = `${"very-long-label.".repeat(12)}example.com` // 203 bytes
export const LONG_ORIGINAL = `${"b".repeat(200)}.invalid`

/** The tunnel's addresses: node 1 gets a longer host, node 2 a shorter one, node 3 a short one. */
export const tunnelAddress = ({ nodeId }: BrokerAddress): { readonly host: string; readonly port: number } =>
  nodeId === 1 ? { host: LONG_HOST, port: 40001 }
  : nodeId === 2 ? { host: "t2", port: 40002 }
  // Any node id (hostile bytes can name 2^31-1) maps to a real port, as a tunnel's always is.
  : { host: "127.0.0.1", port: 40000 + (nodeId % 20000) }

type WithAddress = { readonly host: string; readonly port: number }

/** An object with host and port replaced as the tunnel should, for node ids >= 0. */
const moved = <A extends WithAddress>(nodeId: number, a: A): A =>
  nodeId < 0 ? a : { ...a, ...tunnelAddress({ nodeId, host: a.host, port: a.port }) }

export const metadata: MetadataResponse = {
  correlationId: 7,
  headerTags: [tag(0, "header"), tag(9, "")],
  throttleTimeMs: 12,
  brokers: [
    { nodeId: 1, host: "kafka-1.invalid", port: 9092, rack: "rack-a", tags: [] },
    { nodeId: 2, host: "kafka-2.invalid", port: 9093, rack: null, tags: [tag(3, "unknown broker tag")] },
    { nodeId: 3, host: LONG_ORIGINAL, port: 9094, rack: "r".repeat(140), tags: [tag(0, "a"), tag(200, "b")] },
    { nodeId: -1, host: "ghost.invalid", port: 1, rack: null, tags: [] }
  ],
  clusterId: "mock-cluster",
  controllerId: 2,
  topics: [{
    errorCode: 0,
    name: "orders",
    topicId: Buffer.alloc(16, 0xab),
    isInternal: false,
    partitions: [
      { errorCode: 0, partitionIndex: 0, leaderId: 1, leaderEpoch: 4, replicaNodes: [1, 2, 3], isrNodes: [1, 2], offlineReplicas: [] },
      { errorCode: 9, partitionIndex: 1, leaderId: -1, leaderEpoch: -1, replicaNodes: [3], isrNodes: [], offlineReplicas: [3] }
    ],
    topicAuthorizedOperations: -2147483648
  }],
  clusterAuthorizedOperations: 0x0ff8,
  tags: [tag(1, "top level")],
  trailing: Buffer.alloc(0)
}

export const metadataMoved = (m: MetadataResponse): MetadataResponse => ({
  ...m,
  brokers: m.brokers.map((b) => moved(b.nodeId, b))
})

export const findCoordinator: FindCoordinatorResponse = {
  correlationId: 0x7fffffff,
  headerTags: [tag(4, "hdr")],
  throttleTimeMs: 0,
  errorCode: 0,
  errorMessage: null,
  nodeId: 2,
  host: "kafka-2.invalid",
  port: 9093,
  coordinators: [
    { key: "group-a", nodeId: 2, host: "kafka-2.invalid", port: 9093, errorCode: 0, errorMessage: null, tags: [] },
    { key: "txn-1", nodeId: -1, host: "", port: -1, errorCode: 15, errorMessage: "not available", tags: [] },
    { key: "group-b", nodeId: 1, host: "kafka-1.invalid", port: 9092, errorCode: 0, errorMessage: "", tags: [tag(2, "x")] },
    { key: "group-c", nodeId: 2, host: "kafka-2.invalid", port: 9093, errorCode: 0, errorMessage: null, tags: [] }
  ],
  tags: [tag(0, "end")],
  trailing: Buffer.alloc(0)
}

/** FindCoordinator v0-3 answering "no coordinator": node id -1, left exactly as it is. */
export const noCoordinator: FindCoordinatorResponse = {
  ...findCoordinator,
  errorCode: 15,
  errorMessage: "The coordinator is not available.",
  nodeId: -1,
  host: "",
  port: -1,
  coordinators: [{ key: "g", nodeId: -1, host: "", port: -1, errorCode: 15, errorMessage: null, tags: [] }]
}

export const findCoordinatorMoved = (f: FindCoordinatorResponse): FindCoordinatorResponse => ({
  ...moved(f.nodeId, f),
  coordinators: f.coordinators.map((c) => moved(c.nodeId, c))
})

export const describeCluster: DescribeClusterResponse = {
  correlationId: 99,
  headerTags: [],
  throttleTimeMs: 5,
  errorCode: 0,
  errorMessage: null,
  endpointType: 1,
  clusterId: "mock-cluster",
  controllerId: 1,
  brokers: [
    { brokerId: 1, host: "kafka-1.invalid", port: 9092, rack: null, isFenced: false, tags: [] },
    { brokerId: 2, host: "kafka-2.invalid", port: 9093, rack: "rack-b", isFenced: true, tags: [tag(5, "t")] },
    { brokerId: -3, host: "odd.invalid", port: 7, rack: null, isFenced: false, tags: [] },
    { brokerId: 3, host: LONG_ORIGINAL, port: 9094, rack: null, isFenced: false, tags: [] }
  ],
  clusterAuthorizedOperations: -2147483648,
  tags: [tag(0, "top")],
  trailing: Buffer.alloc(0)
}

export const describeClusterMoved = (d: DescribeClusterResponse): DescribeClusterResponse => ({
  ...d,
  brokers: d.brokers.map((b) => moved(b.brokerId, b))
})

export const apiVersions: ApiVersionsResponse = {
  correlationId: 1,
  errorCode: 0,
  apiKeys: [
    { apiKey: 0, minVersion: 0, maxVersion: 11, tags: [] }, // Produce: above the cap 9
    { apiKey: 1, minVersion: 4, maxVersion: 17, tags: [] }, // Fetch: above 15
    { apiKey: 2, minVersion: 0, maxVersion: 9, tags: [] }, // ListOffsets: no cap
    { apiKey: 3, minVersion: 0, maxVersion: 13, tags: [tag(0, "entry tag")] }, // Metadata: above 12
    { apiKey: 10, minVersion: 0, maxVersion: 6, tags: [] }, // FindCoordinator: at the cap 6
    { apiKey: 18, minVersion: 0, maxVersion: 4, tags: [] }, // ApiVersions: no cap
    { apiKey: 60, minVersion: 0, maxVersion: 1, tags: [] } // DescribeCluster: below the cap 2
  ],
  throttleTimeMs: 0,
  tags: [tag(0, "SupportedFeatures"), tag(1, "epoch")],
  trailing: Buffer.alloc(0)
}

export const apiVersionsCapped = (a: ApiVersionsResponse): ApiVersionsResponse => {
  const caps = new Map([[0, 9], [1, 15], [3, 12], [10, 6], [60, 2]])
  return {
    ...a,
    apiKeys: a.apiKeys.map((e) => ({ ...e, maxVersion: Math.min(e.maxVersion, caps.get(e.apiKey) ?? e.maxVersion) }))
  }
}
