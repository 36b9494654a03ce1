/**
 * `GET /metrics`: the server's tally (core/metrics.ts) in the Prometheus text format, with the
 * process metrics of `prom-client` (CPU, RSS, heap, event-loop lag, GC). Nothing here runs on the
 * hot path: the tally is read when Prometheus scrapes.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { MetricFamily, MetricsTally } from './core/metrics.js';

/** One line of a family as prom-client's registry formats it. */
interface Value {
  metricName?: string;
  labels: Record<string, string | number>;
  value: number;
}
interface Values {
  name: string;
  help: string;
  type: string;
  values: Value[];
  aggregator: Aggregator;
}

type Aggregator = 'sum' | 'max' | 'min';

/**
 * How the supervisor of `--workers N` combines a family over its workers: a sum, except for the
 * gauges a sum would make wrong (every worker is up since about the same time; the server is ready
 * and reaches its store as well as its worst worker).
 */
const NOT_SUMMED: Readonly<Record<string, Aggregator>> = {
  herald_uptime_seconds: 'max',
  herald_ready: 'min',
  herald_engine_parts: 'max',
  herald_engine_parts_up: 'min',
};

/** One family of the tally as prom-client's registry reads a metric. */
class TallyFamily {
  constructor(private readonly family: MetricFamily) {}
  get name(): string {
    return this.family.name;
  }
  get help(): string {
    return this.family.help;
  }
  get type(): string {
    return this.family.type;
  }
  get aggregator(): Aggregator {
    return NOT_SUMMED[this.family.name] ?? 'sum';
  }
  get(): Values {
    const values: Value[] = [];
    const { name } = this.family;
    for (const s of this.family.series()) {
      const h = s.histogram;
      if (h === undefined) {
        values.push({ labels: { ...s.labels }, value: s.value });
        continue;
      }
      h.buckets.forEach((le, i) => {
        values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le }, value: h.counts[i] ?? 0 });
      });
      const count = h.counts[h.buckets.length] ?? 0;
      values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: '+Inf' }, value: count });
      values.push({ metricName: `${name}_sum`, labels: { ...s.labels }, value: h.sum });
      values.push({ metricName: `${name}_count`, labels: { ...s.labels }, value: count });
    }
    return { name, help: this.family.help, type: this.family.type, values, aggregator: this.aggregator };
  }
  reset(): void {}
}

export class PrometheusExporter {
  private readonly registry = new Registry();
  private readonly known = new Set<string>();

  constructor(private readonly tally: MetricsTally) {
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text Prometheus scrapes. Families made since the last scrape are added first. */
  async text(): Promise<string> {
    this.register();
    return this.registry.metrics();
  }

  /** The same as prom-client JSON, which `AggregatorRegistry.aggregate` sums over workers. */
  async json(): Promise<unknown> {
    this.register();
    return this.registry.getMetricsAsJSON();
  }

  private register(): void {
    for (const f of this.tally.families()) {
      if (this.known.has(f.name)) continue;
      this.known.add(f.name);
      this.registry.registerMetric(new TallyFamily(f) as unknown as Parameters<Registry['registerMetric']>[0]);
    }
  }

  /** Stops the event-loop monitor of the default metrics. */
  close(): void {
    this.registry.clear();
  }
}
