import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { formatNumber, makeRegistry } from "../../src/metrics/registry.js"

const lines = (...text: Array<string>) => text.join("\n") + "\n"

describe("Registry", () => {
  it.effect("renders an unlabelled counter, 0 before any increment", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const accepted = registry.counter("spore_accepted_total", "Connections accepted.")
      expect(registry.render()).toBe(lines(
        "# HELP spore_accepted_total Connections accepted.",
        "# TYPE spore_accepted_total counter",
        "spore_accepted_total 0"
      ))
      accepted.inc()
      accepted.inc(undefined, 2.5)
      accepted.inc({})
      expect(registry.render()).toBe(lines(
        "# HELP spore_accepted_total Connections accepted.",
        "# TYPE spore_accepted_total counter",
        "spore_accepted_total 4.5"
      ))
    }))

  it.effect("renders a labelled counter's series in first-seen order, labels in declared order", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const refused = registry.counter("spore_refused_total", "Peers turned away.", ["limit", "side"])
      expect(registry.render()).toBe(lines(
        "# HELP spore_refused_total Peers turned away.",
        "# TYPE spore_refused_total counter"
      ))
      refused.inc({ side: "visitor", limit: "max-visitors" })
      refused.inc({ limit: "max-tunnels", side: "client" }, 3)
      refused.inc({ limit: "max-visitors", side: "visitor" })
      expect(registry.render()).toBe(lines(
        "# HELP spore_refused_total Peers turned away.",
        "# TYPE spore_refused_total counter",
        "spore_refused_total{limit=\"max-visitors\",side=\"visitor\"} 2",
        "spore_refused_total{limit=\"max-tunnels\",side=\"client\"} 3"
      ))
    }))

  it.effect("renders gauges that are set, raised and lowered", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const tunnels = registry.gauge("spore_tunnels", "Tunnels open.")
      const waiting = registry.gauge("spore_visitors_waiting", "Visitors waiting.", ["port"])
      tunnels.inc()
      tunnels.inc(undefined, 2)
      tunnels.dec()
      waiting.set({ port: "4000" }, 7)
      waiting.dec({ port: "4000" }, 10)
      waiting.inc({ port: "4001" })
      expect(registry.render()).toBe(lines(
        "# HELP spore_tunnels Tunnels open.",
        "# TYPE spore_tunnels gauge",
        "spore_tunnels 2",
        "# HELP spore_visitors_waiting Visitors waiting.",
        "# TYPE spore_visitors_waiting gauge",
        "spore_visitors_waiting{port=\"4000\"} -3",
        "spore_visitors_waiting{port=\"4001\"} 1"
      ))
      tunnels.set({}, 0.25)
      expect(registry.render()).toContain("\nspore_tunnels 0.25\n")
    }))

  it.effect("renders a histogram with cumulative buckets, +Inf, sum and count", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const latency = registry.histogram("spore_handshake_seconds", "Handshake time.", [0.1, 1, 5])
      expect(registry.render()).toBe(lines(
        "# HELP spore_handshake_seconds Handshake time.",
        "# TYPE spore_handshake_seconds histogram",
        "spore_handshake_seconds_bucket{le=\"0.1\"} 0",
        "spore_handshake_seconds_bucket{le=\"1\"} 0",
        "spore_handshake_seconds_bucket{le=\"5\"} 0",
        "spore_handshake_seconds_bucket{le=\"+Inf\"} 0",
        "spore_handshake_seconds_sum 0",
        "spore_handshake_seconds_count 0"
      ))
      // On a bound counts as within it (le = "less than or equal").
      for (const value of [0.05, 0.1, 0.5, 1, 3, 7.5]) latency.observe({}, value)
      expect(registry.render()).toBe(lines(
        "# HELP spore_handshake_seconds Handshake time.",
        "# TYPE spore_handshake_seconds histogram",
        "spore_handshake_seconds_bucket{le=\"0.1\"} 2",
        "spore_handshake_seconds_bucket{le=\"1\"} 4",
        "spore_handshake_seconds_bucket{le=\"5\"} 5",
        "spore_handshake_seconds_bucket{le=\"+Inf\"} 6",
        "spore_handshake_seconds_sum 12.15",
        "spore_handshake_seconds_count 6"
      ))
    }))

  it.effect("renders a labelled histogram with le after the other labels, only once observed", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const sizes = registry.histogram("spore_frame_bytes", "Frame sizes.", [16, 256], ["direction"])
      expect(registry.render()).toBe(lines(
        "# HELP spore_frame_bytes Frame sizes.",
        "# TYPE spore_frame_bytes histogram"
      ))
      sizes.observe({ direction: "in" }, 300)
      sizes.observe({ direction: "out" }, 16)
      sizes.observe({ direction: "in" }, 10)
      expect(registry.render()).toBe(lines(
        "# HELP spore_frame_bytes Frame sizes.",
        "# TYPE spore_frame_bytes histogram",
        "spore_frame_bytes_bucket{direction=\"in\",le=\"16\"} 1",
        "spore_frame_bytes_bucket{direction=\"in\",le=\"256\"} 1",
        "spore_frame_bytes_bucket{direction=\"in\",le=\"+Inf\"} 2",
        "spore_frame_bytes_sum{direction=\"in\"} 310",
        "spore_frame_bytes_count{direction=\"in\"} 2",
        "spore_frame_bytes_bucket{direction=\"out\",le=\"16\"} 1",
        "spore_frame_bytes_bucket{direction=\"out\",le=\"256\"} 1",
        "spore_frame_bytes_bucket{direction=\"out\",le=\"+Inf\"} 1",
        "spore_frame_bytes_sum{direction=\"out\"} 16",
        "spore_frame_bytes_count{direction=\"out\"} 1"
      ))
    }))

  it.effect("reads computed metrics at every render", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      let sockets = [{ port: "4000", bytes: 10 }]
      registry.computed("spore_bytes_total", "Bytes moved.", "counter", () =>
        sockets.map(({ bytes, port }) => ({ labels: { port }, value: bytes })))
      registry.computed("spore_uptime_seconds", "Uptime.", "gauge", () => [{ labels: {}, value: 12 }])
      registry.computed("spore_nothing", "Nothing yet.", "gauge", () => [])
      expect(registry.render()).toBe(lines(
        "# HELP spore_bytes_total Bytes moved.",
        "# TYPE spore_bytes_total counter",
        "spore_bytes_total{port=\"4000\"} 10",
        "# HELP spore_uptime_seconds Uptime.",
        "# TYPE spore_uptime_seconds gauge",
        "spore_uptime_seconds 12",
        "# HELP spore_nothing Nothing yet.",
        "# TYPE spore_nothing gauge"
      ))
      sockets = [{ port: "4000", bytes: 25 }, { port: "4001", bytes: 1 }]
      expect(registry.render()).toContain(lines(
        "spore_bytes_total{port=\"4000\"} 25",
        "spore_bytes_total{port=\"4001\"} 1"
      ))
    }))

  it.effect("escapes label values (backslash, quote, newline) and help text (backslash, newline)", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const seen = registry.counter("spore_seen_total", "Seen \\ counted\nacross \"lines\".", ["name"])
      seen.inc({ name: "a\\b\"c\nd" })
      registry.computed("spore_computed", "Computed.", "gauge", () => [{ labels: { path: "C:\\\"x\"" }, value: 1 }])
      expect(registry.render()).toBe(lines(
        "# HELP spore_seen_total Seen \\\\ counted\\nacross \"lines\".",
        "# TYPE spore_seen_total counter",
        "spore_seen_total{name=\"a\\\\b\\\"c\\nd\"} 1",
        "# HELP spore_computed Computed.",
        "# TYPE spore_computed gauge",
        "spore_computed{path=\"C:\\\\\\\"x\\\"\"} 1"
      ))
    }))

  it.effect("renders metrics in registration order, whatever order they are updated in", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const b = registry.gauge("b", "B.")
      const a = registry.counter("a", "A.")
      registry.computed("c", "C.", "gauge", () => [{ labels: {}, value: 3 }])
      a.inc()
      b.set({}, 2)
      expect(registry.render()).toBe(lines(
        "# HELP b B.",
        "# TYPE b gauge",
        "b 2",
        "# HELP a A.",
        "# TYPE a counter",
        "a 1",
        "# HELP c C.",
        "# TYPE c gauge",
        "c 3"
      ))
    }))

  it.effect("keeps each registry's counts to itself", () =>
    Effect.sync(() => {
      const one = makeRegistry()
      const two = makeRegistry()
      one.counter("spore_accepted_total", "Accepted.").inc()
      two.counter("spore_accepted_total", "Accepted.")
      expect(one.render()).toContain("\nspore_accepted_total 1\n")
      expect(two.render()).toContain("\nspore_accepted_total 0\n")
      expect(makeRegistry().render()).toBe("")
    }))

  it.effect("formats numbers as Prometheus does", () =>
    Effect.sync(() => {
      expect([0, -0, 3, -2, 1.5, 1e6, 1e21, 2 ** 53, Infinity, -Infinity, NaN].map(formatNumber)).toEqual([
        "0", "0", "3", "-2", "1.5", "1000000", "1e+21", "9007199254740992", "+Inf", "-Inf", "NaN"
      ])
      const registry = makeRegistry()
      registry.gauge("g", "G.").set({}, Infinity)
      const h = registry.histogram("h", "H.", [1])
      h.observe({}, NaN)
      expect(registry.render()).toBe(lines(
        "# HELP g G.",
        "# TYPE g gauge",
        "g +Inf",
        "# HELP h H.",
        "# TYPE h histogram",
        "h_bucket{le=\"1\"} 0",
        "h_bucket{le=\"+Inf\"} 1",
        "h_sum NaN",
        "h_count 1"
      ))
    }))

  it.effect("throws on a name registered twice, whatever the metric type", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      registry.counter("spore_x", "X.")
      expect(() => registry.counter("spore_x", "X.")).toThrow("metric registered twice: spore_x")
      expect(() => registry.gauge("spore_x", "X.")).toThrow("metric registered twice: spore_x")
      expect(() => registry.histogram("spore_x", "X.", [1])).toThrow("metric registered twice: spore_x")
      expect(() => registry.computed("spore_x", "X.", "gauge", () => [])).toThrow("metric registered twice: spore_x")
      expect(registry.render()).toBe(lines("# HELP spore_x X.", "# TYPE spore_x counter", "spore_x 0"))
    }))

  it.effect("throws on invalid metric and label names", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      for (const name of ["", "1abc", "spore-x", "spore x", "spore.x", "é"]) {
        expect(() => registry.counter(name, "Bad.")).toThrow("invalid metric name")
      }
      registry.counter("_ok:name_1", "Colons and underscores are fine.")
      expect(() => registry.counter("spore_a", "A.", ["bad-label"])).toThrow("invalid label name")
      expect(() => registry.gauge("spore_b", "B.", ["__reserved"])).toThrow("invalid label name")
      expect(() => registry.gauge("spore_c", "C.", ["x", "x"])).toThrow("duplicate label names")
      expect(() => registry.histogram("spore_d", "D.", [1], ["le"])).toThrow("\"le\" is reserved")
      expect(() => registry.histogram("spore_e", "E.", [1, 1])).toThrow("strictly increasing")
      expect(() => registry.histogram("spore_f", "F.", [1, Infinity])).toThrow("strictly increasing")
      // A failed registration does not take the name.
      registry.counter("spore_a", "A.")
      expect(registry.render()).toContain("# TYPE spore_a counter")
    }))

  it.effect("throws on a negative counter increment, leaving the count as it was", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const counter = registry.counter("spore_x_total", "X.")
      counter.inc(undefined, 2)
      expect(() => counter.inc(undefined, -1)).toThrow("spore_x_total: a counter cannot be increased by -1")
      expect(() => counter.inc(undefined, NaN)).toThrow("cannot be increased by NaN")
      expect(registry.render()).toContain("\nspore_x_total 2\n")
    }))

  it.effect("throws on labels other than the declared ones", () =>
    Effect.sync(() => {
      const registry = makeRegistry()
      const labelled = registry.counter("spore_l_total", "L.", ["side"])
      const plain = registry.gauge("spore_p", "P.")
      expect(() => labelled.inc()).toThrow("spore_l_total: expected labels [side], got []")
      expect(() => labelled.inc({ port: "1" })).toThrow("missing label side")
      expect(() => labelled.inc({ side: "a", port: "1" })).toThrow("expected labels [side], got [side, port]")
      expect(() => plain.set({ side: "a" }, 1)).toThrow("spore_p: expected labels [], got [side]")
      expect(registry.render()).toBe(lines(
        "# HELP spore_l_total L.",
        "# TYPE spore_l_total counter",
        "# HELP spore_p P.",
        "# TYPE spore_p gauge",
        "spore_p 0"
      ))
    }))
})
