/**
 * The memory engine: streams, history and idempotency keys in this process. Nothing to install;
 * one node only. Everything is lost at restart, which the per-stream epochs make visible: each
 * stream's epoch is the engine instance's random prefix plus a per-stream sequence number, so a
 * client coming back with a cursor from before a restart (or from before an idle stream was
 * forgotten) is told `recovered: false` instead of being handed the wrong publications.
 */
import { randomBytes } from 'node:crypto';
import { namespaceOf, streamsOf, type StreamPosition } from '@herald/protocol';
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
import type {
  EnginePresence,
  PresenceCounts,
  PresenceEntry,
  PresenceEvent,
  PresenceJoin,
  PresenceOptions,
} from '../../core/presence.js';

/**
 * What the history keeps of one publication, shared by every stream it went to: a stream's log knows
 * its own name and epoch, and each kept publication's offset follows from its place in the log. So a
 * publication costs one small object for as long as it is kept, however many streams hold it, and a
 * `Publication` is made only for a delivery or a history read (short-lived, cheap to collect).
 */
interface Kept {
  readonly channel: string;
  readonly data: string;
  readonly time: number;
}

interface StreamLog {
  readonly epoch: string;
  top: number;
  /** Kept publications, oldest first; offsets are contiguous and end at `top`. */
  pubs: Kept[];
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

/** Channels whose stream names are remembered at most (then forgotten all at once, and remembered again as used). */
const MAX_REMEMBERED_CHANNELS = 100_000;

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
  /** See `streamsOf`. */
  private readonly streamNames = new Map<string, readonly string[]>();
  private sink: PublicationSink | undefined;
  private sweeper: TimerHandle | undefined;
  /** Who is subscribed where (one node: this one). */
  readonly presence: MemoryPresence;

  constructor(opts: MemoryEngineOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.sweepInterval = opts.sweepInterval ?? 10_000;
    this.idleStreamTtl = opts.idleStreamTtl ?? 86_400_000;
    this.presence = new MemoryPresence(this.clock);
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
    this.streamNames.clear();
    this.presence.clear();
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
    const streams = this.streamsOf(req.channel);
    const kept: Kept = { channel: req.channel, data: req.data, time: now };
    const size = req.history.size;
    let position: { epoch: string; offset: number } | undefined;
    // Every log is written before anything is delivered (a sink may read history as it is handed a publication).
    let live: Publication[] | undefined;
    for (const stream of streams) {
      const log = this.logFor(stream, now);
      log.top += 1;
      log.lastPublishAt = now;
      log.ttlMs = req.history.ttlMs;
      log.metaTtlMs = req.history.metaTtlMs;
      if (size > 0) {
        log.pubs.push(kept);
        const excess = log.pubs.length - log.head - size;
        if (excess > 0) log.head += excess;
        this.compact(log);
      } else {
        this.dropAll(log);
      }
      position ??= { epoch: log.epoch, offset: log.top };
      if (this.sink !== undefined && this.subscribed.has(stream)) {
        const pub: Publication = {
          stream,
          channel: req.channel,
          epoch: log.epoch,
          offset: log.top,
          data: req.data,
          time: now,
        };
        (live ??= []).push(pub);
      }
    }
    const outcome: PublishOutcome = { position: position as StreamPosition, duplicate: false };
    if (idemKey !== undefined) {
      this.idempotency.set(idemKey, { outcome, expiresAt: now + req.idempotencyWindowMs });
    }
    const sink = this.sink;
    if (sink !== undefined && live !== undefined) for (const pub of live) sink.onPublication(pub);
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
    const publications: Publication[] = [];
    if (n > 0) {
      const at = (i: number): Publication => {
        const k = log.pubs[i] as Kept;
        const offset = log.top - (log.pubs.length - 1 - i);
        return { stream: req.stream, channel: k.channel, epoch: log.epoch, offset, data: k.data, time: k.time };
      };
      if (req.reverse === true)
        for (let i = log.pubs.length - 1; i >= log.pubs.length - n; i--) publications.push(at(i));
      else for (let i = from; i < from + n; i++) publications.push(at(i));
    }
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

  /**
   * `streamsOf(channel)`, remembered: the same strings every time, whose hashes V8 keeps, so that the
   * logs are found without building and hashing `a.b.**`, `a.**` again for every publication.
   */
  private streamsOf(channel: string): readonly string[] {
    let streams = this.streamNames.get(channel);
    if (streams === undefined) {
      if (this.streamNames.size >= MAX_REMEMBERED_CHANNELS) this.streamNames.clear();
      streams = streamsOf(channel);
      this.streamNames.set(channel, streams);
    }
    return streams;
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
    while (log.head < log.pubs.length && (log.pubs[log.head] as Kept).time <= cutoff) log.head += 1;
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

interface Present {
  readonly entry: PresenceEntry;
  deadline: number;
}

/**
 * Presence in this process: per stream, the entries by client id with their deadlines. Joins and
 * leaves are reported synchronously, within the call that made them.
 */
export class MemoryPresence implements EnginePresence {
  private readonly streams = new Map<string, Map<string, Present>>();
  private handler: ((event: PresenceEvent) => void) | undefined;

  constructor(private readonly clock: Clock) {}

  onEvent(handler: (event: PresenceEvent) => void): void {
    this.handler = handler;
  }

  /** Streams that have entries (tests: a churn leaves none behind). */
  get streamCount(): number {
    return this.streams.size;
  }

  clear(): void {
    this.streams.clear();
  }

  join(stream: string, entries: readonly PresenceJoin[], opts: PresenceOptions & { max: number }): Promise<void> {
    const now = this.clock.now();
    let present = this.sweep(stream, now, opts.events);
    for (const { entry, ttlMs } of entries) {
      const had = present?.get(entry.client);
      if (had !== undefined) {
        had.deadline = Math.max(had.deadline, now + ttlMs);
        continue;
      }
      if (present === undefined) {
        present = new Map();
        this.streams.set(stream, present);
      }
      if (present.size >= opts.max) continue;
      present.set(entry.client, { entry, deadline: now + ttlMs });
      if (opts.events) this.handler?.({ kind: 'join', stream, entry });
    }
    return Promise.resolve();
  }

  leave(stream: string, client: string, opts: PresenceOptions): Promise<void> {
    const present = this.streams.get(stream);
    const had = present?.get(client);
    if (present === undefined || had === undefined) return Promise.resolve();
    present.delete(client);
    if (present.size === 0) this.streams.delete(stream);
    if (opts.events) this.handler?.({ kind: 'leave', stream, entry: had.entry });
    return Promise.resolve();
  }

  list(stream: string, opts: PresenceOptions): Promise<PresenceEntry[]> {
    const present = this.sweep(stream, this.clock.now(), opts.events);
    return Promise.resolve(present === undefined ? [] : [...present.values()].map((p) => p.entry));
  }

  count(stream: string, opts: PresenceOptions): Promise<PresenceCounts> {
    return Promise.resolve(counts(this.sweep(stream, this.clock.now(), opts.events)));
  }

  channels(
    namespace: string,
    prefix: string,
    limit: number,
    opts: PresenceOptions,
  ): Promise<Array<{ readonly stream: string } & PresenceCounts>> {
    const now = this.clock.now();
    const out: Array<{ readonly stream: string } & PresenceCounts> = [];
    for (const stream of [...this.streams.keys()]) {
      if (out.length >= limit) break;
      if (!stream.startsWith(prefix) || namespaceOf(stream) !== namespace) continue;
      const present = this.sweep(stream, now, opts.events);
      if (present !== undefined) out.push({ stream, ...counts(present) });
    }
    return Promise.resolve(out);
  }

  /** Removes the expired entries of `stream` (a leave each); returns what is left, if anything. */
  private sweep(stream: string, now: number, events: boolean): Map<string, Present> | undefined {
    const present = this.streams.get(stream);
    if (present === undefined) return undefined;
    for (const [client, p] of present) {
      if (p.deadline > now) continue;
      present.delete(client);
      if (events) this.handler?.({ kind: 'leave', stream, entry: p.entry });
    }
    if (present.size > 0) return present;
    this.streams.delete(stream);
    return undefined;
  }
}

function counts(present: Map<string, Present> | undefined): PresenceCounts {
  if (present === undefined) return { clients: 0, users: 0 };
  const users = new Set<string>();
  for (const p of present.values()) users.add(p.entry.user);
  return { clients: present.size, users: users.size };
}
