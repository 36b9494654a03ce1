/**
 * Where a namespace's keys and pub/sub channels live, and the connections to get there:
 *
 * - `shards`: one or more independent Redis servers. A namespace goes to the server chosen by jump
 *   consistent hashing of its name (one server: always that one). Each server has one command
 *   connection (Lua scripts, auto-pipelined) and one subscriber link, SUBSCRIBE/PUBLISH.
 * - `cluster`: a Redis Cluster. Commands go through ioredis' Cluster client (slot routing, MOVED
 *   and ASK redirections); live publications use sharded pub/sub (SPUBLISH in the script,
 *   SSUBSCRIBE on a subscriber link per master), so a publication reaches only the shard that owns
 *   its namespace's slot instead of being broadcast to every cluster node. Commands are sent one by
 *   one, not auto-pipelined: ioredis groups an auto-pipeline by the slot of the command's first
 *   argument, which for a script is its key count, so a pipeline could mix masters and be refused
 *   whole; sent alone, each command is routed by its keys and redirected on its own.
 *
 * Subscriptions (`subscribe`/`unsubscribe`) are placed on the link of the server that owns the
 * channel. A channel whose subscription was lost and confirmed again (a reconnect; on a Cluster, a
 * failover or slot move that took it to another master) is reported with `onRestored`, so the hub
 * re-reads history for its subscribers. On a Cluster the placement follows Redis' own signals: the
 * slot map, refreshed every `slotsRefreshMs` (and every 250 ms while a master is unreachable or a
 * channel waits for its new place), a `sunsubscribe` that a master sends when a slot leaves it, and
 * a `MOVED` refusal of an SSUBSCRIBE. Each move is logged and counted (`TopologyStats`).
 */
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import type { Logger } from '../../core/logger.js';
import { clusterSlot, shardOf } from './keys.js';
import type { RespError } from './resp.js';
import type { LuaScripts } from './scripts.js';
import { SubscriberLink, type LinkTarget, type SubscriberLinkOptions } from './subscriber-link.js';

/** A Redis server as named by a `redis://` or `rediss://` URL. */
export interface RedisTarget {
  readonly host: string;
  readonly port: number;
  readonly username?: string;
  readonly password?: string;
  readonly db: number;
  readonly tls: boolean;
  /** The URL without credentials, for logs and messages. */
  readonly label: string;
}

/** Parses `redis[s]://[[user]:password@]host[:port][/db]`; throws with a message that never quotes a password. */
export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error('is not a URL; expected redis://host:port or rediss://host:port (TLS)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`has scheme "${u.protocol.slice(0, -1)}"; expected redis:// or rediss:// (TLS)`);
  }
  if (u.hostname === '') throw new Error('has no host');
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,2}$/.test(path)) throw new Error('must end with an optional database number (/0 to /15)');
  if (u.search !== '' || u.hash !== '') throw new Error('must not have a query or fragment');
  const port = u.port === '' ? 6379 : Number(u.port);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const db = path === '' ? 0 : Number(path);
  const target: RedisTarget = {
    host,
    port,
    db,
    tls: u.protocol === 'rediss:',
    label: `${u.protocol}//${u.host}${db !== 0 ? `/${db}` : ''}`,
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
  };
  return target;
}

/** The result type ioredis gives custom script commands. */
export interface ScriptClient {
  heraldPublish(numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  heraldHistory(...args: (string | number)[]): Promise<unknown>;
  heraldLease(key: string, node: string, leaseMs: number, op: 'acquire' | 'release'): Promise<unknown>;
  heraldPresence(numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

function defineScripts(client: Redis | Cluster, scripts: LuaScripts): ScriptClient {
  // ioredis runs EVALSHA and falls back to EVAL once when Redis does not know the script (NOSCRIPT).
  client.defineCommand('heraldPublish', { lua: scripts.publish });
  client.defineCommand('heraldHistory', { numberOfKeys: 2, lua: scripts.history });
  client.defineCommand('heraldLease', { numberOfKeys: 1, lua: scripts.lease });
  client.defineCommand('heraldPresence', { lua: scripts.presence });
  return client as unknown as ScriptClient;
}

export interface TopologyOptions {
  readonly urls: readonly string[];
  readonly cluster: boolean;
  readonly scripts: LuaScripts;
  readonly logger: Logger;
  /** CLIENT SETNAME base: connections are named `<name>:cmd`, `<name>:sub`. */
  readonly connectionName: string;
  readonly connectTimeout: number;
  readonly commandTimeout: number;
  /** Cluster: how often the slot map is read again when nothing is wrong, in ms (default 1000). */
  readonly slotsRefreshMs?: number;
  onMessage(channel: string, payload: string): void;
  onRestored(channels: readonly string[]): void;
}

/** What the topology did about topology changes (engine `status()`, server API `info`). */
export interface TopologyStats {
  /** Cluster slot map reads. */
  slotRefreshes: number;
  /** Times the slot map read differed from the one before (failover, resharding). */
  slotMapChanges: number;
  /** Moves: groups of channels subscribed again on another master (one log line each). */
  moves: number;
  /** Channels subscribed again on another master. */
  channelsMoved: number;
  /** `sunsubscribe` pushes: Redis ended a subscription itself (its slot left that master). */
  serverUnsubscribes: number;
  /** SSUBSCRIBEs refused with MOVED (the slot map was stale) and sent where Redis said. */
  redirects: number;
  /**
   * Time from when the last move was seen (a slot map change, a `sunsubscribe`, a MOVED) to the
   * confirmation of all its subscriptions on their new master, ms.
   */
  lastMoveMs: number;
  /** The longest such time seen, ms. */
  maxMoveMs: number;
}

export interface ShardStatus {
  readonly redis: string;
  readonly commands: string;
  readonly subscriber: string;
  readonly channels: number;
}

export interface Topology {
  readonly mode: 'shards' | 'cluster';
  /** Which pub/sub command the publish script uses. */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  /** Connects everything; rejects with a message naming the server that could not be reached. */
  start(): Promise<void>;
  close(): Promise<void>;
  ready(): boolean;
  client(namespace: string): ScriptClient;
  /** Resolves true once the command connection serving `namespace` is ready (false after `ms`). */
  waitReady(namespace: string, ms: number): Promise<boolean>;
  /**
   * Subscribes this node to the pub/sub `channel` of `shardKey` (a namespace, or a node id; on a
   * Cluster the channel's hash tag must be `shardKey`). Resolves once Redis confirmed it; rejects at
   * once when that server's link is down, or when Redis does not confirm within the command timeout.
   * From then on the topology keeps it subscribed wherever its slot goes, until `unsubscribe`.
   */
  subscribe(shardKey: string, channel: string): Promise<void>;
  unsubscribe(channel: string): void;
  /**
   * Sends `message` on a pub/sub channel that is not a stream's (a node's control channel) through
   * the server that `shardKey` maps to, as `subscribe` does: PUBLISH on that shard, SPUBLISH on a
   * cluster (the channel's hash tag must be `shardKey`). Resolves with the number of receivers.
   */
  publish(shardKey: string, channel: string, message: string): Promise<number>;
  /** A plain connection to one server (shard 0, or a cluster master), for the ingestion subscriber. */
  firstTarget(): { options: RedisOptions; label: string };
  /** A command client for keys that are not per namespace (the ingestion lease). */
  globalClient(): ScriptClient;
  status(): ShardStatus[];
  readonly stats: TopologyStats;
  /** Shards (or Cluster masters) whose command connection and subscriber link are both up, of all. */
  availability(): { parts: number; up: number };
}

/** Reconnect with capped exponential backoff and jitter. */
function retryStrategy(times: number): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(times, 6));
  return Math.floor(base / 2 + Math.random() * (base / 2));
}

function connectionOptions(t: RedisTarget, opts: TopologyOptions): RedisOptions {
  return {
    host: t.host,
    port: t.port,
    db: t.db,
    ...(t.username !== undefined ? { username: t.username } : {}),
    ...(t.password !== undefined ? { password: t.password } : {}),
    ...(t.tls ? { tls: { servername: t.host } } : {}),
    connectTimeout: opts.connectTimeout,
    // How long a closing socket may take before it is destroyed (ioredis waits 2 s by default, even
    // for a socket that never connected, which delays the exit of a `herald serve` that cannot start).
    disconnectTimeout: 200,
    retryStrategy,
  };
}

/**
 * Where a subscriber link connects: `host:port`, with the credentials and TLS of `t` (the server
 * name checked against the certificate is `t`'s host, as for the command connections).
 */
function linkTarget(t: RedisTarget, host: string, port: number, opts: TopologyOptions): LinkTarget {
  return {
    host,
    port,
    username: t.username,
    password: t.password,
    tls: t.tls ? { servername: t.host } : undefined,
    connectionName: `${opts.connectionName}:sub`,
    connectTimeout: opts.connectTimeout,
    commandTimeout: opts.commandTimeout,
    retryStrategy,
  };
}

/** Options of a command connection: fail fast while Redis is away, never resend a command whose reply was lost. */
function commandOptions(base: RedisOptions, opts: TopologyOptions): RedisOptions {
  return {
    ...base,
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout: opts.commandTimeout,
    connectionName: `${opts.connectionName}:cmd`,
  };
}

/** Reads `INFO server` and checks the version and mode Herald needs. */
async function checkServer(client: Redis, label: string, cluster: boolean, logger: Logger): Promise<void> {
  const info = await client.info('server');
  // The scripts tell a restarted or failed-over server by these (publish.lua): without them they
  // cannot, and a restore from an older state could hand out offsets twice.
  const replication = await client.info('replication');
  if (!/^run_id:[0-9a-f]+/m.test(info) || !/^master_replid:[0-9a-f]+/m.test(replication)) {
    logger.warn(
      { redis: label },
      'Redis INFO shows no run_id or master_replid: Herald cannot notice when this server restarts from ' +
        'older data or fails over, and epochs will not change then',
    );
  }
  const version = /redis_version:(\d+)\.(\d+)/.exec(info);
  const mode = /redis_mode:(\w+)/.exec(info)?.[1];
  const [major, minor] = version ? [Number(version[1]), Number(version[2])] : [0, 0];
  const need = cluster ? [7, 0] : [6, 2];
  if (major < (need[0] ?? 0) || (major === need[0] && minor < (need[1] ?? 0))) {
    throw new Error(
      `Redis at ${label} is version ${major}.${minor}; Herald needs ${need.join('.')} or later${cluster ? ' for sharded pub/sub' : ''}`,
    );
  }
  if (mode === 'cluster' && !cluster) {
    throw new Error(`Redis at ${label} is a cluster node: set redis.cluster to true (HERALD_REDIS_CLUSTER=true)`);
  }
  if (mode !== 'cluster' && cluster) {
    throw new Error(`Redis at ${label} is not in cluster mode, but redis.cluster is true`);
  }
}

/** Tells why a first connection failed: ioredis rejects with "Connection is closed.", the cause came as an 'error' event. */
async function connectOrExplain(client: Redis | Cluster, label: string): Promise<void> {
  let cause: string | undefined;
  const onError = (err: Error): void => {
    cause ??= err.message;
  };
  client.on('error', onError);
  try {
    await client.connect();
  } catch (err) {
    const why = cause ?? (err instanceof Error ? err.message : String(err));
    throw new Error(`cannot connect to Redis at ${label}: ${why}`);
  } finally {
    client.off('error', onError);
  }
}

/**
 * Calls `fn` once `client` is ready. A restored subscriber link is reported only then: the hub
 * answers a gap by reading history, which needs the command connection (often lost at the same time).
 */
function whenReady(client: Redis | Cluster, fn: () => void): void {
  if (usable(client)) fn();
  else client.once('ready', fn);
}

/** Ready and able to write (a socket that Redis just closed is 'ready' until ioredis sees the close). */
function usable(client: Redis | Cluster): boolean {
  if (client.status !== 'ready') return false;
  return client instanceof Redis ? client.stream?.writable === true : true;
}

function readyWithin(client: Redis | Cluster, ms: number): Promise<boolean> {
  if (usable(client)) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = (): void => done(true);
    const timer = setTimeout(() => done(false), ms);
    client.once('ready', onReady);
  });
}

/**
 * The command never reached Redis, or its connection closed before the reply: the connection was
 * down or going down (not an error reply, not a timeout of a slow Redis).
 */
export function isLinkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    err.message.startsWith("Stream isn't writeable") ||
    err.message.startsWith('Connection is closed')
  );
}

/** Logs a command connection's errors once per outage. */
function watchErrors(client: Redis | Cluster, label: string, logger: Logger): void {
  let logged = false;
  client.on('ready', () => {
    if (logged) logger.info({ redis: label }, 'redis connection restored');
    logged = false;
  });
  client.on('error', (err: Error) => {
    if (!logged) logger.warn({ err: err.message, redis: label }, 'redis connection error');
    logged = true;
  });
}

/** A channel this node subscribes to, and where. */
interface ChannelRecord {
  readonly channel: string;
  /** Key of the link that holds (or is to hold) it. */
  owner: string;
  /** Confirmed by Redis on the owner's link, and not lost since. */
  confirmed: boolean;
  /** Confirmed at least once: a later confirmation follows a loss, and is reported as a gap. */
  everConfirmed: boolean;
  /** `subscribe` calls waiting for the first confirmation. */
  waiters: { resolve(): void; reject(err: Error): void }[];
  /** The move it is part of, until it is confirmed again. */
  move: Move | undefined;
  /** A retry after a refusal is scheduled. */
  retry: NodeJS.Timeout | undefined;
}

/** Channels that left a master together (one log line when they are all subscribed again). */
interface Move {
  readonly reason: string;
  readonly from: string;
  readonly started: number;
  readonly to: Set<string>;
  channels: number;
  pending: number;
}

/** What a topology hears from its subscriber links. */
type LinkEvents = Pick<SubscriberLinkOptions, 'onMessage' | 'onSubscribed' | 'onDropped' | 'onRefused'>;

/** How long a channel refused by Redis (not with MOVED) waits before it is subscribed again, ms. */
const REFUSED_RETRY_MS = 1_000;

/**
 * Placement of subscriptions on subscriber links, shared by both topologies: each channel has an
 * owner link (`ownerOf`); confirmations after a loss become gaps (`onRestored`, batched once the
 * owner's command connection is ready, since the hub answers a gap by reading history).
 */
abstract class LinkPlacement {
  readonly stats: TopologyStats = {
    slotRefreshes: 0,
    slotMapChanges: 0,
    moves: 0,
    channelsMoved: 0,
    serverUnsubscribes: 0,
    redirects: 0,
    lastMoveMs: 0,
    maxMoveMs: 0,
  };
  protected readonly records = new Map<string, ChannelRecord>();
  /** Moves with channels not confirmed yet. */
  protected readonly openMoves = new Set<Move>();
  private readonly gaps = new Map<string, Set<string>>();
  private gapFlush: NodeJS.Immediate | undefined;
  protected closed = false;

  constructor(protected readonly opts: TopologyOptions) {}

  /** The key of the link that should hold `channel` now (`shardKey` when there is no better answer). */
  protected abstract ownerOf(channel: string, shardKey: string): string | undefined;
  /** The link of `key`, created (and started) if needed. */
  protected abstract linkAt(key: string): SubscriberLink;
  protected abstract existingLink(key: string): SubscriberLink | undefined;
  /** Calls `fn` once the command connection serving the channels of link `key` is ready. */
  protected abstract whenCommandsReady(key: string, fn: () => void): void;
  /** A channel was lost where it was (a server-initiated unsubscribe, a MOVED): place it again. */
  protected abstract replace(rec: ChannelRecord, movedTo: string | undefined): void;

  protected linkEvents(key: string): LinkEvents {
    return {
      onMessage: (channel, payload) => this.opts.onMessage(channel, payload),
      onSubscribed: (_link, channel) => this.onSubscribed(key, channel),
      onDropped: (_link, channel) => this.onDropped(key, channel),
      onRefused: (_link, channel, err) => this.onRefused(key, channel, err),
    };
  }

  subscribe(shardKey: string, channel: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('redis topology is closed'));
    let rec = this.records.get(channel);
    if (rec === undefined) {
      const owner = this.ownerOf(channel, shardKey);
      if (owner === undefined) {
        return Promise.reject(new Error(`no Redis Cluster master serves the slot of "${shardKey}" yet`));
      }
      const link = this.linkAt(owner);
      if (link.state === 'down') {
        return Promise.reject(new Error(`redis subscriber link to ${link.label} is down`));
      }
      rec = { channel, owner, confirmed: false, everConfirmed: false, waiters: [], move: undefined, retry: undefined };
      this.records.set(channel, rec);
      link.add(channel);
    }
    if (rec.confirmed) return Promise.resolve();
    const r = rec;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        r.waiters = r.waiters.filter((w) => w !== waiter);
        if (!r.everConfirmed && r.waiters.length === 0 && this.records.get(channel) === r) this.unsubscribe(channel);
        const label = this.existingLink(r.owner)?.label ?? r.owner;
        reject(new Error(`redis at ${label} did not confirm the subscription within ${this.opts.commandTimeout} ms`));
      }, this.opts.commandTimeout);
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      r.waiters.push(waiter);
    });
  }

  unsubscribe(channel: string): void {
    const rec = this.records.get(channel);
    if (rec === undefined) return;
    this.records.delete(channel);
    clearTimeout(rec.retry);
    this.leaveMove(rec);
    this.existingLink(rec.owner)?.remove(channel);
    for (const w of rec.waiters.splice(0)) w.reject(new Error(`unsubscribed from ${channel}`));
  }

  /** Counts `rec` in `move` (until it is confirmed again). */
  protected joinMove(rec: ChannelRecord, move: Move): void {
    if (rec.move === move) return;
    this.leaveMove(rec);
    rec.move = move;
    move.channels += 1;
    move.pending += 1;
    this.openMoves.add(move);
    this.stats.channelsMoved += 1;
  }

  /** Subscribes `rec` on link `to`, and lets it go where it was. */
  protected assign(rec: ChannelRecord, to: string): void {
    if (rec.owner !== to) {
      this.existingLink(rec.owner)?.remove(rec.channel);
      rec.owner = to;
    }
    rec.confirmed = false;
    rec.move?.to.add(to);
    this.linkAt(to).add(rec.channel);
  }

  protected newMove(reason: string, from: string): Move {
    return { reason, from, started: Date.now(), to: new Set(), channels: 0, pending: 0 };
  }

  /** Logs a move when its channels have been handed to their new links. */
  protected announce(move: Move): void {
    if (move.channels === 0) return;
    this.stats.moves += 1;
    this.opts.logger.info(
      { reason: move.reason, from: move.from, to: [...move.to], channels: move.channels },
      'redis cluster: subscriptions moving to another master',
    );
  }

  private leaveMove(rec: ChannelRecord): void {
    const move = rec.move;
    if (move === undefined) return;
    rec.move = undefined;
    move.pending -= 1;
    if (move.pending === 0) this.finishMove(move);
  }

  private finishMove(move: Move): void {
    this.openMoves.delete(move);
    const ms = Date.now() - move.started;
    this.stats.lastMoveMs = ms;
    this.stats.maxMoveMs = Math.max(this.stats.maxMoveMs, ms);
    this.opts.logger.info(
      { reason: move.reason, from: move.from, to: [...move.to], channels: move.channels, ms },
      'redis cluster: subscriptions re-established on another master',
    );
  }

  private onSubscribed(key: string, channel: string): void {
    const rec = this.records.get(channel);
    if (rec === undefined || rec.owner !== key) {
      // Confirmed where it no longer belongs (it moved, or was unsubscribed, meanwhile).
      this.existingLink(key)?.remove(channel);
      return;
    }
    rec.confirmed = true;
    this.leaveMove(rec);
    if (!rec.everConfirmed) {
      rec.everConfirmed = true;
      for (const w of rec.waiters.splice(0)) w.resolve();
      return;
    }
    let set = this.gaps.get(key);
    if (set === undefined) this.gaps.set(key, (set = new Set()));
    set.add(channel);
    this.gapFlush ??= setImmediate(() => this.flushGaps());
  }

  private flushGaps(): void {
    this.gapFlush = undefined;
    for (const [key, set] of this.gaps) {
      const channels = [...set];
      this.whenCommandsReady(key, () => {
        if (!this.closed) this.opts.onRestored(channels);
      });
    }
    this.gaps.clear();
  }

  private onDropped(key: string, channel: string): void {
    this.stats.serverUnsubscribes += 1;
    const rec = this.records.get(channel);
    if (rec === undefined || rec.owner !== key) return;
    rec.confirmed = false;
    this.replace(rec, undefined);
  }

  private onRefused(key: string, channel: string, err: RespError): void {
    const rec = this.records.get(channel);
    if (rec === undefined || rec.owner !== key) return;
    rec.confirmed = false;
    const moved = /^MOVED \d+ (\S+)$/.exec(err.message)?.[1];
    if (moved !== undefined) {
      this.stats.redirects += 1;
      this.replace(rec, moved);
      return;
    }
    if (!rec.everConfirmed) {
      // A new subscription: its subscriber is told.
      this.records.delete(channel);
      this.leaveMove(rec);
      for (const w of rec.waiters.splice(0)) w.reject(new Error(`redis refused to subscribe: ${err.message}`));
      return;
    }
    // One that was live: try again (its subscribers catch up once it is confirmed).
    this.opts.logger.warn({ err: err.message, channel }, 'redis refused a resubscription; trying again');
    clearTimeout(rec.retry);
    rec.retry = setTimeout(() => {
      rec.retry = undefined;
      if (this.records.get(channel) === rec && !rec.confirmed) this.replace(rec, undefined);
    }, REFUSED_RETRY_MS);
    rec.retry.unref();
  }

  /** Marks the channels of link `key` as lost (the connection dropped; they come back with it). */
  protected onLost(key: string): void {
    for (const rec of this.records.values()) if (rec.owner === key) rec.confirmed = false;
  }

  protected closeRecords(): void {
    this.closed = true;
    clearImmediate(this.gapFlush);
    this.gapFlush = undefined;
    this.gaps.clear();
    for (const rec of this.records.values()) {
      clearTimeout(rec.retry);
      for (const w of rec.waiters.splice(0)) w.reject(new Error('redis topology is closed'));
    }
    this.records.clear();
    this.openMoves.clear();
  }
}

class Shard {
  readonly commands: Redis;
  readonly scripts: ScriptClient;
  readonly link: SubscriberLink;
  constructor(
    readonly target: RedisTarget,
    opts: TopologyOptions,
    events: LinkEvents & { onLost(): void },
  ) {
    const base = connectionOptions(target, opts);
    this.commands = new Redis(commandOptions(base, opts));
    this.scripts = defineScripts(this.commands, opts.scripts);
    watchErrors(this.commands, target.label, opts.logger);
    this.link = new SubscriberLink({
      target: linkTarget(target, target.host, target.port, opts),
      mode: 'classic',
      label: target.label,
      logger: opts.logger,
      ...events,
      onLost: () => events.onLost(),
    });
  }
}

export class ShardsTopology extends LinkPlacement implements Topology {
  readonly mode = 'shards';
  readonly publishCommand = 'PUBLISH';
  private readonly shards: Shard[];

  constructor(opts: TopologyOptions) {
    super(opts);
    this.shards = opts.urls.map((u, i) => {
      const key = String(i);
      return new Shard(parseRedisUrl(u), opts, { ...this.linkEvents(key), onLost: () => this.onLost(key) });
    });
  }

  async start(): Promise<void> {
    await Promise.all(
      this.shards.map(async (s) => {
        await connectOrExplain(s.commands, s.target.label);
        await checkServer(s.commands, s.target.label, false, this.opts.logger);
        try {
          await s.link.start();
        } catch (err) {
          throw new Error(`cannot connect to Redis at ${s.target.label}: ${String(err)}`);
        }
      }),
    );
  }

  async close(): Promise<void> {
    this.closeRecords();
    for (const s of this.shards) {
      s.link.close();
      s.commands.disconnect();
    }
    return Promise.resolve();
  }

  ready(): boolean {
    return this.shards.every((s) => s.commands.status === 'ready' && s.link.ready());
  }

  availability(): { parts: number; up: number } {
    let up = 0;
    for (const s of this.shards) if (s.commands.status === 'ready' && s.link.ready()) up++;
    return { parts: this.shards.length, up };
  }

  private shard(namespace: string): Shard {
    return this.shards[shardOf(namespace, this.shards.length)] as Shard;
  }

  protected ownerOf(_channel: string, shardKey: string): string {
    return String(shardOf(shardKey, this.shards.length));
  }

  protected linkAt(key: string): SubscriberLink {
    return (this.shards[Number(key)] as Shard).link;
  }

  protected existingLink(key: string): SubscriberLink | undefined {
    return this.shards[Number(key)]?.link;
  }

  protected whenCommandsReady(key: string, fn: () => void): void {
    whenReady((this.shards[Number(key)] as Shard).commands, fn);
  }

  protected replace(rec: ChannelRecord): void {
    // Independent servers do not move channels: subscribe again where it was.
    this.assign(rec, rec.owner);
  }

  client(namespace: string): ScriptClient {
    return this.shard(namespace).scripts;
  }

  waitReady(namespace: string, ms: number): Promise<boolean> {
    return readyWithin(this.shard(namespace).commands, ms);
  }

  publish(shardKey: string, channel: string, message: string): Promise<number> {
    return this.shard(shardKey).commands.publish(channel, message);
  }

  firstTarget(): { options: RedisOptions; label: string } {
    const first = this.shards[0] as Shard;
    return { options: connectionOptions(first.target, this.opts), label: first.target.label };
  }

  globalClient(): ScriptClient {
    return (this.shards[0] as Shard).scripts;
  }

  status(): ShardStatus[] {
    return this.shards.map((s) => ({
      redis: s.target.label,
      commands: s.commands.status,
      subscriber: s.link.state,
      channels: s.link.channels.size,
    }));
  }
}

/** How often the slot map is read while a master is unreachable or a channel waits for its place, ms. */
const DEGRADED_REFRESH_MS = 250;

export class ClusterTopology extends LinkPlacement implements Topology {
  readonly mode = 'cluster';
  readonly publishCommand = 'SPUBLISH';
  private readonly cluster: Cluster;
  private readonly scripts: ScriptClient;
  private readonly seeds: RedisTarget[];
  private readonly base: RedisOptions;
  /** One sharded subscriber link per master, by "host:port". */
  private readonly links = new Map<string, SubscriberLink>();
  private readonly label: string;
  /** Owners of the slot ranges when last seen, to rebalance only when the map changed. */
  private slotMap = '';
  /** Channels lost where they were (server unsubscribe), to place again after the next slot map read. */
  private readonly unplaced = new Map<ChannelRecord, Move>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshDue = 0;
  private refreshing = false;
  private readonly refreshMs: number;

  constructor(opts: TopologyOptions) {
    super(opts);
    this.refreshMs = opts.slotsRefreshMs ?? 1_000;
    this.seeds = opts.urls.map(parseRedisUrl);
    const first = this.seeds[0] as RedisTarget;
    this.label = this.seeds.map((s) => s.label).join(', ');
    const { host: _h, port: _p, db: _db, retryStrategy: _r, ...auth } = connectionOptions(first, opts);
    this.base = auth;
    const nodes: ClusterNode[] = this.seeds.map((s) => ({ host: s.host, port: s.port }));
    const { enableOfflineQueue: _q, lazyConnect: _l, enableAutoPipelining: _a, ...cmd } = commandOptions(auth, opts);
    this.cluster = new Cluster(nodes, {
      lazyConnect: true,
      // Fail at once while the cluster is not ready; node connections keep ioredis' own settings
      // (they queue while connecting, and are replaced after a slot refresh when lost).
      enableOfflineQueue: false,
      // Off: see the top of this file. Commands to one master still leave in the order they were
      // made (batch publishes to one channel keep their order), on that master's connection.
      enableAutoPipelining: false,
      clusterRetryStrategy: retryStrategy,
      scaleReads: 'master',
      redisOptions: cmd,
    });
    this.scripts = defineScripts(this.cluster, opts.scripts);
    watchErrors(this.cluster, this.label, opts.logger);
    // ioredis sends ASKING (a command redirected during a slot migration) without handling its
    // promise: when that node's connection closes first (the pool drops a node that the slot map
    // does not list yet, such as a new master receiving its first slots), the rejection would be
    // unhandled, which ends a Node process. The redirected command itself fails or is retried as usual.
    this.cluster.on('+node', (node: Redis) => {
      const asking = node.asking.bind(node);
      node.asking = ((...args: unknown[]) => {
        const p = (asking as (...a: unknown[]) => Promise<'OK'>)(...args);
        p.catch(() => undefined);
        return p;
      }) as typeof node.asking;
    });
    this.cluster.on('refresh', () => {
      this.stats.slotRefreshes += 1;
      this.rebalance();
    });
  }

  async start(): Promise<void> {
    await connectOrExplain(this.cluster, this.label);
    for (const key of this.masterKeys()) {
      const [host, port] = splitKey(key);
      const probe = new Redis({ ...this.base, host, port, lazyConnect: true, retryStrategy: () => null });
      try {
        await connectOrExplain(probe, `cluster node ${key}`);
        await checkServer(probe, `cluster node ${key}`, true, this.opts.logger);
      } finally {
        probe.disconnect();
      }
    }
    this.slotMap = this.slotSignature();
    await Promise.all(this.masterKeys().map((key) => this.linkAt(key).start()));
    this.scheduleRefresh(this.refreshMs);
  }

  async close(): Promise<void> {
    this.closeRecords();
    clearTimeout(this.refreshTimer);
    this.unplaced.clear();
    for (const l of this.links.values()) l.close();
    this.links.clear();
    this.cluster.disconnect();
    return Promise.resolve();
  }

  ready(): boolean {
    if (this.cluster.status !== 'ready') return false;
    const masters = this.masterKeys();
    if (masters.length === 0) return false;
    for (const key of masters) if (!this.links.get(key)?.ready()) return false;
    return true;
  }

  availability(): { parts: number; up: number } {
    const masters = this.masterKeys();
    if (this.cluster.status !== 'ready') return { parts: Math.max(1, masters.length), up: 0 };
    let up = 0;
    for (const key of masters) if (this.links.get(key)?.ready() === true) up++;
    return { parts: masters.length, up };
  }

  client(_namespace: string): ScriptClient {
    return this.scripts;
  }

  waitReady(_namespace: string, ms: number): Promise<boolean> {
    return readyWithin(this.cluster, ms);
  }

  async publish(_shardKey: string, channel: string, message: string): Promise<number> {
    // Routed by the channel's slot, which its hash tag (the shard key) decides.
    return Number(await this.cluster.spublish(channel, message));
  }

  firstTarget(): { options: RedisOptions; label: string } {
    const key = this.masterKeys()[0] ?? `${this.seeds[0]?.host ?? '127.0.0.1'}:${this.seeds[0]?.port ?? 6379}`;
    const [host, port] = splitKey(key);
    return { options: { ...this.base, host, port, retryStrategy }, label: `cluster node ${key}` };
  }

  globalClient(): ScriptClient {
    return this.scripts;
  }

  status(): ShardStatus[] {
    return [...this.links].map(([key, l]) => ({
      redis: key,
      commands: this.cluster.status,
      subscriber: l.state,
      channels: l.channels.size,
    }));
  }

  protected ownerOf(channel: string): string | undefined {
    return this.cluster.slots[clusterSlot(channel)]?.[0];
  }

  protected existingLink(key: string): SubscriberLink | undefined {
    return this.links.get(key);
  }

  protected whenCommandsReady(_key: string, fn: () => void): void {
    whenReady(this.cluster, fn);
  }

  protected linkAt(key: string): SubscriberLink {
    let link = this.links.get(key);
    if (link === undefined) {
      const [host, port] = splitKey(key);
      link = new SubscriberLink({
        target: linkTarget(this.seeds[0] as RedisTarget, host, port, this.opts),
        mode: 'sharded',
        label: `cluster node ${key}`,
        logger: this.opts.logger,
        ...this.linkEvents(key),
        onLost: () => {
          this.onLost(key);
          // A master that went away may have failed over: read the slot map soon, and often.
          this.scheduleRefresh(0);
        },
      });
      this.links.set(key, link);
    }
    if (link.state === 'idle' && !this.closed) {
      // Connection failures are logged by the link, which keeps trying.
      link.start().catch(() => undefined);
    }
    return link;
  }

  /**
   * A channel lost where it was: Redis unsubscribed it (its slot left that master), or refused it
   * with MOVED. With a MOVED target, subscribe there at once; else read the slot map first.
   */
  protected replace(rec: ChannelRecord, movedTo: string | undefined): void {
    if (movedTo !== undefined) {
      const fresh = rec.move === undefined;
      const move = rec.move ?? this.newMove('MOVED', rec.owner);
      this.joinMove(rec, move);
      this.assign(rec, movedTo);
      if (fresh) this.announce(move);
      this.scheduleRefresh(0);
      return;
    }
    // Held back until the slot map says where it goes now.
    this.existingLink(rec.owner)?.remove(rec.channel);
    rec.confirmed = false;
    const move = rec.move ?? this.pendingUnsubscribeMove(rec.owner);
    this.joinMove(rec, move);
    this.unplaced.set(rec, move);
    this.scheduleRefresh(0);
  }

  /** The move collecting the channels that `from` unsubscribed since the last slot map read. */
  private pendingUnsubscribeMove(from: string): Move {
    for (const m of this.unplaced.values()) if (m.from === from && m.reason === 'sunsubscribe') return m;
    return this.newMove('sunsubscribe', from);
  }

  /** Reads the slot map after `ms` (sooner if one is already due earlier). */
  private scheduleRefresh(ms: number): void {
    if (this.closed) return;
    const due = Date.now() + ms;
    if (this.refreshTimer !== undefined && this.refreshDue <= due) return;
    clearTimeout(this.refreshTimer);
    this.refreshDue = due;
    this.refreshTimer = setTimeout(() => this.refresh(), ms);
    this.refreshTimer.unref();
  }

  private refresh(): void {
    this.refreshTimer = undefined;
    if (this.closed) return;
    if (this.refreshing) {
      this.scheduleRefresh(DEGRADED_REFRESH_MS);
      return;
    }
    this.refreshing = true;
    this.cluster.refreshSlotsCache(() => {
      this.refreshing = false;
      // 'refresh' (on success) ran rebalance(); a failed read is tried again soon.
      this.scheduleRefresh(this.degraded() ? DEGRADED_REFRESH_MS : this.refreshMs);
    });
  }

  /** Some master is unreachable, or some channel waits to be placed or confirmed after a move. */
  private degraded(): boolean {
    if (this.unplaced.size > 0 || this.openMoves.size > 0) return true;
    for (const key of this.masterKeys()) if (this.links.get(key)?.ready() !== true) return true;
    return false;
  }

  private slotSignature(): string {
    let sig = '';
    let prev: string | undefined;
    this.cluster.slots.forEach((owners, slot) => {
      const owner = owners?.[0];
      if (owner !== prev) sig += `${slot}=${owner ?? '-'};`;
      prev = owner;
    });
    return sig;
  }

  private masterKeys(): string[] {
    const keys = new Set<string>();
    for (const owners of this.cluster.slots) if (owners?.[0] !== undefined) keys.add(owners[0]);
    return [...keys];
  }

  /**
   * After a slot map read: every master gets a started link (a node with nothing on a promoted
   * replica must still reach it); a channel whose slot now lives on another master is subscribed
   * there and reported as restored once confirmed, so its subscribers catch up from history; the
   * channels Redis unsubscribed are placed where the map says. Links of servers that are no longer
   * masters and hold nothing are closed.
   */
  private rebalance(): void {
    if (this.closed) return;
    const masters = this.masterKeys();
    for (const key of masters) this.linkAt(key);
    const map = this.slotSignature();
    const moves = new Map<string, Move>();
    if (map !== this.slotMap) {
      this.slotMap = map;
      this.stats.slotMapChanges += 1;
      for (const rec of this.records.values()) {
        if (this.unplaced.has(rec)) continue;
        const owner = this.ownerOf(rec.channel);
        if (owner === undefined || owner === rec.owner) continue;
        let move = moves.get(rec.owner);
        if (move === undefined) moves.set(rec.owner, (move = this.newMove('slot map changed', rec.owner)));
        this.joinMove(rec, move);
        this.assign(rec, owner);
      }
    }
    const placed = new Set<Move>();
    for (const [rec, move] of this.unplaced) {
      if (this.records.get(rec.channel) !== rec) continue;
      this.assign(rec, this.ownerOf(rec.channel) ?? rec.owner);
      placed.add(move);
    }
    this.unplaced.clear();
    for (const m of [...moves.values(), ...placed]) this.announce(m);
    for (const [key, link] of this.links) {
      if (!masters.includes(key) && link.channels.size === 0) {
        link.close();
        this.links.delete(key);
      }
    }
  }
}

function splitKey(key: string): [string, number] {
  const colon = key.lastIndexOf(':');
  return [key.slice(0, colon), Number(key.slice(colon + 1))];
}

export function createTopology(opts: TopologyOptions): Topology {
  return opts.cluster ? new ClusterTopology(opts) : new ShardsTopology(opts);
}
