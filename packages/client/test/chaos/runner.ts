/**
 * The chaos suite: each scenario starts its own `redis-server` processes (free ports, temporary
 * directories; never the machine's Redis on 6379), two Herald nodes (child processes of
 * packages/server/dist, so they can be SIGKILLed and SIGSTOPped) sharing them, and a load balancer
 * with health checks in front of the nodes. Subscribers connect through the load balancer: the SDK
 * on each of its four transports, and raw SSE and long-poll clients. A backend publishes numbered
 * publications to three channels through the server API of the nodes while the scenario injects its
 * faults; then the faults stop, each channel gets a final sentinel publication, and the history
 * checker judges what every subscriber saw (history-checker.ts).
 *
 * `short` runs each fault once for a few seconds (CI, packages/client/test/chaos-short.test.ts);
 * `full` (`npm run chaos`) runs them longer and repeatedly (node SIGSTOP for 30 s).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { TransportName } from '@herald/client';
import { freePort, startTcpProxy, until, withTimeout, type TcpProxy } from '@herald/test-support';
import { api, API_KEY, CLI as BUILT_CLI, WsClient } from '@herald/test-support/server';
import { startRedisServer, type SpawnedRedis } from '@herald/test-support/redis';
import { channelsOf, judge, type Row, type StreamLog } from './history-checker.js';
import { LoadBalancer } from './proxies.js';
import { Publisher } from './publisher.js';
import { Pulse, RawPollSubscriber, RawSseSubscriber, SdkSubscriber, Slowness, type Subscriber } from './subscribers.js';

export type Mode = 'short' | 'full';

export const CHANNELS = ['ch.a', 'ch.b', 'ch.b.c'] as const;
/** Each subscriber reads an exact channel and a subtree. */
const STREAM_SETS: readonly (readonly string[])[] = [
  ['ch.a', 'ch.**'],
  ['ch.b', 'ch.b.**'],
];
const SDK_TRANSPORTS: readonly TransportName[] = ['websocket', 'http-stream', 'sse', 'long-poll'];
/** Replicas sync at once (diskless sync waits 5 s by default for more replicas to join). */
const FAST_SYNC = ['--repl-diskless-sync-delay', '0'];

/** The Herald nodes' configuration (environment of the child processes). */
function nodeEnv(): Record<string, string> {
  return {
    HERALD_REDIS_PREFIX: 'chaos',
    HERALD_NAMESPACES: JSON.stringify({ ch: { historySize: 10_000, historyTtl: '10m', maxMessageSize: '64kb' } }),
    HERALD_HEARTBEAT_PING_INTERVAL: '2s',
    HERALD_HEARTBEAT_PING_TIMEOUT: '2s',
    HERALD_HTTP_HEARTBEAT_INTERVAL: '2s',
    HERALD_HTTP_POLL_TIMEOUT: '5s',
    HERALD_HTTP_SESSION_SECRET: 'chaos-session-secret-0123456789',
    HERALD_LIMITS_MAX_QUEUE_BYTES: '256kb',
    HERALD_LIMITS_MAX_REPLY_BYTES: '32mb',
    HERALD_REDIS_COMMAND_TIMEOUT: '2s',
    HERALD_REDIS_CONNECT_TIMEOUT: '2s',
    HERALD_SHUTDOWN_TIMEOUT: '1s',
  };
}

/** The Herald CLI the nodes run: packages/server/dist (built by `npm run chaos`), or `CHAOS_HERALD_CLI`. */
export const CLI = process.env['CHAOS_HERALD_CLI'] ?? BUILT_CLI;

/** One Herald node (`herald serve` in a child process) on a fixed port, so that it can be started again where the load balancer expects it. */
export class HeraldNode {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private out = '';
  private killing = false;
  starts = 0;
  /** Exits nobody asked for (a crash), with the output before them. */
  readonly crashes: string[] = [];

  constructor(
    readonly port: number,
    private readonly redisUrl: () => string,
    private readonly env: Record<string, string> = {},
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** What the processes of this node wrote (the last 20 kB), for failure messages. */
  output(): string {
    return this.out;
  }

  async start(): Promise<void> {
    const proc = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        // One process per node: the scenarios SIGKILL and SIGSTOP it.
        '--workers',
        '1',
        '--host',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--api-key',
        API_KEY,
        '--log-level',
        'warn',
        '--engine',
        'redis',
        '--redis',
        this.redisUrl(),
      ],
      { env: { ...process.env, ...nodeEnv(), ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.proc = proc;
    const keep = (d: Buffer): void => {
      this.out = (this.out + d.toString()).slice(-20_000);
    };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        if (!this.killing)
          this.crashes.push(`node ${this.port} exited by itself (${code ?? signal}):\n${this.out.slice(-2000)}`);
        resolve();
      }),
    );
    this.killing = false;
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        proc.stdout.on('data', () => {
          if (this.out.includes(`:${this.port}/ws`)) resolve();
        });
        void this.exited.then(() => reject(new Error(`herald exited before listening:\n${this.out}`)));
      }),
      15_000,
      `herald on port ${this.port} to listen`,
    );
    this.starts += 1;
  }

  /** SIGKILL, and wait for the exit. */
  async kill(): Promise<void> {
    this.killing = true;
    if (this.alive) this.proc?.kill('SIGKILL');
    await this.exited;
  }

  stop(): void {
    if (this.alive) this.proc?.kill('SIGSTOP');
  }

  cont(): void {
    if (this.alive) this.proc?.kill('SIGCONT');
  }

  get alive(): boolean {
    const p = this.proc;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  /** `GET /api/info` of this node (its counters), or undefined if it does not answer. */
  async info(): Promise<Record<string, any> | undefined> {
    const r = await api(this.url, 'info', {}).catch(() => undefined);
    return r?.status === 200 ? (r.body.nodes?.[0] as Record<string, any>) : undefined;
  }
}

/** What a scenario's faults act on. */
export interface Env {
  readonly mode: Mode;
  /** The Redis the nodes use (behind `proxy` when there is one). */
  redis: SpawnedRedis;
  /** Its replica, when the scenario has one. */
  replica: SpawnedRedis | undefined;
  /** Registers a server the scenario started, to be stopped at the end. */
  track(server: SpawnedRedis): void;
  /** The address the nodes use for Redis, when the scenario fails over behind it. */
  proxy: TcpProxy | undefined;
  readonly nodes: HeraldNode[];
  readonly lb: LoadBalancer;
  readonly publisher: Publisher;
  readonly subscribers: Subscriber[];
  /** What the faults did, for the report. */
  readonly notes: string[];
  /** Waits until the publisher has `n` more publications acknowledged than now. */
  progress(n: number, ms?: number): Promise<void>;
  /** Waits until the load balancer sees `node` as `healthy`. */
  health(node: HeraldNode, healthy: boolean, ms?: number): Promise<void>;
  admin(port: number): Promise<Redis>;
}

export interface Scenario {
  name: string;
  /** What it does, for the report and docs/reliability.md. */
  fault: string;
  redis?: 'plain' | 'aof' | 'replica';
  /** Bytes of padding per publication. */
  padding?: number;
  /** Publications per second per channel (default 40 short, 25 full). */
  rate?: number;
  /** The SDK subscribers are slow: they stop reading for 8 s at a time (the raw ones read at once). */
  slow?: boolean;
  /** Settings of the Herald nodes for this scenario (environment variables). */
  nodeEnv?: Record<string, string>;
  run(env: Env): Promise<void>;
  /** After the run: a complaint if the fault did not happen as intended (the scenario then fails). */
  effect?(env: Env, rows: Row[]): Promise<string | undefined> | string | undefined;
}

export interface ScenarioResult {
  scenario: string;
  rows: Row[];
  notes: string[];
  /** Problems outside the table (a fault that had no effect, a refused stream, a stuck publisher). */
  errors: string[];
  seconds: number;
}

const by = (mode: Mode, short: number, full: number): number => (mode === 'short' ? short : full);

async function adminClient(port: number): Promise<Redis> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, connectTimeout: 2000 });
  r.on('error', () => undefined);
  await r.connect();
  return r;
}

async function redisInfo(port: number, section: string, field: string): Promise<string> {
  const r = await adminClient(port);
  try {
    return new RegExp(`^${field}:(.*)$`, 'm').exec(await r.info(section))?.[1]?.trim() ?? '';
  } finally {
    r.disconnect();
  }
}

async function inSync(port: number): Promise<void> {
  await until(
    async () => (await redisInfo(port, 'replication', 'master_link_status')) === 'up',
    'replica in sync',
    15_000,
    50,
  );
}

/** Whether `redis-server` can be spawned here. */
export function redisServerAvailable(): boolean {
  return spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0;
}

/**
 * For failure messages: on each node, each stream's history position, and how long a fresh
 * WebSocket subscribe to it takes (a node that no longer answers subscribes to one stream shows here).
 */
async function probeNodes(nodes: readonly HeraldNode[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of nodes) {
    for (const stream of new Set(STREAM_SETS.flat())) {
      const h = await api(n.url, 'history', { channel: stream, limit: 0 }).catch((err: unknown) => ({
        status: 0,
        body: String(err),
      }));
      const t = Date.now();
      const answer = await WsClient.connect(n.url.replace('http', 'ws') + '/ws')
        .then(async (c) => {
          try {
            const r = await c.request({ cmd: 'subscribe', channel: stream }, 3000);
            return `answered in ${Date.now() - t} ms: ${JSON.stringify(r).slice(0, 120)}`;
          } finally {
            c.ws.terminate();
          }
        })
        .catch((err: unknown) => `FAILED after ${Date.now() - t} ms: ${String(err)}`);
      out.push(
        `probe node ${n.port} ${stream}: history ${JSON.stringify(h.body).slice(0, 120)}; new subscribe ${answer}`,
      );
    }
  }
  return out;
}

/** The longest time a stream went without a publication, and whose it was. */
function longestSilence(logs: readonly StreamLog[]): string {
  let best = { ms: 0, who: '' };
  for (const l of logs) {
    let prev: number | undefined;
    for (const e of l.events) {
      if (e.kind !== 'pub') continue;
      if (prev !== undefined && e.at - prev > best.ms) best = { ms: e.at - prev, who: `${l.subscriber} ${l.stream}` };
      prev = e.at;
    }
  }
  return `${(best.ms / 1000).toFixed(1)} s (${best.who})`;
}

export async function runScenario(s: Scenario, mode: Mode): Promise<ScenarioResult> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first`);
  const t0 = Date.now();
  const cleanup: (() => Promise<unknown> | unknown)[] = [];
  const notes: string[] = [];
  const errors: string[] = [];
  try {
    const redisArgs = s.redis === 'aof' ? ['--appendonly', 'yes', '--appendfsync', 'always'] : FAST_SYNC;
    const servers: SpawnedRedis[] = [];
    cleanup.push(() => Promise.all(servers.map((r) => r.stop())));
    const redis = await startRedisServer(redisArgs);
    servers.push(redis);
    let proxy: TcpProxy | undefined;
    let replica: SpawnedRedis | undefined;
    if (s.redis === 'replica') {
      replica = await startRedisServer([...FAST_SYNC, '--replicaof', '127.0.0.1', String(redis.port)]);
      servers.push(replica);
      await inSync(replica.port);
      proxy = await startTcpProxy(redis.port);
      cleanup.push(() => proxy?.close());
    }
    const redisUrl = (): string => proxy?.url ?? redis.url;
    const nodes = [
      new HeraldNode(await freePort(), redisUrl, s.nodeEnv),
      new HeraldNode(await freePort(), redisUrl, s.nodeEnv),
    ];
    cleanup.push(() => Promise.all(nodes.map((n) => (n.cont(), n.kill()))));
    await Promise.all(nodes.map((n) => n.start()));
    const lb = await LoadBalancer.start(nodes.map((n) => n.port));
    cleanup.push(() => lb.close());

    const pulse = new Pulse();
    const subscribers: Subscriber[] = [];
    cleanup.push(() => subscribers.forEach((x) => x.close()));
    const per = by(mode, 2, 3);
    const slowness: Slowness[] = [];
    for (const t of SDK_TRANSPORTS)
      for (let i = 0; i < per; i++) {
        const streams = STREAM_SETS[i % 2] as string[];
        if (s.slow === true) {
          const slow = new Slowness(8000, by(mode, 3000, 4000));
          slowness.push(slow);
          subscribers.push(new SdkSubscriber(`${t}-slow-${i}`, lb.url, t, streams, pulse, { slow }));
        } else subscribers.push(new SdkSubscriber(`${t}-${i}`, lb.url, t, streams, pulse));
      }
    for (let i = 0; i < 2; i++) {
      subscribers.push(new RawSseSubscriber(`raw-sse-${i}`, lb.url, STREAM_SETS[i % 2] as string[], pulse, 8000));
      subscribers.push(new RawPollSubscriber(`raw-poll-${i}`, () => lb.url, STREAM_SETS[i % 2] as string[], pulse, 5));
    }
    await Promise.all(subscribers.map((x) => x.ready(15_000)));

    const publisher = new Publisher({
      nodes: () => nodes.map((n) => n.url),
      channels: CHANNELS,
      rate: s.rate ?? by(mode, 40, 25),
      padding: s.padding ?? 0,
      runId: `${s.name}-${Date.now()}`,
    });
    const env: Env = {
      mode,
      redis,
      replica,
      track: (server) => servers.push(server),
      proxy,
      nodes,
      lb,
      publisher,
      subscribers,
      notes,
      progress: async (n, ms = 60_000) => {
        const target = publisher.total + n;
        await until(
          () => {
            if (publisher.error !== undefined) throw publisher.error;
            return publisher.total >= target;
          },
          `${n} more publications (at ${publisher.total})`,
          ms,
          50,
        );
      },
      health: async (node, healthy, ms = 15_000) => {
        await until(
          async () => {
            await lb.check();
            return lb.isHealthy(node.port) === healthy;
          },
          `node ${node.port} to be ${healthy ? 'healthy' : 'out of rotation'}`,
          ms,
          50,
        );
      },
      admin: adminClient,
    };

    publisher.start();
    cleanup.push(() => publisher.stop().catch(() => undefined));
    for (const slow of slowness) slow.start();
    cleanup.push(() => slowness.forEach((slow) => slow.stop()));
    await env.progress(by(mode, 40, 150));
    await s.run(env);
    for (const slow of slowness) slow.stop();
    // Faults over: every node back in rotation, and publishing goes on for a while.
    for (const n of nodes) await env.health(n, true, 30_000);
    await env.progress(by(mode, 60, 300));
    await publisher.stop();

    // Every stream must be live at the end: it delivers the last publication of each of its channels.
    // A stream told `recovered: false` may be placed after a sentinel, so sentinels are published in
    // rounds until every stream has delivered the latest round (or the time is up: dead streams).
    const logs = subscribers.flatMap((x) => x.logs);
    const sentinelsIn = (): number =>
      logs.filter((l) =>
        channelsOf(l.stream, CHANNELS).every((c) =>
          l.events.some((e) => e.kind === 'pub' && e.channel === c && e.n === publisher.sentinel.get(c)),
        ),
      ).length;
    const settle = Date.now();
    const deadline = settle + by(mode, 12_000, 30_000);
    let rounds = 0;
    for (;;) {
      await publisher.publishSentinels();
      rounds += 1;
      const ok = await pulse
        .until(
          () => sentinelsIn() === logs.length,
          3000,
          () => 'sentinels',
        )
        .then(
          () => true,
          () => false,
        );
      if (ok) break;
      if (Date.now() > deadline) {
        notes.push(
          `after ${rounds} sentinel rounds, ${logs.length - sentinelsIn()} of ${logs.length} streams had not delivered the last`,
        );
        break;
      }
    }
    notes.push(
      `every stream live ${((Date.now() - settle) / 1000).toFixed(1)} s after the faults (${rounds} sentinel round${rounds > 1 ? 's' : ''})`,
    );
    notes.push(`longest silence of a stream: ${longestSilence(logs)}`);

    const rows = judge(s.name, logs, publisher, CHANNELS);
    const failures = [...publisher.failures].map(([k, v]) => `${k} ×${v}`).join(', ');
    notes.push(
      `${publisher.total} publications acknowledged${failures === '' ? '' : `; failed attempts: ${failures}`}`,
    );
    const drops = new Map<string, number>();
    for (const x of subscribers)
      for (const [k, v] of x.drops) drops.set(`${x.transport}:${k}`, (drops.get(`${x.transport}:${k}`) ?? 0) + v);
    if (drops.size > 0)
      notes.push(`connections lost (transport:cause ×n): ${[...drops].map(([k, v]) => `${k} ×${v}`).join(', ')}`);
    for (const x of subscribers) errors.push(...x.problems);
    const dead = new Set(
      rows.flatMap((r) => r.problems.filter((p) => p.includes('dead:')).map((p) => p.split(' ')[0])),
    );
    for (const x of subscribers)
      if (dead.has(x.name))
        errors.push(
          `dead: ${x.status()}; last events: ${x.logs.map((l) => `${l.stream} ${JSON.stringify(l.events.slice(-2))}`).join(' | ')}`,
        );
    if (dead.size > 0) errors.push(...(await probeNodes(nodes)));
    const complaint = await s.effect?.(env, rows);
    if (complaint !== undefined) errors.push(`${s.name}: ${complaint}`);
    for (const n of nodes) {
      errors.push(...n.crashes);
      const fatal = n
        .output()
        .split('\n')
        .filter((l) => /"level":60|uncaught|unhandled/i.test(l));
      if (fatal.length > 0) errors.push(`node ${n.port} logged: ${fatal[0]?.slice(0, 500)}`);
    }
    return { scenario: s.name, rows, notes, errors, seconds: (Date.now() - t0) / 1000 };
  } finally {
    for (const fn of cleanup.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// The scenarios

/** Kills Redis with SIGKILL, keeps it down for a moment, starts it again on the same port and files. */
async function killRedis(env: Env, downMs: number): Promise<void> {
  await env.redis.kill();
  await sleep(downMs);
  await env.redis.restart();
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'redis-kill-9',
    fault: 'Redis killed with SIGKILL, no persistence: it comes back empty',
    async run(env) {
      const cycles = by(env.mode, 1, 4);
      for (let i = 0; i < cycles; i++) {
        await killRedis(env, by(env.mode, 1000, 2000));
        await env.progress(by(env.mode, 60, 300));
      }
      env.notes.push(`Redis killed ${cycles}×, restarted empty`);
    },
  },
  {
    name: 'redis-kill-9-aof',
    fault: 'Redis killed with SIGKILL, persistence on (AOF, appendfsync always): it comes back with everything',
    redis: 'aof',
    async run(env) {
      const cycles = by(env.mode, 1, 4);
      for (let i = 0; i < cycles; i++) {
        await killRedis(env, by(env.mode, 1000, 2000));
        await env.progress(by(env.mode, 60, 300));
      }
      env.notes.push(`Redis killed ${cycles}×, restarted from its AOF`);
    },
  },
  {
    name: 'redis-restore-snapshot',
    fault: 'SAVE, publish more, Redis killed with SIGKILL, started again from the older dump',
    async run(env) {
      const cycles = by(env.mode, 1, 3);
      for (let i = 0; i < cycles; i++) {
        const r = await env.admin(env.redis.port);
        await r.save();
        r.disconnect();
        await env.progress(by(env.mode, 60, 300));
        await killRedis(env, by(env.mode, 500, 1000));
        await env.progress(by(env.mode, 60, 300));
      }
      env.notes.push(`${cycles}× restored from a snapshot taken ${by(env.mode, 60, 300)} publications earlier`);
    },
  },
  {
    name: 'redis-replica-promotion',
    fault:
      'the master killed, a replica that was behind promoted in its place (the nodes reach Redis through one address)',
    redis: 'replica',
    async run(env) {
      const cycles = by(env.mode, 1, 2);
      for (let i = 0; i < cycles; i++) {
        const master = env.redis;
        const replica = env.replica as SpawnedRedis;
        // The replica falls behind: it follows a master that is not there.
        const rep = await env.admin(replica.port);
        await rep.replicaof('127.0.0.1', String(await freePort()));
        await env.progress(by(env.mode, 60, 300));
        await master.kill();
        await rep.replicaof('NO', 'ONE');
        rep.disconnect();
        env.proxy?.switchTo(replica.port);
        env.redis = replica;
        await env.progress(by(env.mode, 60, 300));
        // A new replica for the next round; the old master is gone.
        await master.stop();
        const next = await startRedisServer([...FAST_SYNC, '--replicaof', '127.0.0.1', String(replica.port)]);
        env.track(next);
        env.replica = next;
        await inSync(next.port);
      }
      env.notes.push(`${cycles}× promoted a replica ${by(env.mode, 60, 300)} publications behind`);
    },
  },
  {
    name: 'redis-client-kill-pubsub',
    fault: '`CLIENT KILL TYPE pubsub` over and over: the nodes lose their subscriptions to Redis',
    async run(env) {
      const rounds = by(env.mode, 3, 30);
      const r = await env.admin(env.redis.port);
      let killed = 0;
      try {
        for (let i = 0; i < rounds; i++) {
          killed += Number(await r.client('KILL', 'TYPE', 'pubsub'));
          await env.progress(by(env.mode, 30, 60));
        }
      } finally {
        r.disconnect();
      }
      env.notes.push(`${rounds} rounds of CLIENT KILL TYPE pubsub killed ${killed} connections`);
      if (killed < rounds)
        throw new Error(`CLIENT KILL TYPE pubsub found only ${killed} connections in ${rounds} rounds`);
    },
  },
  {
    name: 'node-sigkill',
    fault: 'a Herald node killed with SIGKILL; its clients move to the other node; it is started again',
    async run(env) {
      const cycles = by(env.mode, 1, 4);
      for (let i = 0; i < cycles; i++) {
        const node = env.nodes[i % env.nodes.length] as HeraldNode;
        await node.kill();
        await env.health(node, false);
        await env.progress(by(env.mode, 60, 200));
        await node.start();
        await env.health(node, true);
        await env.progress(by(env.mode, 40, 200));
      }
      env.notes.push(`${cycles} node(s) killed with SIGKILL and started again`);
    },
  },
  {
    name: 'node-sigstop',
    fault: 'a Herald node frozen with SIGSTOP (30 s in the full run), then SIGCONT',
    async run(env) {
      const node = env.nodes[0] as HeraldNode;
      const ms = by(env.mode, 3000, 30_000);
      node.stop();
      await env.health(node, false);
      await sleep(ms);
      node.cont();
      await env.health(node, true);
      env.notes.push(`node frozen ${ms / 1000} s`);
    },
  },
  {
    name: 'slow-clients',
    fault: 'slow subscribers on every transport: SDK clients that stop reading for 8 s at a time, 16 kB publications',
    slow: true,
    padding: 16_384,
    rate: 30,
    // Pings every 2 s as elsewhere, but a stalled reader is not closed as stale before its queue fills.
    nodeEnv: { HERALD_HEARTBEAT_PING_TIMEOUT: '30s' },
    async run(env) {
      await sleep(by(env.mode, 10_000, 45_000));
    },
    async effect(env) {
      let slow = 0;
      for (const n of env.nodes) slow += Number((await n.info())?.['slowDisconnects'] ?? 0);
      env.notes.push(`${slow} connections closed as too slow (3002)`);
      return slow === 0 ? 'no connection was closed as too slow: the scenario did not load the queues' : undefined;
    },
  },
  {
    name: 'connection-churn',
    fault:
      'connections dropped at random: from the server (`/api/disconnect`), and clients closed and reopened from their cursors',
    async run(env) {
      const until = Date.now() + by(env.mode, 6000, 45_000);
      let server = 0;
      let client = 0;
      let i = 0;
      while (Date.now() < until) {
        const x = env.subscribers[Math.floor(Math.random() * env.subscribers.length)] as Subscriber;
        if (x instanceof SdkSubscriber && i++ % 2 === 0 && x.clientId !== undefined) {
          const id = x.clientId;
          for (const n of env.nodes)
            server += Number((await api(n.url, 'disconnect', { client: id, reconnect: true })).body?.disconnected ?? 0);
        } else {
          x.drop();
          client += 1;
        }
        await sleep(by(env.mode, 100, 200));
      }
      env.notes.push(`${server} connections dropped by the server, ${client} by clients`);
    },
  },
];
