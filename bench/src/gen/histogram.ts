/**
 * A log-linear latency histogram in microseconds (HdrHistogram-like, ~0.2 % precision): values below
 * 1024 µs have their own bucket, larger ones 512 buckets per power of two. Recording is one array
 * increment, so the load generator can record every delivery.
 */
const LINEAR = 1024;
const SUB_BITS = 9; // 512 sub-buckets per octave above LINEAR
const OCTAVES = 32;

export interface LatencySummary {
  readonly count: number;
  /** Percentiles and maximum, in milliseconds. */
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export class Histogram {
  private readonly counts = new Float64Array(LINEAR + OCTAVES * (1 << SUB_BITS));
  private total = 0;
  private maxUs = 0;

  record(us: number): void {
    const v = us < 0 ? 0 : Math.floor(us);
    this.counts[bucketOf(v)]! += 1;
    this.total += 1;
    if (v > this.maxUs) this.maxUs = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.maxUs = 0;
  }

  get count(): number {
    return this.total;
  }

  /** The value (µs) at or below which `q` (0..1) of the recorded values lie. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(upperOf(i), this.maxUs);
    }
    return this.maxUs;
  }

  summary(): LatencySummary {
    const ms = (us: number): number => Math.round(us) / 1000;
    return {
      count: this.total,
      p50: ms(this.quantile(0.5)),
      p95: ms(this.quantile(0.95)),
      p99: ms(this.quantile(0.99)),
      max: ms(this.maxUs),
    };
  }
}

function bucketOf(v: number): number {
  if (v < LINEAR) return v;
  const msb = Math.min(31, Math.floor(Math.log2(v)));
  const octave = msb - 10; // v >= 1024 → msb >= 10
  const sub = Math.floor(v / 2 ** (msb - SUB_BITS)) - (1 << SUB_BITS);
  return LINEAR + Math.min(OCTAVES - 1, octave) * (1 << SUB_BITS) + Math.min((1 << SUB_BITS) - 1, sub);
}

function upperOf(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  const octave = Math.floor((bucket - LINEAR) / (1 << SUB_BITS));
  const sub = (bucket - LINEAR) % (1 << SUB_BITS);
  const msb = octave + 10;
  return ((1 << SUB_BITS) + sub + 1) * 2 ** (msb - SUB_BITS) - 1;
}
