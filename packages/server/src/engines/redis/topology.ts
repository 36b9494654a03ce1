/**
 * Where a namespace's keys and pub/sub channels live, and the connections to get there:
 *
 * - `shards`: one or more independent Redis servers. A namespace goes to the server chosen by jump
 *   consistent hashing of its name (one server: always that one). Each server has one command
 *   connection (Lua scripts, auto-pipelined) and one subscriber link, SUBSCRIBE/PUBLISH.
 * - `cluster`: a Redis Cluster. Commands go through ioredis' Cluster client (slot routing, MOVED
 *   and ASK redirections); live publications use sharded pub/sub (SPUBLISH in the script,
 *   SSUBSCRIBE on a subscriber link per master), so a publication reaches only the shard that owns
 *   its namespace's slot instead of being broadcast to every cluster node.
 */
import { Cluster, Redis, type ClusterNode, type RedisOptions } from 'ioredis';
import type { Logger } from '../../core/logger.js';
import { clusterSlot, shardOf } from './keys.js';
import type { LuaScripts } from './scripts.js';
import { SubscriberLink } from './subscriber-link.js';

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
}

function defineScripts(client: Redis | Cluster, scripts: LuaScripts): ScriptClient {
  // ioredis runs EVALSHA and falls back to EVAL once when Redis does not know the script (NOSCRIPT).
  client.defineCommand('heraldPublish', { lua: scripts.publish });
  client.defineCommand('heraldHistory', { numberOfKeys: 2, lua: scripts.history });
  client.defineCommand('heraldLease', { numberOfKeys: 1, lua: scripts.lease });
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
  onMessage(channel: string, payload: string): void;
  onRestored(channels: readonly string[]): void;
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
  link(namespace: string): SubscriberLink;
  /**
   * Sends `message` on a pub/sub channel that is not a stream's (a node's control channel) through
   * the server that `shardKey` maps to, as `link(shardKey)` does: PUBLISH on that shard, SPUBLISH on
   * a cluster (the channel's hash tag must be `shardKey`). Resolves with the number of receivers.
   */
  publish(shardKey: string, channel: string, message: string): Promise<number>;
  /** A plain connection to one server (shard 0, or a cluster master), for the ingestion subscriber. */
  firstTarget(): { options: RedisOptions; label: string };
  /** A command client for keys that are not per namespace (the ingestion lease). */
  globalClient(): ScriptClient;
  status(): ShardStatus[];
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

class Shard {
  readonly commands: Redis;
  readonly scripts: ScriptClient;
  readonly link: SubscriberLink;
  constructor(
    readonly target: RedisTarget,
    opts: TopologyOptions,
  ) {
    const base = connectionOptions(target, opts);
    this.commands = new Redis(commandOptions(base, opts));
    this.scripts = defineScripts(this.commands, opts.scripts);
    watchErrors(this.commands, target.label, opts.logger);
    this.link = new SubscriberLink({
      redis: { ...base, connectionName: `${opts.connectionName}:sub` },
      mode: 'classic',
      label: target.label,
      logger: opts.logger,
      onMessage: opts.onMessage,
      onRestored: (channels) => whenReady(this.commands, () => opts.onRestored(channels)),
    });
  }
}

export class ShardsTopology implements Topology {
  readonly mode = 'shards';
  readonly publishCommand = 'PUBLISH';
  private readonly shards: Shard[];

  constructor(private readonly opts: TopologyOptions) {
    this.shards = opts.urls.map((u) => new Shard(parseRedisUrl(u), opts));
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

  client(namespace: string): ScriptClient {
    return this.shard(namespace).scripts;
  }

  waitReady(namespace: string, ms: number): Promise<boolean> {
    return readyWithin(this.shard(namespace).commands, ms);
  }

  link(namespace: string): SubscriberLink {
    return this.shard(namespace).link;
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

export class ClusterTopology implements Topology {
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

  constructor(private readonly opts: TopologyOptions) {
    this.seeds = opts.urls.map(parseRedisUrl);
    const first = this.seeds[0] as RedisTarget;
    this.label = this.seeds.map((s) => s.label).join(', ');
    const { host: _h, port: _p, db: _db, retryStrategy: _r, ...auth } = connectionOptions(first, opts);
    this.base = auth;
    const nodes: ClusterNode[] = this.seeds.map((s) => ({ host: s.host, port: s.port }));
    const { enableOfflineQueue: _q, lazyConnect: _l, ...cmd } = commandOptions(auth, opts);
    this.cluster = new Cluster(nodes, {
      lazyConnect: true,
      // Fail at once while the cluster is not ready; node connections keep ioredis' own settings
      // (they queue while connecting, and are replaced after a slot refresh when lost).
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      clusterRetryStrategy: retryStrategy,
      scaleReads: 'master',
      redisOptions: cmd,
    });
    this.scripts = defineScripts(this.cluster, opts.scripts);
    watchErrors(this.cluster, this.label, opts.logger);
    this.cluster.on('refresh', () => this.rebalance());
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
  }

  async close(): Promise<void> {
    for (const l of this.links.values()) l.close();
    this.links.clear();
    this.cluster.disconnect();
    return Promise.resolve();
  }

  ready(): boolean {
    if (this.cluster.status !== 'ready') return false;
    for (const key of this.masterKeys()) if (!this.links.get(key)?.ready()) return false;
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

  link(namespace: string): SubscriberLink {
    const key = this.cluster.slots[clusterSlot(`{${namespace}}`)]?.[0];
    if (key === undefined) throw new Error(`no Redis Cluster node serves namespace "${namespace}" yet`);
    return this.linkAt(key);
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

  private linkAt(key: string): SubscriberLink {
    let link = this.links.get(key);
    if (link === undefined) {
      const [host, port] = splitKey(key);
      link = new SubscriberLink({
        redis: { ...this.base, host, port, retryStrategy, connectionName: `${this.opts.connectionName}:sub` },
        mode: 'sharded',
        label: `cluster node ${key}`,
        logger: this.opts.logger,
        onMessage: this.opts.onMessage,
        onRestored: (channels) => whenReady(this.cluster, () => this.opts.onRestored(channels)),
      });
      this.links.set(key, link);
    }
    return link;
  }

  /**
   * After the cluster's slot map changed (failover, resharding): a channel whose slot now lives on
   * another master is subscribed there, and reported as restored so its subscribers catch up from
   * history. Links of masters that serve nothing any more are closed.
   */
  private rebalance(): void {
    const map = this.slotSignature();
    if (map === this.slotMap) return;
    this.slotMap = map;
    const moved: string[] = [];
    for (const [key, link] of this.links) {
      for (const channel of [...link.channels]) {
        const owner = this.cluster.slots[clusterSlot(channel)]?.[0];
        if (owner === undefined || owner === key) continue;
        void link.remove(channel);
        const target = this.linkAt(owner);
        moved.push(channel);
        const add = target.state === 'idle' ? target.start().then(() => target.add(channel)) : target.add(channel);
        add.then(
          () => this.opts.onRestored([channel]),
          (err: unknown) =>
            this.opts.logger.warn({ err, channel }, 'redis cluster: resubscribe after slot move failed'),
        );
      }
    }
    if (moved.length > 0)
      this.opts.logger.info({ channels: moved.length }, 'redis cluster: channels moved to new masters');
    const masters = new Set(this.masterKeys());
    for (const [key, link] of this.links) {
      if (!masters.has(key) && link.channels.size === 0) {
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
