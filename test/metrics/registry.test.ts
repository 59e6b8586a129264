/**
 * The metric registry over prom-client: what Spore's code records comes out in Prometheus' text
 * format, registries stay apart (tests run several servers in one process), computed metrics
 * are read at each scrape, misuse throws, and process metrics come only when asked for.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeRegistry } from "../../src/metrics/registry.js"

const render = (registry: ReturnType<typeof makeRegistry>) => Effect.promise(() => registry.render())

describe("Registry", () => {
  it.effect("counters: unlabelled ones start at 0; labelled ones have a series per label set", () =>
    Effect.gen(function*() {
      const registry = makeRegistry()
      const accepted = registry.counter("spore_accepted_total", "Connections accepted.")
      const refused = registry.counter("spore_refused_total", "Peers turned away.", ["limit", "side"])
      expect(yield* render(registry)).toContain("# HELP spore_accepted_total Connections accepted.\n# TYPE spore_accepted_total counter\nspore_accepted_total 0\n")
      accepted.inc()
      accepted.inc(undefined, 2.5)
      refused.inc({ limit: "max-visitors", side: "visitor" })
      refused.inc({ limit: "max-visitors", side: "visitor" }, 2)
      refused.inc({ limit: "max-tunnels", side: "client" })
      const text = yield* render(registry)
      expect(text).toContain("\nspore_accepted_total 3.5\n")
      expect(text).toContain("spore_refused_total{limit=\"max-visitors\",side=\"visitor\"} 3\n")
      expect(text).toContain("spore_refused_total{limit=\"max-tunnels\",side=\"client\"} 1\n")
    }))

  it.effect("gauges are set, raised and lowered; histograms count into their buckets", () =>
    Effect.gen(function*() {
      const registry = makeRegistry()
      const waiting = registry.gauge("spore_visitors_waiting", "Visitors waiting.", ["port"])
      waiting.set({ port: "4000" }, 7)
      waiting.dec({ port: "4000" }, 10)
      waiting.inc({ port: "4001" })
      const latency = registry.histogram("spore_seconds", "Time.", [0.1, 1])
      latency.observe({}, 0.05)
      latency.observe({}, 0.5)
      latency.observe({}, 5)
      const text = yield* render(registry)
      expect(text).toContain("spore_visitors_waiting{port=\"4000\"} -3\nspore_visitors_waiting{port=\"4001\"} 1\n")
      expect(text).toContain("spore_seconds_bucket{le=\"0.1\"} 1\nspore_seconds_bucket{le=\"1\"} 2\nspore_seconds_bucket{le=\"+Inf\"} 3\nspore_seconds_sum 5.55\nspore_seconds_count 3\n")
    }))

  it.effect("computed metrics are read at each scrape, with their own labels", () =>
    Effect.gen(function*() {
      const registry = makeRegistry()
      let bytes = 10
      registry.computed("spore_bytes_total", "Bytes.", "counter", ["port", "direction"], () => [
        { labels: { port: "20000", direction: "in" }, value: bytes },
        { labels: { port: "20000", direction: "out" }, value: bytes * 2 }
      ])
      expect(yield* render(registry)).toContain("spore_bytes_total{port=\"20000\",direction=\"in\"} 10\nspore_bytes_total{port=\"20000\",direction=\"out\"} 20\n")
      bytes = 15
      expect(yield* render(registry)).toContain("spore_bytes_total{port=\"20000\",direction=\"in\"} 15\n")
    }))

  it.effect("registries are apart; misuse throws; process metrics only when asked for", () =>
    Effect.gen(function*() {
      const one = makeRegistry()
      const other = makeRegistry()
      one.counter("spore_x_total", "X.").inc()
      other.counter("spore_x_total", "X.")
      expect(yield* render(other)).toContain("\nspore_x_total 0\n")
      expect(() => one.counter("spore_x_total", "again")).toThrow()
      expect(() => one.counter("bad name", "X.")).toThrow()
      const labelled = one.counter("spore_y_total", "Y.", ["port"])
      expect(() => labelled.inc({ nope: "1" })).toThrow()
      expect(() => labelled.inc({ port: "1" }, -1)).toThrow()
      expect(yield* render(one)).not.toContain("process_resident_memory_bytes")
      one.withProcessMetrics()
      const text = yield* render(one)
      for (const name of ["process_resident_memory_bytes", "process_open_fds", "nodejs_eventloop_lag_seconds", "nodejs_gc_duration_seconds"]) {
        expect(text, name).toContain(`# TYPE ${name} `)
      }
      expect(yield* render(other)).not.toContain("process_resident_memory_bytes")
    }))
})
