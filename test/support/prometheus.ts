import { Effect } from "effect"

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

/**
 * Scrapes until `check` holds on the text, at most 100 times 20 ms apart in real time (counts
 * follow socket events, in this process or another); returns the last text either way.
 */
export const scrapeUntil = (port: number, check: (text: string) => boolean) =>
  Effect.gen(function*() {
    let text = ""
    for (let attempt = 0; attempt < 100; attempt++) {
      text = (yield* Effect.promise(() => scrape(port))).body
      if (check(text)) return text
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 20)))
    }
    return text
  })
