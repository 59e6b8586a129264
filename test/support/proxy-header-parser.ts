/**
 * A reader of PROXY protocol headers, as a local service behind `spore local --proxy-protocol`
 * would have one: written from HAProxy's spec, independently of the encoder it checks.
 */
export interface ParsedProxyHeader {
  readonly version: 1 | 2
  /** "TCP4", "TCP6", "UNKNOWN" (v1) or "LOCAL" (v2). */
  readonly kind: string
  readonly source?: { address: string; port: number }
  readonly destination?: { address: string; port: number }
  /** How many bytes the header took. */
  readonly length: number
}

const SIGNATURE = "0d0a0d0a000d0a515549540a"

const ipv6Text = (bytes: Buffer) => {
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  return groups.join(":")
}

/** Parses the header at the start of `data`; throws if there is none or it is malformed. */
export const parseProxyHeader = (data: Buffer): ParsedProxyHeader => {
  if (data.subarray(0, 12).toString("hex") === SIGNATURE) {
    const versionCommand = data[12]!
    const family = data[13]!
    const length = data.readUInt16BE(14)
    if (versionCommand >> 4 !== 2) throw new Error(`bad version ${versionCommand >> 4}`)
    if ((versionCommand & 0x0f) === 0) return { version: 2, kind: "LOCAL", length: 16 + length }
    const block = data.subarray(16, 16 + length)
    if (family === 0x11) {
      return {
        version: 2,
        kind: "TCP4",
        source: { address: [...block.subarray(0, 4)].join("."), port: block.readUInt16BE(8) },
        destination: { address: [...block.subarray(4, 8)].join("."), port: block.readUInt16BE(10) },
        length: 16 + length
      }
    }
    if (family === 0x21) {
      return {
        version: 2,
        kind: "TCP6",
        source: { address: ipv6Text(block.subarray(0, 16)), port: block.readUInt16BE(32) },
        destination: { address: ipv6Text(block.subarray(16, 32)), port: block.readUInt16BE(34) },
        length: 16 + length
      }
    }
    throw new Error(`unsupported family ${family}`)
  }
  const end = data.indexOf("\r\n")
  if (end < 0 || end > 105) throw new Error("no version 1 header line")
  const [proxy, kind, source, destination, sourcePort, destinationPort] = data.subarray(0, end).toString("latin1").split(" ")
  if (proxy !== "PROXY") throw new Error("not a PROXY header")
  if (kind === "UNKNOWN") return { version: 1, kind, length: end + 2 }
  return {
    version: 1,
    kind: kind!,
    source: { address: source!, port: Number(sourcePort) },
    destination: { address: destination!, port: Number(destinationPort) },
    length: end + 2
  }
}
