/**
 * Ingestion: the backend publishes with a plain Redis `PUBLISH <ingestChannel> <json>`, as in the
 * classic gevent + Redis design, instead of calling the server API. The message is
 * `{"channel": "...", "data": <any JSON>, "idempotencyKey"?: "..."}`.
 *
 * Plain messages too (`redis.ingestPlain`): a Redis channel mapped to a Herald channel takes any
 * text, `PUBLISH messages hello`, which is published to that channel as the JSON string `"hello"`.
 * A rule whose Redis channel ends in `*` takes every Redis channel starting with it (PSUBSCRIBE),
 * and the rest of the name replaces the `*` of its Herald channel (`rooms:*` → `chat.*`: a PUBLISH
 * to `rooms:42` goes to `chat.42`). A Redis channel with an exact rule is not taken by a prefix
 * rule as well.
 *
 * Exactly one node applies each message: the nodes elect an ingestion leader with a lease in Redis
 * (lease.lua: SET NX PX, renewed every third of the lease), and only the leader subscribes to the
 * ingestion channel. Every other node stays unsubscribed, so a message is never applied N times.
 * The leader publishes through the hub, like the server API: namespace policy and size limits hold.
 *
 * Like every pub/sub message, an ingested message is delivered at most once: one published while no
 * node leads (a leader died and its lease has not run out yet, up to `leaseMs`) reaches nobody, and
 * Redis's PUBLISH reply (the number of receivers) is then 0. A backend that must not lose a message
 * calls the server API, or checks that reply and publishes again with the same idempotencyKey.
 *
 * Malformed messages are counted and logged (at most one log line per 10 s), never thrown.
 */
import { Redis } from 'ioredis';
import { HeraldError } from '@herald/protocol';
import type { Logger } from '../../core/logger.js';
import type { KeySpace } from './keys.js';
import type { Topology } from './topology.js';

/** What the ingestion needs of the Redis engine (which implements it). */
export interface IngestEngine {
  readonly keys: KeySpace;
  readonly topology: Topology;
  readonly instanceId: string;
  readonly connectionName: string;
}

export interface RedisIngestOptions {
  readonly engine: IngestEngine;
  /** The Redis pub/sub channel the backend publishes JSON messages to; '' for none. */
  readonly channel: string;
  /** Redis channels (or prefixes ending in `*`) whose plain messages go to a Herald channel. */
  readonly plain?: readonly { readonly redisChannel: string; readonly channel: string }[];
  /** Publishes like the server API does (the hub's publish); rejects with a HeraldError for bad input. */
  readonly publish: (channel: unknown, data: unknown, idempotencyKey: string | undefined) => Promise<unknown>;
  readonly logger: Logger;
  /** How long a leader's lease lasts without renewal, in ms (renewed every third of it). */
  readonly leaseMs?: number;
}

export interface IngestStats {
  channel: string;
  /** Plain-message rules (`redis.ingestPlain`). */
  plainRules: number;
  /** This node holds the lease and is subscribed. */
  leader: boolean;
  /** Messages received while leading. */
  received: number;
  /** Messages published (duplicates by idempotency key included: they are applied once). */
  applied: number;
  /** Not JSON, not an object, or missing/mistyped fields. */
  malformed: number;
  /** Refused by the hub (invalid channel, too large, ...). */
  rejected: number;
  /** The publish failed (Redis unavailable, ...). */
  failed: number;
}

const MAX_IDEMPOTENCY_KEY = 128;

/** Logs the first event at once and then at most one summary per interval. */
class ThrottledLog {
  private last = 0;
  private suppressed = 0;
  constructor(
    private readonly logger: Logger,
    private readonly intervalMs: number,
  ) {}
  warn(obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed += 1;
      return;
    }
    this.logger.warn(this.suppressed > 0 ? { ...obj, suppressed: this.suppressed } : obj, msg);
    this.last = now;
    this.suppressed = 0;
  }
}

export class RedisIngest {
  readonly stats: IngestStats;
  private readonly leaseMs: number;
  private readonly leaseKey: string;
  private readonly subscriber: Redis;
  private readonly log: ThrottledLog;
  private timer: NodeJS.Timeout | undefined;
  private leaderUntil = 0;
  private closed = false;
  private ticking: Promise<void> | undefined;
  /** Exact plain rules: Redis channel → Herald channel. */
  private readonly plainExact = new Map<string, string>();
  /** Prefix plain rules: Redis pattern (`rooms:*`) → [Redis prefix, Herald prefix]. */
  private readonly plainPrefix = new Map<string, [string, string]>();

  constructor(private readonly opts: RedisIngestOptions) {
    for (const rule of opts.plain ?? []) {
      if (rule.redisChannel.endsWith('*')) {
        this.plainPrefix.set(rule.redisChannel, [rule.redisChannel.slice(0, -1), rule.channel.slice(0, -1)]);
      } else {
        this.plainExact.set(rule.redisChannel, rule.channel);
      }
    }
    this.leaseMs = opts.leaseMs ?? 6_000;
    this.leaseKey = opts.engine.keys.global(`ingest-leader:${opts.channel}`);
    this.stats = {
      channel: opts.channel,
      plainRules: this.plainExact.size + this.plainPrefix.size,
      leader: false,
      received: 0,
      applied: 0,
      malformed: 0,
      rejected: 0,
      failed: 0,
    };
    this.log = new ThrottledLog(opts.logger, 10_000);
    const target = opts.engine.topology.firstTarget();
    this.subscriber = new Redis({
      ...target.options,
      lazyConnect: true,
      enableOfflineQueue: false,
      connectionName: `${opts.engine.connectionName}:ingest`,
    });
    this.subscriber.on('error', (err: Error) => opts.logger.debug({ err: err.message }, 'redis ingest link error'));
    this.subscriber.on('message', (channel: string, text: string) => {
      if (channel === opts.channel) this.onMessage(text);
      else this.onPlain(this.plainExact.get(channel), text);
    });
    this.subscriber.on('pmessage', (pattern: string, channel: string, text: string) => {
      const rule = this.plainPrefix.get(pattern);
      // A channel with an exact rule came as a `message` too.
      if (rule === undefined || this.plainExact.has(channel)) return;
      this.onPlain(rule[1] + channel.slice(rule[0].length), text);
    });
  }

  async start(): Promise<void> {
    await this.subscriber.connect();
    await this.tick();
    this.timer = setInterval(
      () => {
        this.ticking ??= this.tick().finally(() => (this.ticking = undefined));
      },
      Math.max(100, Math.floor(this.leaseMs / 3)),
    );
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.ticking;
    if (this.stats.leader) {
      this.stats.leader = false;
      await this.opts.engine.topology
        .globalClient()
        .heraldLease(this.leaseKey, this.opts.engine.instanceId, this.leaseMs, 'release')
        .catch(() => undefined);
    }
    this.subscriber.disconnect();
  }

  /** Acquires or renews the lease; subscribes when it becomes leader, unsubscribes when it loses it. */
  private async tick(): Promise<void> {
    if (this.closed) return;
    const asked = Date.now();
    let holds = false;
    try {
      const r = await this.opts.engine.topology
        .globalClient()
        .heraldLease(this.leaseKey, this.opts.engine.instanceId, this.leaseMs, 'acquire');
      holds = Number(r) === 1;
    } catch (err) {
      this.opts.logger.debug({ err }, 'redis ingest lease renewal failed');
    }
    if (this.closed) return;
    if (holds) {
      // Counted from when the renewal was sent, with a margin: never lead longer than Redis thinks.
      this.leaderUntil = asked + this.leaseMs - Math.floor(this.leaseMs / 6);
      if (!this.stats.leader) {
        try {
          const exact = [...this.plainExact.keys()];
          if (this.opts.channel !== '') exact.push(this.opts.channel);
          if (exact.length > 0) await this.subscriber.subscribe(...exact);
          if (this.plainPrefix.size > 0) await this.subscriber.psubscribe(...this.plainPrefix.keys());
          this.stats.leader = true;
          this.opts.logger.info({ channel: this.opts.channel }, 'redis ingestion: this node is the leader');
        } catch (err) {
          this.opts.logger.warn({ err }, 'redis ingestion: subscribe failed');
        }
      }
    } else if (this.stats.leader) {
      this.stats.leader = false;
      this.leaderUntil = 0;
      await this.subscriber.unsubscribe().catch(() => undefined);
      await this.subscriber.punsubscribe().catch(() => undefined);
      this.opts.logger.info({ channel: this.opts.channel }, 'redis ingestion: this node is no longer the leader');
    }
  }

  /** A plain message for Herald channel `channel` (undefined: no rule takes it). */
  private onPlain(channel: string | undefined, text: string): void {
    if (channel === undefined || !this.stats.leader || Date.now() > this.leaderUntil) return;
    this.stats.received += 1;
    this.apply(channel, text, undefined);
  }

  private onMessage(text: string): void {
    // A message that arrives after the lease may have run out is left to the next leader's subscribers.
    if (!this.stats.leader || Date.now() > this.leaderUntil) return;
    this.stats.received += 1;
    const parsed = parseIngest(text);
    if (typeof parsed === 'string') {
      this.stats.malformed += 1;
      this.log.warn({ reason: parsed, message: text.slice(0, 200) }, 'malformed message on the ingestion channel');
      return;
    }
    this.apply(parsed.channel, parsed.data, parsed.idempotencyKey);
  }

  /** Publishes through the hub; counts and logs (throttled) what was refused or failed. */
  private apply(channel: string, data: unknown, idempotencyKey: string | undefined): void {
    this.opts.publish(channel, data, idempotencyKey).then(
      () => {
        this.stats.applied += 1;
      },
      (err: unknown) => {
        if (err instanceof HeraldError && err.code !== 'HERALD_ERR_ENGINE_UNAVAILABLE') {
          this.stats.rejected += 1;
          this.log.warn({ code: err.code, reason: err.message, channel }, 'ingested message refused');
        } else {
          this.stats.failed += 1;
          this.log.warn({ err }, 'ingested message could not be published');
        }
      },
    );
  }
}

/** The ingestion message, or why it is malformed. */
export function parseIngest(
  text: string,
): { channel: string; data: unknown; idempotencyKey: string | undefined } | string {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return 'not a JSON object';
  const m = msg as Record<string, unknown>;
  if (typeof m['channel'] !== 'string') return '"channel" must be a string';
  if (!('data' in m)) return '"data" is required';
  const key = m['idempotencyKey'];
  if (key !== undefined && (typeof key !== 'string' || key === '' || key.length > MAX_IDEMPOTENCY_KEY)) {
    return `"idempotencyKey" must be a string of 1-${MAX_IDEMPOTENCY_KEY} characters`;
  }
  for (const k of Object.keys(m)) {
    if (k !== 'channel' && k !== 'data' && k !== 'idempotencyKey') return `unknown field "${k}"`;
  }
  return { channel: m['channel'], data: m['data'], idempotencyKey: key };
}
