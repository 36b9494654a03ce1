/**
 * The Redis engine: streams, offsets, history and idempotency keys in Redis, shared by every node
 * that points at the same Redis (or the same shards, or the same Redis Cluster).
 *
 * - `publish` is one Lua script (publish.lua), sent as one EVALSHA on an auto-pipelined connection:
 *   it checks the idempotency key, increments the top offset of the channel's stream and of every
 *   subtree stream above it, appends to each stream's history (a Redis Stream with entry ids
 *   `<offset>-0`, trimmed to the namespace's size, expiring with its TTL) and sends the publication
 *   on each stream's pub/sub channel. Redis runs a script atomically, so offsets of a stream follow
 *   one total order, and its pub/sub messages leave in that order.
 * - Each stream has an epoch in its meta hash. When the meta is gone (expired after `metaTtl`,
 *   evicted, Redis restarted without persistence) the next publish or read starts a new epoch at
 *   offset 1, so old cursors are told `recovered: false`.
 * - The meta also names the Redis server that wrote it (run id and replication id, see
 *   publish.lua). A meta that another server wrote came back from a snapshot or an AOF, or from a
 *   master that a promoted replica followed, perhaps behind: its top offset may have gone back, and
 *   going on from it would hand out offsets twice. The scripts check this on every call and give the
 *   stream a new epoch first (keeping the offsets and history that survived), so after a restart,
 *   restore or failover no epoch goes on with reused offsets and old cursors are told
 *   `recovered: false` (`stats.epochsRenewed` counts these streams; a warning is logged).
 * - `history` is one Lua script too (history.lua): it drops expired publications and reads a range.
 * - Live publications reach the node through one pub/sub subscription per stream on a subscriber
 *   link (see subscriber-link.ts), placed by the topology (topology.ts). When a subscription was
 *   lost and is confirmed again (a link came back; on a Cluster, a failover or slot move took it to
 *   another master), the engine calls `sink.onGap(streams)`, and the hub re-reads history.
 * - `control`: requests between nodes on per-node pub/sub channels (see control.ts).
 * - `nodes`: every node's latest figures for the admin page (see nodes.ts).
 * - `presence`: who is subscribed to each channel of a presence namespace, shared by every node
 *   (see presence.ts); its joins and leaves travel on the channels' own pub/sub channels.
 */
import { randomBytes } from 'node:crypto';
import { namespaceOf, streamsOf } from '@herald/protocol';
import type {
  Engine,
  EngineAvailability,
  EngineIngestion,
  IngestionOptions,
  HistoryOutcome,
  HistoryRequest,
  Publication,
  PublicationSink,
  PublishOutcome,
  PublishRequest,
} from '../../core/engine.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import { RedisControl, type RedisControlStats } from './control.js';
import { KeySpace } from './keys.js';
import { RedisIngest } from './ingest.js';
import { RedisNodes } from './nodes.js';
import { RedisPresence } from './presence.js';
import { loadScripts } from './scripts.js';
import { createTopology, isLinkError, type ShardStatus, type Topology, type TopologyStats } from './topology.js';

/** How long a history read waits for a reconnecting command connection before it is tried again. */
const HISTORY_RETRY_WAIT_MS = 1_000;

export interface RedisEngineOptions {
  /** One URL per independent shard, or seed nodes of a Redis Cluster. Default `redis://127.0.0.1:6379`. */
  readonly urls?: readonly string[];
  /** The URLs are nodes of a Redis Cluster (sharded pub/sub). */
  readonly cluster?: boolean;
  /** Prefix of every key and pub/sub channel, so several Herald deployments can share a Redis. */
  readonly prefix?: string;
  readonly logger?: Logger;
  /** How long a connection attempt may take, in ms. */
  readonly connectTimeout?: number;
  /** How long a command may wait for its reply before it fails, in ms. */
  readonly commandTimeout?: number;
  /** How long a stream that was read but never published to keeps its epoch, in ms (default 24 h). */
  readonly idleStreamTtl?: number;
}

export interface RedisEngineStats {
  /** Live publications received from Redis for this node's streams. */
  received: number;
  /** Times subscriptions were confirmed again after a loss (each one made the hub re-read history). */
  gaps: number;
  /** Messages on Herald's pub/sub channels that could not be read (another writer?). */
  badMessages: number;
  /**
   * Streams that got a new epoch because their meta was written by another Redis server (a restart
   * from a snapshot or AOF, a failover): their old cursors are told `recovered: false`.
   */
  epochsRenewed: number;
}

/** How many changed-server warnings an engine logs at most (one per restart or failover, normally). */
const MAX_SERVER_CHANGE_WARNINGS = 32;

type EngineState = 'created' | 'starting' | 'running' | 'closed';

export class RedisEngine implements Engine {
  readonly name = 'redis';
  /** Random per engine instance: names this node's Redis connections and prefixes its epochs. */
  readonly instanceId = randomBytes(6).toString('base64url');
  readonly keys: KeySpace;
  readonly topology: Topology;
  readonly stats: RedisEngineStats = { received: 0, gaps: 0, badMessages: 0, epochsRenewed: 0 };
  readonly control: RedisControl;
  readonly presence: RedisPresence;
  readonly nodes: RedisNodes;
  private readonly logger: Logger;
  private readonly idleStreamTtl: number;
  private state: EngineState = 'created';
  private sink: PublicationSink | undefined;
  private epochSeq = 0;
  /** Streams this node subscribes to, with their pub/sub channels. */
  private readonly subscribed = new Map<string, string>();
  private readonly streamOfChannel = new Map<string, string>();
  /** Times a changed-server warning was logged (capped by MAX_SERVER_CHANGE_WARNINGS). */
  private serverChangeWarnings = 0;
  /** When a script last renewed epochs (ms): a burst of renewals is logged once. */
  private lastRenewalAt = 0;

  constructor(opts: RedisEngineOptions = {}) {
    this.logger = opts.logger ?? silentLogger;
    this.keys = new KeySpace(opts.prefix ?? 'herald');
    this.idleStreamTtl = opts.idleStreamTtl ?? 86_400_000;
    const urls = opts.urls !== undefined && opts.urls.length > 0 ? opts.urls : ['redis://127.0.0.1:6379'];
    this.topology = createTopology({
      urls,
      cluster: opts.cluster ?? false,
      scripts: loadScripts(),
      logger: this.logger,
      connectionName: this.connectionName,
      connectTimeout: opts.connectTimeout ?? 5_000,
      commandTimeout: opts.commandTimeout ?? 5_000,
      onMessage: (channel, payload) => this.onMessage(channel, payload),
      onRestored: (channels) => this.onRestored(channels),
    });
    this.control = new RedisControl({
      topology: this.topology,
      keys: this.keys,
      logger: this.logger,
      idPrefix: this.instanceId,
    });
    this.nodes = new RedisNodes(this.topology, this.keys.nodes());
    this.presence = new RedisPresence({
      keys: this.keys,
      topology: this.topology,
      assertRunning: () => this.assertRunning(),
    });
  }

  /** CLIENT SETNAME base of this node's connections (`<name>:cmd`, `<name>:sub`, `<name>:ingest`). */
  get connectionName(): string {
    return `herald:${this.instanceId}`;
  }

  async start(sink: PublicationSink): Promise<void> {
    if (this.state !== 'created') throw new Error(`redis engine cannot start: it is ${this.state}`);
    this.state = 'starting';
    this.sink = sink;
    try {
      await this.topology.start();
    } catch (err) {
      await this.topology.close();
      this.state = 'closed';
      throw err instanceof Error ? err : new Error(String(err));
    }
    this.state = 'running';
    this.logger.info(
      { mode: this.topology.mode, redis: this.topology.status().map((s) => s.redis) },
      'redis engine ready',
    );
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.sink = undefined;
    this.control.close();
    this.subscribed.clear();
    this.streamOfChannel.clear();
    await this.topology.close();
  }

  ready(): boolean {
    return this.state === 'running' && this.topology.ready();
  }

  /** Publishing by Redis PUBLISH to a configured channel (one node at a time holds the lease). */
  ingestion(opts: IngestionOptions): EngineIngestion {
    return new RedisIngest({ engine: this, ...opts });
  }

  availability(): EngineAvailability {
    const a = this.topology.availability();
    return this.state === 'running' ? a : { parts: a.parts, up: 0 };
  }

  /**
   * Per-shard connection states and counters, for `info`. `topology` counts what topology changes
   * did (Cluster slot map reads and changes, subscriptions moved to another master and how long
   * that took, `sunsubscribe` pushes, MOVED redirections of subscriptions).
   */
  status(): {
    mode: string;
    shards: ShardStatus[];
    streams: number;
    control: RedisControlStats;
    topology: TopologyStats;
  } & RedisEngineStats {
    return {
      mode: this.topology.mode,
      shards: this.topology.status(),
      streams: this.subscribed.size,
      ...this.stats,
      control: { ...this.control.stats },
      topology: { ...this.topology.stats },
    };
  }

  instrument(m: Metrics): void {
    const stats = this.stats;
    m.counterFn('herald_redis_received_total', 'Live publications received from Redis', () => stats.received);
    m.counterFn(
      'herald_redis_catch_ups_total',
      'Times subscriptions were confirmed again after a lost link or a move (the hub re-read history)',
      () => stats.gaps,
    );
    m.counterFn(
      'herald_redis_bad_messages_total',
      'Unreadable messages on Herald pub/sub channels',
      () => stats.badMessages,
    );
    m.counterFn(
      'herald_redis_epochs_renewed_total',
      'Streams given a new epoch because Redis restarted, was restored or failed over',
      () => stats.epochsRenewed,
    );
    const topo = this.topology.stats;
    m.counterFn('herald_redis_slot_map_changes_total', 'Cluster slot map changes seen', () => topo.slotMapChanges);
    m.counterFn(
      'herald_redis_channels_moved_total',
      'Channels subscribed again on another master',
      () => topo.channelsMoved,
    );
    for (const kind of ['commands', 'subscriber'] as const) {
      for (const state of ['up', 'down'] as const) {
        m.gauge(
          'herald_redis_links',
          'Connections to Redis servers (command connection, subscriber link) by state',
          () => {
            let n = 0;
            for (const s of this.topology.status()) if ((s[kind] === 'ready') === (state === 'up')) n++;
            return n;
          },
          { kind, state },
        );
      }
    }
  }

  async publish(req: PublishRequest): Promise<PublishOutcome> {
    this.assertRunning();
    const streams = streamsOf(req.channel);
    const idem = req.idempotencyKey !== undefined;
    const keys = [idem ? this.keys.idempotency(req.channel, req.idempotencyKey ?? '') : this.keys.meta(req.channel)];
    for (const s of streams) keys.push(this.keys.meta(s), this.keys.history(s));
    const ttl = Math.max(1, Math.floor(req.history.ttlMs));
    const args: (string | number)[] = [
      this.nextEpoch(),
      idem ? '1' : '0',
      Math.max(1, Math.floor(req.idempotencyWindowMs)),
      Math.max(0, Math.floor(req.history.size)),
      ttl,
      Math.max(ttl, Math.floor(req.history.metaTtlMs)),
      req.channel,
      req.data,
      this.topology.publishCommand,
    ];
    for (const s of streams) args.push(this.keys.live(s));
    const reply = await this.topology.client(namespaceOf(req.channel)).heraldPublish(keys.length, ...keys, ...args);
    if (!Array.isArray(reply) || (reply.length !== 3 && reply.length !== 4)) {
      throw new Error('unexpected reply from the publish script');
    }
    const [dup, epoch, offset, renewed] = reply as [unknown, unknown, unknown, unknown];
    this.noteRenewals(Number(renewed ?? 0), req.channel);
    return { position: { epoch: String(epoch), offset: Number(offset) }, duplicate: Number(dup) === 1 };
  }

  /**
   * Reads history. A read is safe to repeat, so one that failed because the command connection was
   * down or closing (typically: right after a subscriber link came back, when the hub catches up its
   * subscribers) waits up to a second for the connection and is tried once more.
   */
  async history(req: HistoryRequest): Promise<HistoryOutcome> {
    this.assertRunning();
    const ns = namespaceOf(req.stream);
    try {
      return await this.readHistory(req);
    } catch (err) {
      if (!isLinkError(err) || !(await this.topology.waitReady(ns, HISTORY_RETRY_WAIT_MS))) throw err;
      this.assertRunning();
      return this.readHistory(req);
    }
  }

  private async readHistory(req: HistoryRequest): Promise<HistoryOutcome> {
    const stream = req.stream;
    const reply = await this.topology
      .client(namespaceOf(stream))
      .heraldHistory(
        this.keys.meta(stream),
        this.keys.history(stream),
        this.nextEpoch(),
        this.idleStreamTtl,
        req.since !== undefined ? '1' : '0',
        req.since?.epoch ?? '',
        req.since?.offset ?? 0,
        Math.max(0, Math.floor(req.limit)),
        req.reverse === true ? '1' : '0',
      );
    if (!Array.isArray(reply) || reply.length !== 5) throw new Error('unexpected reply from the history script');
    const [epochRaw, top, oldest, entries, renewed] = reply as [unknown, unknown, unknown, unknown, unknown];
    this.noteRenewals(Number(renewed), stream);
    const epoch = String(epochRaw);
    const publications: Publication[] = [];
    if (Array.isArray(entries)) {
      for (const entry of entries as [string, string[]][]) publications.push(toPublication(stream, epoch, entry));
    }
    return { position: { epoch, offset: Number(top) }, oldest: Number(oldest), publications };
  }

  async subscribe(stream: string): Promise<void> {
    this.assertRunning();
    if (this.subscribed.has(stream)) return;
    const channel = this.keys.live(stream);
    this.subscribed.set(stream, channel);
    this.streamOfChannel.set(channel, stream);
    try {
      // The topology keeps it subscribed from now on, wherever its slot goes, until unsubscribe.
      await this.topology.subscribe(namespaceOf(stream), channel);
    } catch (err) {
      if (this.subscribed.get(stream) === channel) {
        this.subscribed.delete(stream);
        this.streamOfChannel.delete(channel);
        this.topology.unsubscribe(channel);
      }
      throw err;
    }
  }

  unsubscribe(stream: string): Promise<void> {
    const channel = this.subscribed.get(stream);
    if (channel === undefined) return Promise.resolve();
    this.subscribed.delete(stream);
    this.streamOfChannel.delete(channel);
    this.topology.unsubscribe(channel);
    return Promise.resolve();
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new Error(`redis engine is ${this.state}`);
  }

  /**
   * Counts streams that a script gave a new epoch because Redis is not the server that wrote their
   * meta, and warns: when it is first seen, then again only after a quiet minute (after a restart,
   * streams are renewed one by one, as they are published to or read, for a while).
   */
  private noteRenewals(n: number, stream: string): void {
    if (!(n > 0)) return;
    this.stats.epochsRenewed += n;
    const now = Date.now();
    const quiet = now - this.lastRenewalAt > 60_000;
    this.lastRenewalAt = now;
    if (!quiet || this.serverChangeWarnings >= MAX_SERVER_CHANGE_WARNINGS) return;
    this.serverChangeWarnings += 1;
    this.logger.warn(
      { stream, namespace: namespaceOf(stream) },
      'redis: stream data written by another Redis server (restart from a snapshot or AOF, or failover): ' +
        'its streams get new epochs, and clients resuming from before are told recovered: false',
    );
  }

  /** An epoch for a stream whose meta is missing or another server's: unique per engine and call. */
  private nextEpoch(): string {
    this.epochSeq += 1;
    return `${this.instanceId}${this.epochSeq.toString(36)}`;
  }

  private onMessage(channel: string, payload: string): void {
    if (channel === this.control.servedChannel) {
      this.control.onMessage(payload);
      return;
    }
    const stream = this.streamOfChannel.get(channel);
    const sink = this.sink;
    if (stream === undefined || sink === undefined) return;
    if (payload.startsWith('\n')) {
      // A presence join or leave (presence.lua), sent on the stream's channel beside its publications.
      if (!this.presence.onMessage(stream, payload)) this.noteBadMessage(channel);
      return;
    }
    const pub = parseLive(stream, payload);
    if (pub === undefined) {
      this.noteBadMessage(channel);
      return;
    }
    this.stats.received += 1;
    sink.onPublication(pub);
  }

  private noteBadMessage(channel: string): void {
    this.stats.badMessages += 1;
    if (this.stats.badMessages === 1) this.logger.warn({ channel }, 'unreadable message on a Herald pub/sub channel');
  }

  private onRestored(channels: readonly string[]): void {
    const streams: string[] = [];
    for (const c of channels) {
      const s = this.streamOfChannel.get(c);
      if (s !== undefined) streams.push(s);
    }
    this.stats.gaps += 1;
    if (streams.length > 0) this.sink?.onGap?.(streams);
  }
}

/** `epoch \n offset \n time \n channel \n data`, as publish.lua sends it. */
function parseLive(stream: string, payload: string): Publication | undefined {
  const a = payload.indexOf('\n');
  const b = payload.indexOf('\n', a + 1);
  const c = payload.indexOf('\n', b + 1);
  const d = payload.indexOf('\n', c + 1);
  if (a <= 0 || b === -1 || c === -1 || d === -1) return undefined;
  const offset = Number(payload.slice(a + 1, b));
  const time = Number(payload.slice(b + 1, c));
  if (!Number.isSafeInteger(offset) || offset < 1 || !Number.isFinite(time)) return undefined;
  return {
    stream,
    channel: payload.slice(c + 1, d),
    epoch: payload.slice(0, a),
    offset,
    data: payload.slice(d + 1),
    time,
  };
}

/** One Redis Stream entry (`[id, [field, value, ...]]`, fields `t`, `c` (subtree streams), `d`). */
function toPublication(stream: string, epoch: string, [id, fields]: [string, string[]]): Publication {
  let time = 0;
  let channel = stream;
  let data = 'null';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const value = fields[i + 1] as string;
    const field = fields[i];
    if (field === 't') time = Number(value);
    else if (field === 'c') channel = value;
    else if (field === 'd') data = value;
  }
  return { stream, channel, epoch, offset: parseInt(id, 10), data, time };
}
