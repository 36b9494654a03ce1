/**
 * The memory engine: streams, history and idempotency keys in this process. Nothing to install;
 * one node only. Everything is lost at restart, which the per-stream epochs make visible: each
 * stream's epoch is the engine instance's random prefix plus a per-stream sequence number, so a
 * client coming back with a cursor from before a restart (or from before an idle stream was
 * forgotten) is told `recovered: false` instead of being handed the wrong publications.
 */
import { randomBytes } from 'node:crypto';
import { streamsOf } from '@herald/protocol';
import type {
  Engine,
  HistoryOutcome,
  HistoryRequest,
  Publication,
  PublicationSink,
  PublishOutcome,
  PublishRequest,
} from '../../core/engine.js';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.js';

interface StreamLog {
  readonly epoch: string;
  top: number;
  /** Kept publications, oldest first; offsets are contiguous and end at `top`. */
  pubs: Publication[];
  /** Index of the first live element in `pubs` (amortised shifting). */
  head: number;
  lastPublishAt: number;
  ttlMs: number;
  metaTtlMs: number;
}

interface IdempotencyEntry {
  readonly outcome: PublishOutcome;
  readonly expiresAt: number;
}

export interface MemoryEngineOptions {
  clock?: Clock;
  /** How often expired history, idle streams and idempotency keys are swept, in ms. */
  sweepInterval?: number;
  /** How long a stream that was read but never published to keeps its epoch, in ms (default 24 h). */
  idleStreamTtl?: number;
}

export class MemoryEngine implements Engine {
  readonly name = 'memory';
  private readonly clock: Clock;
  private readonly sweepInterval: number;
  private readonly idleStreamTtl: number;
  private readonly instance = randomBytes(6).toString('base64url');
  private streamSeq = 0;
  private readonly logs = new Map<string, StreamLog>();
  private readonly idempotency = new Map<string, IdempotencyEntry>();
  private readonly subscribed = new Set<string>();
  private sink: PublicationSink | undefined;
  private sweeper: TimerHandle | undefined;

  constructor(opts: MemoryEngineOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.sweepInterval = opts.sweepInterval ?? 10_000;
    this.idleStreamTtl = opts.idleStreamTtl ?? 86_400_000;
  }

  start(sink: PublicationSink): Promise<void> {
    this.sink = sink;
    this.sweeper = this.clock.setInterval(() => this.sweep(), this.sweepInterval);
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.sweeper?.cancel();
    this.sweeper = undefined;
    this.sink = undefined;
    this.logs.clear();
    this.idempotency.clear();
    this.subscribed.clear();
    return Promise.resolve();
  }

  ready(): boolean {
    return this.sink !== undefined;
  }

  publish(req: PublishRequest): Promise<PublishOutcome> {
    const now = this.clock.now();
    let idemKey: string | undefined;
    if (req.idempotencyKey !== undefined) {
      idemKey = `${req.channel}\u0000${req.idempotencyKey}`;
      const seen = this.idempotency.get(idemKey);
      if (seen !== undefined && seen.expiresAt > now) {
        return Promise.resolve({ position: seen.outcome.position, duplicate: true });
      }
    }
    const streams = streamsOf(req.channel);
    const created: Publication[] = [];
    for (const stream of streams) {
      const log = this.logFor(stream, now);
      log.top += 1;
      log.lastPublishAt = now;
      log.ttlMs = req.history.ttlMs;
      log.metaTtlMs = req.history.metaTtlMs;
      const pub: Publication = {
        stream,
        channel: req.channel,
        epoch: log.epoch,
        offset: log.top,
        data: req.data,
        time: now,
      };
      if (req.history.size > 0) {
        log.pubs.push(pub);
        const excess = log.pubs.length - log.head - req.history.size;
        if (excess > 0) log.head += excess;
        this.compact(log);
      } else {
        this.dropAll(log);
      }
      created.push(pub);
    }
    const first = created[0] as Publication;
    const outcome: PublishOutcome = { position: { epoch: first.epoch, offset: first.offset }, duplicate: false };
    if (idemKey !== undefined) {
      this.idempotency.set(idemKey, { outcome, expiresAt: now + req.idempotencyWindowMs });
    }
    const sink = this.sink;
    if (sink !== undefined) {
      for (const pub of created) if (this.subscribed.has(pub.stream)) sink.onPublication(pub);
    }
    return Promise.resolve(outcome);
  }

  history(req: HistoryRequest): Promise<HistoryOutcome> {
    const now = this.clock.now();
    const log = this.logFor(req.stream, now);
    this.expire(log, now);
    const position = { epoch: log.epoch, offset: log.top };
    const live = log.pubs.length - log.head;
    const oldest = log.top - live + 1;
    let from = log.head;
    if (req.since !== undefined) {
      if (req.since.epoch !== log.epoch) return Promise.resolve({ position, oldest, publications: [] });
      from = Math.max(log.head, log.head + (req.since.offset - oldest + 1));
    }
    const available = log.pubs.length - from;
    const n = Math.max(0, Math.min(req.limit, available));
    let publications: Publication[];
    if (n === 0) publications = [];
    else if (req.reverse === true) publications = log.pubs.slice(log.pubs.length - n).reverse();
    else publications = log.pubs.slice(from, from + n);
    return Promise.resolve({ position, oldest, publications });
  }

  subscribe(stream: string): Promise<void> {
    this.subscribed.add(stream);
    return Promise.resolve();
  }

  unsubscribe(stream: string): Promise<void> {
    this.subscribed.delete(stream);
    return Promise.resolve();
  }

  /** Number of streams whose state is held (for tests and `info`). */
  get streamCount(): number {
    return this.logs.size;
  }

  private logFor(stream: string, now: number): StreamLog {
    let log = this.logs.get(stream);
    if (log === undefined) {
      this.streamSeq += 1;
      log = {
        epoch: `${this.instance}${this.streamSeq.toString(36)}`,
        top: 0,
        pubs: [],
        head: 0,
        lastPublishAt: now,
        ttlMs: 0,
        metaTtlMs: this.idleStreamTtl,
      };
      this.logs.set(stream, log);
    }
    return log;
  }

  private expire(log: StreamLog, now: number): void {
    const cutoff = now - log.ttlMs;
    while (log.head < log.pubs.length && (log.pubs[log.head] as Publication).time <= cutoff) log.head += 1;
    this.compact(log);
  }

  private dropAll(log: StreamLog): void {
    log.pubs = [];
    log.head = 0;
  }

  private compact(log: StreamLog): void {
    if (log.head > 0 && log.head * 2 >= log.pubs.length) {
      log.pubs = log.pubs.slice(log.head);
      log.head = 0;
    }
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [stream, log] of this.logs) {
      this.expire(log, now);
      const idleFor = now - log.lastPublishAt;
      // A stream is forgotten only when no local subscriber reads it, so live subscribers never see
      // an epoch change of a running engine. Streams only read (top 0) are dropped after the TTL too.
      if (!this.subscribed.has(stream) && idleFor > Math.max(log.metaTtlMs, log.ttlMs)) {
        this.logs.delete(stream);
      }
    }
    for (const [key, entry] of this.idempotency) if (entry.expiresAt <= now) this.idempotency.delete(key);
  }
}
