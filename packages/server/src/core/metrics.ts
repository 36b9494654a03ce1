/**
 * Where the server reports what it counts and measures. A component takes a `Metrics` sink when it
 * is made and makes its instruments then, once; the hot path only calls `inc` / `observe` on them.
 * `noMetrics` (the default everywhere) hands out instruments that do nothing. `MetricsTally` keeps
 * every value in memory (the server's `GET /api/info` reads it); `teeMetrics` feeds several sinks.
 *
 * To add a metric: make the instrument in the constructor of the component that sees the event, with
 * a `herald_`-prefixed name in Prometheus style (`_total` for counters, base units: seconds, bytes).
 * A sink for a metrics system (Prometheus, StatsD, ...) implements `Metrics` and is passed to the
 * server next to the tally.
 */

/** Label values of one instrument; the same name with other labels is another series. */
export type Labels = Readonly<Record<string, string>>;

export interface Counter {
  /** Adds `n` (1 when not given; never negative). */
  inc(n?: number): void;
}

export interface Histogram {
  observe(value: number): void;
}

export interface Metrics {
  counter(name: string, help: string, labels?: Labels): Counter;
  /** A value read when the metrics are collected (open connections, streams). */
  gauge(name: string, help: string, read: () => number, labels?: Labels): void;
  /** Observations counted into `buckets` (upper bounds, ascending). */
  histogram(name: string, help: string, buckets: readonly number[], labels?: Labels): Histogram;
}

const NO_COUNTER: Counter = { inc: () => undefined };
const NO_HISTOGRAM: Histogram = { observe: () => undefined };

/** The sink that keeps nothing. */
export const noMetrics: Metrics = {
  counter: () => NO_COUNTER,
  gauge: () => undefined,
  histogram: () => NO_HISTOGRAM,
};

/** Every sink gets every instrument and every value. */
export function teeMetrics(...sinks: readonly Metrics[]): Metrics {
  if (sinks.length === 1 && sinks[0] !== undefined) return sinks[0];
  return {
    counter(name, help, labels) {
      const all = sinks.map((s) => s.counter(name, help, labels));
      return {
        inc(n = 1) {
          for (const c of all) c.inc(n);
        },
      };
    },
    gauge(name, help, read, labels) {
      for (const s of sinks) s.gauge(name, help, read, labels);
    },
    histogram(name, help, buckets, labels) {
      const all = sinks.map((s) => s.histogram(name, help, buckets, labels));
      return {
        observe(v) {
          for (const h of all) h.observe(v);
        },
      };
    },
  };
}

/** A histogram's state in a `MetricsTally`. */
export interface HistogramValue {
  readonly buckets: readonly number[];
  /** Observations at or under each bucket's bound (cumulative), then the total count last. */
  readonly counts: number[];
  sum: number;
}

class TallyCounter implements Counter {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

class TallyHistogram implements Histogram {
  readonly state: HistogramValue;
  constructor(buckets: readonly number[]) {
    this.state = { buckets, counts: new Array<number>(buckets.length + 1).fill(0), sum: 0 };
  }
  observe(v: number): void {
    const { buckets, counts } = this.state;
    for (let i = 0; i < buckets.length; i++) if (v <= (buckets[i] as number)) counts[i] = (counts[i] as number) + 1;
    counts[buckets.length] = (counts[buckets.length] as number) + 1;
    this.state.sum += v;
  }
}

/** Series key: the name, then the labels sorted by name. */
function seriesKey(name: string, labels: Labels | undefined): string {
  if (labels === undefined) return name;
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
}

/**
 * Keeps every value in memory. Instruments with the same name and labels share one series (two
 * components may count the same thing). Reading is for reports and tests, not the hot path.
 */
export class MetricsTally implements Metrics {
  private readonly counters = new Map<string, TallyCounter>();
  private readonly gauges = new Map<string, () => number>();
  private readonly histograms = new Map<string, TallyHistogram>();

  counter(name: string, _help: string, labels?: Labels): Counter {
    const key = seriesKey(name, labels);
    let c = this.counters.get(key);
    if (c === undefined) {
      c = new TallyCounter();
      this.counters.set(key, c);
    }
    return c;
  }

  gauge(name: string, _help: string, read: () => number, labels?: Labels): void {
    this.gauges.set(seriesKey(name, labels), read);
  }

  histogram(name: string, _help: string, buckets: readonly number[], labels?: Labels): Histogram {
    const key = seriesKey(name, labels);
    let h = this.histograms.get(key);
    if (h === undefined) {
      h = new TallyHistogram(buckets);
      this.histograms.set(key, h);
    }
    return h;
  }

  /** A counter's or gauge's value (0 when nothing made it). */
  value(name: string, labels?: Labels): number {
    const key = seriesKey(name, labels);
    const c = this.counters.get(key);
    if (c !== undefined) return c.value;
    return this.gauges.get(key)?.() ?? 0;
  }

  /** The sum of a counter over every label set. */
  total(name: string): number {
    let n = 0;
    for (const [key, c] of this.counters) if (key === name || key.startsWith(`${name}{`)) n += c.value;
    return n;
  }

  histogramValue(name: string, labels?: Labels): HistogramValue | undefined {
    return this.histograms.get(seriesKey(name, labels))?.state;
  }
}
