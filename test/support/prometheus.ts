/** Reading a Prometheus text scrape in tests. */

/** The value of the sample `name` whose labels are exactly `labels`, or undefined. */
export const sampleOf = (text: string, name: string, labels: Record<string, string> = {}): number | undefined => {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`).sort().join(",")
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null || match[1] !== name) continue
    const got = (match[2] ?? "").split(/,(?=[a-zA-Z_]+=")/).filter((pair) => pair !== "").sort().join(",")
    if (got === wanted) return Number(match[3])
  }
  return undefined
}

/** GETs `http://127.0.0.1:port/path` and returns the status and body. */
export const scrape = async (port: number, path = "/metrics") => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: response.status, body: await response.text() }
}
