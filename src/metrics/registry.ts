/**
 * The metrics of one program instance, on prom-client: counters, gauges, histograms, metrics
 * computed when scraped, and Node's process metrics, rendered in Prometheus' text format.
 *
 * One prom-client `Registry` per server or client, never prom-client's global one: tests run
 * several servers and clients in one process, each of which must report only its own counts (the
 * reason Spore once wrote its own registry). This module keeps the small interface the rest of
 * Spore uses, so nothing else knows which library is underneath.
 *
 * Updates are plain synchronous calls, since they happen in socket event callbacks on hot paths.
 * Misuse (a duplicate or invalid name, labels other than the declared ones, a counter going
 * down) is a programming error and throws, as prom-client does.
 */
import * as Prometheus from "prom-client"

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
  /** A metric whose samples are read only when scraped (e.g. bytes summed over live sockets). */
  readonly computed: (
    name: string, help: string, type: "counter" | "gauge", labelNames: ReadonlyArray<string>, read: () => ReadonlyArray<Sample>
  ) => void
  /**
   * Adds Node's process metrics (CPU, RSS, open file descriptors, event-loop lag, GC, heap): for a
   * program's own registry only, since they watch the whole process and keep observers running.
   */
  readonly withProcessMetrics: () => void
  /** Every metric in the text exposition format. */
  readonly render: () => Promise<string>
  readonly contentType: string
}

export const makeRegistry = (): Registry => {
  const registry = new Prometheus.Registry()
  const registers = [registry]
  const labelled = (labels: Labels | undefined) => (labels ?? {}) as Prometheus.LabelValues<string>

  return {
    counter: (name, help, labelNames = []) => {
      const counter = new Prometheus.Counter({ name, help, labelNames: [...labelNames], registers })
      return { inc: (labels, by = 1) => counter.inc(labelled(labels), by) }
    },
    gauge: (name, help, labelNames = []) => {
      const gauge = new Prometheus.Gauge({ name, help, labelNames: [...labelNames], registers })
      return {
        set: (labels, value) => gauge.set(labelled(labels), value),
        inc: (labels, by = 1) => gauge.inc(labelled(labels), by),
        dec: (labels, by = 1) => gauge.dec(labelled(labels), by)
      }
    },
    histogram: (name, help, buckets, labelNames = []) => {
      const histogram = new Prometheus.Histogram({ name, help, buckets: [...buckets], labelNames: [...labelNames], registers })
      return { observe: (labels, value) => histogram.observe(labelled(labels), value) }
    },
    computed: (name, help, type, labelNames, read) => {
      const options = { name, help, labelNames: [...labelNames], registers }
      if (type === "counter") {
        new Prometheus.Counter({
          ...options,
          collect() {
            this.reset()
            for (const { labels, value } of read()) this.inc(labelled(labels), value)
          }
        })
      } else {
        new Prometheus.Gauge({
          ...options,
          collect() {
            this.reset()
            for (const { labels, value } of read()) this.set(labelled(labels), value)
          }
        })
      }
    },
    withProcessMetrics: () => {
      Prometheus.collectDefaultMetrics({ register: registry })
      // Gauges that prom-client names like counters (promtool refuses them); their per-type
      // siblings (nodejs_active_handles, ...) say the same.
      for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
        registry.removeSingleMetric(name)
      }
    },
    render: () => registry.metrics(),
    contentType: registry.contentType
  }
}
