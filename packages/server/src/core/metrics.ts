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
  /**
   * A counter kept elsewhere (an engine's own stats), read when the metrics are collected; it only
   * grows (reported as a counter).
   */
  counterFn(name: string, help: string, read: () => number, labels?: Labels): void;
  /** Observations counted into `buckets` (upper bounds, ascending). */
  histogram(name: string, help: string, buckets: readonly number[], labels?: Labels): Histogram;
}

const NO_COUNTER: Counter = { inc: () => undefined };
const NO_HISTOGRAM: Histogram = { observe: () => undefined };

/** The sink that keeps nothing. */
export const noMetrics: Metrics = {
  counter: () => NO_COUNTER,
  gauge: () => undefined,
  counterFn: () => undefined,
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
    counterFn(name, help, read, labels) {
      for (const s of sinks) s.counterFn(name, help, read, labels);
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
  readonly sum: number;
}

class TallyCounter implements Counter {
  value = 0;
  inc(n = 1): void {
    this.value += n;
  }
}

/** Counts each observation in its own bucket only (one add); cumulative counts are made when read. */
class TallyHistogram implements Histogram {
  /** Per bucket, then the observations above the last bound. */
  private readonly own: number[];
  sum = 0;
  constructor(readonly buckets: readonly number[]) {
    this.own = new Array<number>(buckets.length + 1).fill(0);
  }
  observe(v: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && v > (b[i] as number)) i++;
    this.own[i] = (this.own[i] as number) + 1;
    this.sum += v;
  }
  get state(): HistogramValue {
    const counts: number[] = [];
    let n = 0;
    for (const c of this.own) counts.push((n += c));
    return { buckets: this.buckets, counts, sum: this.sum };
  }
}

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** One series of a family: its labels, and what reads it. */
export interface SeriesValue {
  readonly labels: Labels;
  /** A counter's or gauge's value; for a histogram, its count. */
  readonly value: number;
  readonly histogram?: HistogramValue;
}

/** Every series of one metric name, as a metrics system exports it. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  series(): SeriesValue[];
}

interface Series {
  readonly labels: Labels;
  counter?: TallyCounter;
  read?: () => number;
  histogram?: TallyHistogram;
}

class Family implements MetricFamily {
  readonly byKey = new Map<string, Series>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: MetricType,
  ) {}
  series(): SeriesValue[] {
    const out: SeriesValue[] = [];
    for (const s of this.byKey.values()) {
      if (s.histogram !== undefined) {
        const h = s.histogram.state;
        out.push({ labels: s.labels, value: h.counts[h.counts.length - 1] ?? 0, histogram: h });
      } else {
        out.push({ labels: s.labels, value: s.counter !== undefined ? s.counter.value : safeRead(s.read) });
      }
    }
    return out;
  }
}

function safeRead(read: (() => number) | undefined): number {
  try {
    const v = read?.() ?? 0;
    return Number.isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
}

/** Series key: the labels sorted by name. */
function labelKey(labels: Labels | undefined): string {
  if (labels === undefined) return '';
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',');
}

/**
 * Keeps every value in memory, by metric name (a family) and label set (a series). Instruments with
 * the same name and labels share one series (two components may count the same thing); a name
 * keeps the help and type it was first made with. Reading is for reports, `/metrics` and tests, not
 * the hot path.
 */
export class MetricsTally implements Metrics {
  private readonly byName = new Map<string, Family>();

  private series(name: string, help: string, type: MetricType, labels: Labels | undefined): Series {
    let f = this.byName.get(name);
    if (f === undefined) this.byName.set(name, (f = new Family(name, help, type)));
    const key = labelKey(labels);
    let s = f.byKey.get(key);
    if (s === undefined) f.byKey.set(key, (s = { labels: labels ?? {} }));
    return s;
  }

  counter(name: string, help: string, labels?: Labels): Counter {
    const s = this.series(name, help, 'counter', labels);
    return (s.counter ??= new TallyCounter());
  }

  gauge(name: string, help: string, read: () => number, labels?: Labels): void {
    this.series(name, help, 'gauge', labels).read = read;
  }

  counterFn(name: string, help: string, read: () => number, labels?: Labels): void {
    this.series(name, help, 'counter', labels).read = read;
  }

  histogram(name: string, help: string, buckets: readonly number[], labels?: Labels): Histogram {
    const s = this.series(name, help, 'histogram', labels);
    return (s.histogram ??= new TallyHistogram(buckets));
  }

  /** Every metric name with its series. */
  families(): MetricFamily[] {
    return [...this.byName.values()];
  }

  private find(name: string, labels: Labels | undefined): Series | undefined {
    return this.byName.get(name)?.byKey.get(labelKey(labels));
  }

  /** A counter's or gauge's value (0 when nothing made it). */
  value(name: string, labels?: Labels): number {
    const s = this.find(name, labels);
    if (s === undefined) return 0;
    return s.counter !== undefined ? s.counter.value : safeRead(s.read);
  }

  /** The sum of a counter or gauge over every label set. */
  total(name: string): number {
    let n = 0;
    const f = this.byName.get(name);
    if (f !== undefined) for (const s of f.series()) if (s.histogram === undefined) n += s.value;
    return n;
  }

  histogramValue(name: string, labels?: Labels): HistogramValue | undefined {
    return this.find(name, labels)?.histogram?.state;
  }
}
