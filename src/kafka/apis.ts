/**
 * The Kafka APIs the tunnel knows by number, which of their versions are "flexible", and the
 * version caps it enforces.
 *
 * Flexible versions (KIP-482) use compact strings and arrays and end every struct with a
 * tagged-field section; their responses also carry a header with tagged fields (header v1).
 * ApiVersions is the exception: its response header is always v0, because a client reads it
 * before it knows which versions the broker speaks.
 *
 * Caps: the tunnel can only rewrite the layouts it knows, so it lowers each MaxVersion a broker
 * advertises through ApiVersions to the newest one it can handle. Produce and Fetch are capped
 * below the versions that carry broker addresses in a NodeEndpoints tagged field (Produce v10,
 * Fetch v16), so those responses never need decoding at all.
 */

export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  Metadata: 3,
  FindCoordinator: 10,
  ApiVersions: 18,
  DescribeCluster: 60
} as const

export type ApiKey = (typeof ApiKey)[keyof typeof ApiKey]

/** The first flexible version of each known API (for ApiVersions: of its body only). */
export const FIRST_FLEXIBLE_VERSION: ReadonlyMap<number, number> = new Map<number, number>([
  [ApiKey.Produce, 9],
  [ApiKey.Fetch, 12],
  [ApiKey.Metadata, 9],
  [ApiKey.FindCoordinator, 3],
  [ApiKey.ApiVersions, 3],
  [ApiKey.DescribeCluster, 0]
])

/**
 * Whether this version of the API uses the flexible body encoding. Only the APIs in `ApiKey`
 * are known; any other is answered `false` (the tunnel never decodes those).
 */
export const isFlexible = (apiKey: number, apiVersion: number): boolean => {
  const first = FIRST_FLEXIBLE_VERSION.get(apiKey)
  return first !== undefined && apiVersion >= first
}

/** The response header version: 1 (with tagged fields) when flexible, else 0; ApiVersions always 0. */
export const responseHeaderVersion = (apiKey: number, apiVersion: number): 0 | 1 =>
  apiKey !== ApiKey.ApiVersions && isFlexible(apiKey, apiVersion) ? 1 : 0

/** The newest version of each API that clients may use through the tunnel. */
export const VERSION_CAPS: ReadonlyMap<number, number> = new Map<number, number>([
  [ApiKey.Produce, 9],
  [ApiKey.Fetch, 15],
  [ApiKey.Metadata, 12],
  [ApiKey.FindCoordinator, 6],
  [ApiKey.DescribeCluster, 2]
])
