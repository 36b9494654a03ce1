/**
 * The figures of every node over the last minutes, for the admin page's charts. Each node takes a
 * sample of itself every `intervalMs` (connections by transport, rates, memory, event-loop lag, its
 * busiest channels), keeps it, and leaves it in the engine's `nodes` store (Redis) for the others;
 * it reads theirs back in the same turn, so any node can draw every node. With the memory engine
 * there is one node. Runs only while the admin page is on.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { EngineNodes } from './engine.js';
import type { Logger } from './logger.js';

/** Most channels a sample lists in each of its top lists. */
export const TOP_CHANNELS = 10;

export interface ChannelCount {
  readonly channel: string;
  /** Subscribers on the node. */
  readonly subscribers: number;
  /** Publications per second the node received for it over the last interval. */
  readonly rate: number;
}

/** One node's figures at one time. Rates are per second over the interval before `t`. */
export interface NodeSample {
  /** When it was taken, in ms since the epoch (the node's clock). */
  readonly t: number;
  /** Open connections by transport (`websocket`, `sse`, `stream`, `poll`). */
  readonly connections: Readonly<Record<string, number>>;
  readonly subscriptions: number;
  /** Streams with subscribers on the node. */
  readonly streams: number;
  /** Publications accepted by the node (its API and clients) per second. */
  readonly published: number;
  /** Publication frames queued to its clients per second. */
  readonly delivered: number;
  /** Bytes written to its clients per second. */
  readonly bytesOut: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  /** The event loop's delay over the interval, 99th percentile, in ms. */
  readonly loopLagMs: number;
  /** Its channels with most subscribers, then those with the highest rate (each at most `TOP_CHANNELS`). */
  readonly topBySubscribers: readonly ChannelCount[];
  readonly topByRate: readonly ChannelCount[];
}

/** What a sample is made from: the node's own counts (the server provides them). */
export interface SampleSource {
  connectionsByTransport(): Record<string, number>;
  subscriptions(): number;
  /** Every stream of the node with its subscribers and the publications it received so far. */
  streamCounts(): Iterable<{ stream: string; subscribers: number; received: number }>;
  /** Totals so far (counters). */
  published(): number;
  delivered(): number;
  bytesOut(): number;
}

export interface NodeSeries {
  readonly node: string;
  /** This node (the one answering). */
  readonly self: boolean;
  /** Reported within the last three intervals. */
  readonly up: boolean;
  /** Oldest first. */
  readonly samples: readonly NodeSample[];
}

export interface NodeStatsOptions {
  readonly nodeId: string;
  readonly source: SampleSource;
  readonly intervalMs: number;
  /** Samples kept per node (300 at 2 s: ten minutes). */
  readonly keep?: number;
  /** The store the nodes share; this node alone when absent. */
  readonly store?: EngineNodes | undefined;
  readonly logger: Logger;
}

/** A node that reported nothing for this long is forgotten. */
const FORGET_AFTER_MS = 10 * 60_000;

export class NodeStats {
  private readonly rings = new Map<string, NodeSample[]>();
  private timer: NodeJS.Timeout | undefined;
  private lag: IntervalHistogram | undefined;
  private last: { t: number; published: number; delivered: number; bytesOut: number } | undefined;
  private lastReceived = new Map<string, number>();
  private running: Promise<void> | undefined;
  private storeFailed = false;
  private readonly keep: number;

  constructor(private readonly opts: NodeStatsOptions) {
    this.keep = opts.keep ?? 300;
  }

  /**
   * Samples every interval. The first sample is taken and shared at once (resolves when it is), so
   * that the other nodes know of this one before it takes connections, not an interval later.
   */
  start(): Promise<void> {
    if (this.timer !== undefined) return Promise.resolve();
    this.lag = monitorEventLoopDelay({ resolution: 10 });
    this.lag.enable();
    this.baseline();
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, this.opts.intervalMs);
    this.timer.unref();
    const first = this.tick();
    this.running = first.finally(() => (this.running = undefined));
    return first;
  }

  /**
   * Reads the other nodes' latest figures from the store now (the timer does it every interval): for
   * what must reach every node up, such as disconnecting a user. Resolves whether or not it could.
   */
  async refresh(): Promise<void> {
    const store = this.opts.store;
    if (store === undefined) return;
    try {
      await this.read(store);
    } catch {
      // The list of the last interval stands; `tick` reports the store's failure.
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.lag?.disable();
    await this.running;
  }

  /** Every node's samples, this node first, then by node id. */
  series(now = Date.now()): NodeSeries[] {
    const out: NodeSeries[] = [];
    const stale = 3 * this.opts.intervalMs;
    for (const [node, samples] of this.rings) {
      const latest = samples[samples.length - 1];
      const self = node === this.opts.nodeId;
      out.push({ node, self, up: self || (latest !== undefined && now - latest.t <= stale), samples });
    }
    return out.sort((a, b) => (a.self !== b.self ? (a.self ? -1 : 1) : a.node < b.node ? -1 : 1));
  }

  /** Takes a sample now and shares it (the timer does this every interval; tests call it). */
  async tick(): Promise<void> {
    const sample = this.sample();
    this.add(this.opts.nodeId, sample);
    const store = this.opts.store;
    if (store === undefined) return;
    try {
      await store.report(this.opts.nodeId, JSON.stringify(sample), 3 * this.opts.intervalMs);
      await this.read(store);
      if (this.storeFailed) this.opts.logger.info('node figures shared again');
      this.storeFailed = false;
    } catch (err) {
      if (!this.storeFailed)
        this.opts.logger.warn({ err }, 'cannot share node figures: the admin page shows this node only');
      this.storeFailed = true;
    }
    this.forget(Date.now());
  }

  /** Adds the other nodes' samples newer than what is known of them. */
  private async read(store: NonNullable<NodeStatsOptions['store']>): Promise<void> {
    for (const [node, text] of await store.list()) {
      if (node === this.opts.nodeId) continue;
      const s = parseSample(text);
      const ring = this.rings.get(node);
      if (s !== undefined && (ring === undefined || (ring[ring.length - 1]?.t ?? 0) < s.t)) this.add(node, s);
    }
  }

  private add(node: string, sample: NodeSample): void {
    let ring = this.rings.get(node);
    if (ring === undefined) this.rings.set(node, (ring = []));
    ring.push(sample);
    if (ring.length > this.keep) ring.splice(0, ring.length - this.keep);
  }

  private forget(now: number): void {
    for (const [node, ring] of this.rings) {
      if (node === this.opts.nodeId) continue;
      const latest = ring[ring.length - 1];
      if (latest === undefined || now - latest.t > FORGET_AFTER_MS) this.rings.delete(node);
    }
  }

  private baseline(): void {
    const src = this.opts.source;
    this.last = { t: Date.now(), published: src.published(), delivered: src.delivered(), bytesOut: src.bytesOut() };
    this.lastReceived = new Map();
    for (const c of src.streamCounts()) this.lastReceived.set(c.stream, c.received);
  }

  /** This node's figures now, rates since the previous sample. */
  sample(): NodeSample {
    const src = this.opts.source;
    const now = Date.now();
    const prev = this.last ?? { t: now, published: 0, delivered: 0, bytesOut: 0 };
    const seconds = Math.max(0.001, (now - prev.t) / 1000);
    const published = src.published();
    const delivered = src.delivered();
    const bytesOut = src.bytesOut();
    const channels: ChannelCount[] = [];
    const received = new Map<string, number>();
    let streams = 0;
    for (const c of src.streamCounts()) {
      received.set(c.stream, c.received);
      if (c.subscribers > 0) streams++;
      const rate = (c.received - (this.lastReceived.get(c.stream) ?? 0)) / seconds;
      channels.push({ channel: c.stream, subscribers: c.subscribers, rate: round(rate) });
    }
    this.lastReceived = received;
    this.last = { t: now, published, delivered, bytesOut };
    const mem = process.memoryUsage();
    const lag = this.lag;
    const loopLagMs = lag !== undefined && lag.count > 0 ? round(lag.percentile(99) / 1e6) : 0;
    lag?.reset();
    return {
      t: now,
      connections: src.connectionsByTransport(),
      subscriptions: src.subscriptions(),
      streams,
      published: round((published - prev.published) / seconds),
      delivered: round((delivered - prev.delivered) / seconds),
      bytesOut: round((bytesOut - prev.bytesOut) / seconds),
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      loopLagMs,
      topBySubscribers: top(channels, (c) => c.subscribers),
      topByRate: top(channels, (c) => c.rate),
    };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** The `TOP_CHANNELS` entries with the largest `key` (above 0), largest first. */
function top(channels: readonly ChannelCount[], key: (c: ChannelCount) => number): ChannelCount[] {
  const picked: ChannelCount[] = [];
  for (const c of channels) {
    if (key(c) <= 0) continue;
    if (picked.length === TOP_CHANNELS && key(c) <= key(picked[TOP_CHANNELS - 1] as ChannelCount)) continue;
    let i = picked.length;
    while (i > 0 && key(picked[i - 1] as ChannelCount) < key(c)) i--;
    picked.splice(i, 0, c);
    if (picked.length > TOP_CHANNELS) picked.pop();
  }
  return picked;
}

/** A sample another node reported, or undefined when it is not one (another version, garbage). */
function parseSample(text: string): NodeSample | undefined {
  try {
    const v = JSON.parse(text) as Partial<NodeSample> | null;
    if (v === null || typeof v !== 'object' || typeof v.t !== 'number' || typeof v.connections !== 'object') {
      return undefined;
    }
    return v as NodeSample;
  } catch {
    return undefined;
  }
}
