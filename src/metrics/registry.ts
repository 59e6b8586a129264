/**
 * A tiny Prometheus metric registry: counters, gauges, histograms and metrics computed at scrape
 * time, rendered in the text exposition format 0.0.4. Pure: no I/O (see `http.ts` for serving).
 *
 * Not Effect's `Metric`: that registry is global to the process, and tests run several servers
 * and clients in one process, each of which must report only its own counts. So every server or
 * client makes its own registry and hands it to whatever it instruments.
 *
 * Updates are plain synchronous calls, since they happen in socket event callbacks on hot paths.
 * Misuse (a duplicate or invalid name, labels other than the declared ones, a counter going
 * down) is a programming error and throws.
 */

export type Labels = Readonly<Record<string, string>>

export interface Counter {
  /** Adds `by` (default 1, never negative) to the series with these labels. */
  readonly inc: (labels?: Labels, by?: number) => void
}

export interface Gauge {
  readonly set: (labels: Labels, value: number) => void
  readonly inc: (labels?: Labels, by?: number) => void
  readonly dec: (labels?: Labels, by?: number) => void
}

export interface Histogram {
  readonly observe: (labels: Labels, value: number) => void
}

/** One sample of a computed metric. */
export interface Sample {
  readonly labels: Labels
  readonly value: number
}

export interface Registry {
  readonly counter: (name: string, help: string, labelNames?: ReadonlyArray<string>) => Counter
  readonly gauge: (name: string, help: string, labelNames?: ReadonlyArray<string>) => Gauge
  /** `buckets`: upper bounds, strictly increasing; the `+Inf` bucket is always added. */
  readonly histogram: (
    name: string, help: string, buckets: ReadonlyArray<number>, labelNames?: ReadonlyArray<string>
  ) => Histogram
  /** A metric whose samples are read only when rendered (e.g. bytes summed over live sockets). */
  readonly computed: (name: string, help: string, type: "counter" | "gauge", read: () => ReadonlyArray<Sample>) => void
  /** Every metric, in registration order, in the text exposition format 0.0.4. */
  readonly render: () => string
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

/** Numbers as Prometheus writes them: `+Inf`, `-Inf`, `NaN`, integers without a decimal point. */
export const formatNumber = (value: number): string =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

const escapeLabelValue = (value: string) =>
  value.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")
const escapeHelp = (help: string) => help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const labelPair = (name: string, value: string) => `${name}="${escapeLabelValue(value)}"`
const braces = (pairs: string) => (pairs === "" ? "" : `{${pairs}}`)

/**
 * The rendered `a="x",b="y"` pairs of one series, in declared order; also the series' key, since
 * escaping makes it one-to-one. Throws unless `labels` has exactly the declared names.
 */
const seriesKey = (metric: string, labelNames: ReadonlyArray<string>, labels: Labels | undefined): string => {
  const given = labels === undefined ? 0 : Object.keys(labels).length
  if (given !== labelNames.length) {
    throw new Error(`${metric}: expected labels [${labelNames.join(", ")}], got [${Object.keys(labels ?? {}).join(", ")}]`)
  }
  let key = ""
  for (const name of labelNames) {
    const value = labels![name]
    if (typeof value !== "string") throw new Error(`${metric}: missing label ${name}`)
    key += (key === "" ? "" : ",") + labelPair(name, value)
  }
  return key
}

/** A counter's or gauge's series: rendered label pairs → value, in first-seen order. */
const makeValues = (name: string, labelNames: ReadonlyArray<string>) => {
  const values = new Map<string, number>()
  if (labelNames.length === 0) values.set("", 0)
  return {
    add: (labels: Labels | undefined, by: number) => {
      const key = seriesKey(name, labelNames, labels)
      values.set(key, (values.get(key) ?? 0) + by)
    },
    set: (labels: Labels, value: number) => values.set(seriesKey(name, labelNames, labels), value),
    render: (lines: Array<string>) => {
      for (const [key, value] of values) lines.push(`${name}${braces(key)} ${formatNumber(value)}`)
    }
  }
}

interface HistogramSeries {
  readonly counts: Array<number> // per bucket, not cumulative; the last one is +Inf
  sum: number
  count: number
}

export const makeRegistry = (): Registry => {
  const renderers: Array<(lines: Array<string>) => void> = []
  const names = new Set<string>()

  const register = (
    name: string,
    help: string,
    type: string,
    labelNames: ReadonlyArray<string>,
    render: (lines: Array<string>) => void
  ) => {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name: ${JSON.stringify(name)}`)
    if (names.has(name)) throw new Error(`metric registered twice: ${name}`)
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__")) {
        throw new Error(`${name}: invalid label name ${JSON.stringify(label)}`)
      }
    }
    if (new Set(labelNames).size !== labelNames.length) throw new Error(`${name}: duplicate label names`)
    names.add(name)
    renderers.push((lines) => {
      lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`)
      render(lines)
    })
  }

  const counter = (name: string, help: string, labelNames: ReadonlyArray<string> = []): Counter => {
    const values = makeValues(name, labelNames)
    register(name, help, "counter", labelNames, values.render)
    return {
      inc: (labels, by = 1) => {
        if (!(by >= 0)) throw new Error(`${name}: a counter cannot be increased by ${by}`)
        values.add(labels, by)
      }
    }
  }

  const gauge = (name: string, help: string, labelNames: ReadonlyArray<string> = []): Gauge => {
    const values = makeValues(name, labelNames)
    register(name, help, "gauge", labelNames, values.render)
    return {
      set: values.set,
      inc: (labels, by = 1) => values.add(labels, by),
      dec: (labels, by = 1) => values.add(labels, -by)
    }
  }

  const histogram = (
    name: string, help: string, buckets: ReadonlyArray<number>, labelNames: ReadonlyArray<string> = []
  ): Histogram => {
    if (labelNames.includes("le")) throw new Error(`${name}: "le" is reserved for histogram buckets`)
    buckets.forEach((bound, i) => {
      if (!Number.isFinite(bound) || (i > 0 && bound <= buckets[i - 1]!)) {
        throw new Error(`${name}: buckets must be finite and strictly increasing`)
      }
    })
    const bounds = [...buckets.map(formatNumber), "+Inf"]
    const series = new Map<string, HistogramSeries>()
    const emptySeries = (): HistogramSeries => ({ counts: bounds.map(() => 0), sum: 0, count: 0 })
    if (labelNames.length === 0) series.set("", emptySeries())
    register(name, help, "histogram", labelNames, (lines) => {
      for (const [key, { count, counts, sum }] of series) {
        const prefix = key === "" ? "" : `${key},`
        let cumulative = 0
        counts.forEach((n, i) => {
          cumulative += n
          lines.push(`${name}_bucket{${prefix}le="${bounds[i]}"} ${cumulative}`)
        })
        lines.push(`${name}_sum${braces(key)} ${formatNumber(sum)}`, `${name}_count${braces(key)} ${count}`)
      }
    })
    return {
      observe: (labels, value) => {
        const key = seriesKey(name, labelNames, labels)
        let entry = series.get(key)
        if (entry === undefined) series.set(key, entry = emptySeries())
        let i = 0
        while (i < buckets.length && !(value <= buckets[i]!)) i++ // NaN lands in +Inf
        entry.counts[i]!++
        entry.sum += value
        entry.count++
      }
    }
  }

  const computed = (name: string, help: string, type: "counter" | "gauge", read: () => ReadonlyArray<Sample>) =>
    register(name, help, type, [], (lines) => {
      for (const { labels, value } of read()) {
        const pairs = Object.entries(labels).map(([label, labelValue]) => {
          if (!LABEL_NAME.test(label)) throw new Error(`${name}: invalid label name ${JSON.stringify(label)}`)
          return labelPair(label, labelValue)
        })
        lines.push(`${name}${braces(pairs.join(","))} ${formatNumber(value)}`)
      }
    })

  const render = () => {
    const lines: Array<string> = []
    for (const renderMetric of renderers) renderMetric(lines)
    return lines.length === 0 ? "" : lines.join("\n") + "\n"
  }

  return { counter, gauge, histogram, computed, render }
}
