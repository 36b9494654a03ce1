/**
 * Redis Cluster topology changes under load, with real processes: a 6-node cluster (3 masters,
 * 3 replicas, cluster-node-timeout 1000 ms) of this file's own on free ports, three Herald nodes,
 * numbered publications through the server API, and subscribers over WebSocket, SSE and
 * long-polling (raw protocols, no SDK) that resume with their cursors.
 *
 * - healthy cluster: single publishes, a broadcast and a batch spanning masters all succeed, under
 *   concurrent load, and a batch keeps per-channel order;
 * - resharding: slots moved to an existing master while only one node publishes (the other nodes
 *   hear of it from the `sunsubscribe` Redis sends them), then to a newly added master while every
 *   node publishes;
 * - failover: a master SIGKILLed, its replica promoted; every node is ready again (also one with no
 *   subscription on that master) and can subscribe to that master's namespaces.
 *
 * A history checker judges every stream of every subscriber: no hole unless the stream was told
 * (`recovered: false` when it resumed; a 3006 disconnect makes the client resume, and each stream's
 * answer says whether it recovered), no duplicate, order kept, and each stream still live at the
 * end (a final sentinel publication on each channel reaches it).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../src/config/config.js';
import { clusterSlot } from '../src/engines/redis/keys.js';
import { RedisEngine } from '../src/engines/redis/redis-engine.js';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, type Frame, type TestConfigInput, type TestServer } from '@herald/test-support/server';
import { TestCluster, withAdmin } from './support/redis-cluster.js';

// The same rule as the other tests that start their own Redis servers (support/redis.ts), without
// its probe of the machine's Redis on 6379, which this file never touches.
const redisBinaries = ['redis-server', 'redis-cli'].every(
  (bin) => spawnSync(bin, ['--version'], { encoding: 'utf8' }).status === 0,
);
const skip = !redisBinaries && process.env['CI'] !== 'true';
if (skip) console.warn('[herald] Redis Cluster topology tests skipped: redis-server or redis-cli not found on PATH.');

function testPrefix(): string {
  return `herald-test-${randomBytes(5).toString('hex')}`;
}

interface RedisNode extends TestServer {
  engine: RedisEngine;
}

/** A Herald node on the cluster (seed nodes `urls`), in this process. */
async function startClusterNode(prefix: string, over: TestConfigInput, urls: string[]): Promise<RedisNode> {
  const redis = { ...DEFAULT_CONFIG.redis, urls, cluster: true, prefix };
  const engine = new RedisEngine({ urls, cluster: true, prefix, commandTimeout: 2000 });
  const srv = await startServer({ ...over, engine: 'redis', redis } as TestConfigInput, { engine });
  return { ...srv, engine };
}

const config = { namespaces: { default: { historySize: 2000 } }, http: { pollTimeout: 5_000 } };
// ---- publisher ---------------------------------------------------------------------------------

/** Numbered publications (`data.n` = 1, 2, ...) per channel, one at a time, retried until acknowledged. */
class Publisher {
  readonly acked = new Map<string, Set<number>>();
  /** Numbers with an attempt whose outcome is unknown (it may have been applied). */
  readonly ambiguous = new Map<string, Set<number>>();
  readonly sentinel = new Map<string, number>();
  failedAttempts = 0;
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly next = new Map<string, number>();
  private turn = 0;
  error: Error | undefined;

  constructor(
    readonly channels: readonly string[],
    public nodes: readonly RedisNode[],
    private readonly intervalMs: number,
    private readonly run = testPrefix(),
  ) {
    for (const c of channels) {
      this.acked.set(c, new Set());
      this.ambiguous.set(c, new Set());
      this.next.set(c, 1);
    }
  }

  get total(): number {
    let n = 0;
    for (const s of this.acked.values()) n += s.size;
    return n;
  }

  start(): void {
    this.running = true;
    this.loops = this.channels.map(async (channel, i) => {
      await sleep((this.intervalMs * i) / this.channels.length);
      while (this.running && this.error === undefined) {
        const t = Date.now();
        await this.publishNext(channel);
        await sleep(Math.max(0, this.intervalMs - (Date.now() - t)));
      }
    });
  }

  /** Resolves once every channel has `n` more acknowledged publications than now: traffic flows. */
  async flowing(n: number, ms = 10_000): Promise<void> {
    const from = new Map([...this.acked].map(([c, s]) => [c, s.size]));
    await until(
      () => {
        if (this.error !== undefined) throw this.error;
        return this.channels.every((c) => (this.acked.get(c)?.size ?? 0) >= (from.get(c) ?? 0) + n);
      },
      `${n} more publications acknowledged on every channel`,
      ms,
    );
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    if (this.error !== undefined) throw this.error;
  }

  /** One more publication per channel, after the faults: every stream must get it. */
  async publishSentinels(): Promise<void> {
    await Promise.all(
      this.channels.map(async (c) => {
        this.sentinel.set(c, await this.publishNext(c));
      }),
    );
    if (this.error !== undefined) throw this.error;
  }

  private async publishNext(channel: string): Promise<number> {
    const n = this.next.get(channel) as number;
    this.next.set(channel, n + 1);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const node = this.nodes[this.turn++ % this.nodes.length] as RedisNode;
      let status = 0;
      try {
        const r = await api(node.url, 'publish', {
          channel,
          data: { n },
          idempotencyKey: `${this.run}-${channel}-${n}`,
        });
        status = r.status;
      } catch {
        status = -1;
      }
      if (status === 200) {
        this.acked.get(channel)?.add(n);
        return n;
      }
      this.failedAttempts += 1;
      this.ambiguous.get(channel)?.add(n);
      if (Date.now() > deadline) {
        this.error ??= new Error(`publication ${n} to ${channel} not acknowledged within 20 s (last status ${status})`);
        return n;
      }
      await sleep(100);
    }
  }
}

// ---- subscribers -------------------------------------------------------------------------------

type StreamEvent = { kind: 'pub'; channel: string; n: number; epoch: string; offset: number } | { kind: 'told' };

interface StreamLog {
  readonly subscriber: string;
  readonly stream: string;
  readonly events: StreamEvent[];
  epoch: string | undefined;
  offset: number;
  /** The last few things that happened to the stream, for a failure's message. */
  readonly trace: string[];
}

function trace(log: StreamLog, what: string): void {
  log.trace.push(what);
  if (log.trace.length > 12) log.trace.shift();
}

interface Subscriber {
  readonly name: string;
  readonly logs: Map<string, StreamLog>;
  /** Protocol-level faults seen (an offset out of sequence within an epoch, an unexpected error). */
  readonly faults: string[];
  /** Subscribed to every stream once. */
  readonly ready: Promise<void>;
  /** Subscribed while publishing went on: judged from its first publication on. */
  lateJoin?: boolean;
  stop(): void;
}

function newLogs(name: string, streams: readonly string[]): Map<string, StreamLog> {
  return new Map(
    streams.map((s) => [s, { subscriber: name, stream: s, events: [], epoch: undefined, offset: 0, trace: [] }]),
  );
}

/** Records a publication frame `{stream, channel, epoch, offset, data}` in its stream's log. */
function record(sub: { logs: Map<string, StreamLog>; faults: string[]; name: string }, p: Frame): void {
  const log = sub.logs.get(p['stream'] as string);
  if (log === undefined) return;
  if (p['epoch'] === log.epoch && p['offset'] !== log.offset + 1) {
    sub.faults.push(`${sub.name} ${log.stream}: offset ${String(p['offset'])} after ${log.offset} in one epoch`);
  }
  trace(log, `pub ${p['epoch']}/${p['offset']}`);
  if (p['epoch'] !== log.epoch && log.epoch !== undefined && log.events.at(-1)?.kind !== 'told') {
    sub.faults.push(`${sub.name} ${log.stream}: epoch changed without being told ${JSON.stringify(log.trace)}`);
  }
  log.epoch = p['epoch'] as string;
  log.offset = p['offset'] as number;
  log.events.push({
    kind: 'pub',
    channel: p['channel'] as string,
    n: (p['data'] as { n: number }).n,
    epoch: log.epoch,
    offset: log.offset,
  });
}

/** A position reply (subscribe result, SSE `subscribed`, poll `streams` entry). */
function position(log: StreamLog, r: Frame, resumed: boolean): void {
  trace(log, `position ${r['epoch']}/${r['offset']} recovered=${r['recovered']}`);
  if (resumed && r['recovered'] === false) log.events.push({ kind: 'told' });
  if (r['recovered'] === false || log.epoch === undefined) {
    log.epoch = r['epoch'] as string;
    log.offset = r['offset'] as number;
  }
}

/** WebSocket, raw protocol: subscribes to each stream (with its cursor after a reconnect), reconnects on close. */
class WsSubscriber implements Subscriber {
  readonly logs: Map<string, StreamLog>;
  readonly faults: string[] = [];
  readonly ready: Promise<void>;
  private stopped = false;
  private ws: WebSocket | undefined;
  private subscribedOnce = new Set<string>();
  private onReady: (() => void) | undefined;
  lateJoin = false;
  closes: number[] = [];

  constructor(
    readonly name: string,
    private readonly url: string,
    readonly streams: readonly string[],
  ) {
    this.logs = newLogs(name, streams);
    this.ready = new Promise((r) => (this.onReady = r));
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    const ids = new Map<number, string>();
    let nextId = 1;
    const subscribe = (stream: string): void => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const log = this.logs.get(stream) as StreamLog;
      const id = nextId++;
      ids.set(id, stream);
      const cmd: Frame = { id, cmd: 'subscribe', channel: stream };
      if (log.epoch !== undefined) cmd['since'] = { epoch: log.epoch, offset: log.offset };
      ws.send(JSON.stringify(cmd));
    };
    ws.on('open', () => {
      for (const s of this.streams) subscribe(s);
    });
    ws.on('error', () => undefined);
    ws.on('message', (raw: Buffer) => {
      for (const line of raw.toString('utf8').split('\n')) {
        if (line === '') continue;
        const f = JSON.parse(line) as Frame;
        if (f['push'] === 'pub') {
          record(this, f);
        } else if (typeof f['id'] === 'number' && ids.has(f['id'])) {
          const stream = ids.get(f['id']) as string;
          if (f['error'] !== undefined) {
            // Refused (the engine is unavailable for that namespace right now): try again.
            setTimeout(() => subscribe(stream), 250);
            continue;
          }
          const log = this.logs.get(stream) as StreamLog;
          const r = f['result'] as Frame;
          trace(log, `reply ${r['epoch']}/${r['offset']} recovered=${r['recovered']} had=${log.epoch}/${log.offset}`);
          position(log, r, log.epoch !== undefined && this.subscribedOnce.has(stream));
          for (const p of r['publications'] as Frame[]) record(this, { epoch: r['epoch'], ...p, stream });
          this.subscribedOnce.add(stream);
          if (this.subscribedOnce.size === this.streams.length) this.onReady?.();
        }
      }
    });
    ws.on('close', (code) => {
      for (const log of this.logs.values()) trace(log, `close ${code}`);
      // A 3006 close is not itself a report: each stream's resume says whether it recovered.
      this.closes.push(code);
      if (!this.stopped) setTimeout(() => this.connect(), 100);
    });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.close();
  }
}

/** Server-Sent Events, raw: reconnects with `Last-Event-ID` like a browser's EventSource. */
class SseSubscriber implements Subscriber {
  readonly logs: Map<string, StreamLog>;
  readonly faults: string[] = [];
  readonly ready: Promise<void>;
  private stopped = false;
  private abort: AbortController | undefined;
  private lastEventId = '';
  private subscribedOnce = new Set<string>();
  private onReady: (() => void) | undefined;

  constructor(
    readonly name: string,
    private readonly base: string,
    readonly streams: readonly string[],
  ) {
    this.logs = newLogs(name, streams);
    this.ready = new Promise((r) => (this.onReady = r));
    void this.loop();
  }

  private async loop(): Promise<void> {
    const q = this.streams.map((s) => `channel=${encodeURIComponent(s)}`).join('&');
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        const headers: Record<string, string> = this.lastEventId !== '' ? { 'Last-Event-ID': this.lastEventId } : {};
        const res = await fetch(`${this.base}/sse?${q}`, { headers, signal: this.abort.signal });
        if (res.status === 200 && res.body !== null) await this.read(res.body);
      } catch {
        // dropped: reconnect
      }
      if (!this.stopped) await sleep(150);
    }
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    let ev = { event: 'message', data: [] as string[], id: undefined as string | undefined };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === '') {
          if (ev.id !== undefined) this.lastEventId = ev.id;
          if (ev.data.length > 0 && this.onEvent(ev.event, JSON.parse(ev.data.join('\n')) as Frame)) {
            this.abort?.abort();
            return;
          }
          ev = { event: 'message', data: [], id: undefined };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon === -1 ? line : line.slice(0, colon);
        const v = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') ev.event = v;
        else if (field === 'data') ev.data.push(v);
        else if (field === 'id') ev.id = v;
      }
    }
  }

  /** Handles one event; true when the connection is to be dropped and opened again. */
  private onEvent(event: string, d: Frame): boolean {
    if (event === 'message') {
      record(this, d);
    } else if (event === 'subscribed') {
      const log = this.logs.get(d['stream'] as string);
      if (log === undefined) return false;
      position(log, d, this.subscribedOnce.has(log.stream));
      this.subscribedOnce.add(log.stream);
      if (this.subscribedOnce.size === this.streams.length) this.onReady?.();
    } else if (event === 'unsubscribed' && d['code'] !== undefined) {
      return true; // refused or lost: reconnect (its position stays in the event ids)
    } else if (event === 'disconnect') {
      return true; // resumed with Last-Event-ID: each stream's `subscribed` says whether it recovered
    }
    return false;
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}

/** Long-polling, raw: a loop of GETs, each with the cursor of the answer before. */
class PollSubscriber implements Subscriber {
  readonly logs: Map<string, StreamLog>;
  readonly faults: string[] = [];
  readonly ready: Promise<void>;
  private stopped = false;
  private abort: AbortController | undefined;
  private cursor = '';
  private onReady: (() => void) | undefined;
  private done: Promise<void>;

  constructor(
    readonly name: string,
    private readonly base: string,
    readonly streams: readonly string[],
  ) {
    this.logs = newLogs(name, streams);
    this.ready = new Promise((r) => (this.onReady = r));
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    const q = this.streams.map((s) => `channel=${encodeURIComponent(s)}`).join('&');
    while (!this.stopped) {
      this.abort = new AbortController();
      let answer: Frame | undefined;
      try {
        const cursor = this.cursor !== '' ? `&cursor=${encodeURIComponent(this.cursor)}` : '';
        const res = await fetch(`${this.base}/poll?${q}${cursor}&timeout=2`, { signal: this.abort.signal });
        if (res.status === 200) answer = (await res.json()) as Frame;
        else await res.text();
      } catch {
        // dropped
      }
      if (answer === undefined) {
        if (!this.stopped) await sleep(150);
        continue;
      }
      const resumed = this.cursor !== '';
      let refused = false;
      for (const [stream, st] of Object.entries((answer['streams'] ?? {}) as Record<string, Frame>)) {
        const log = this.logs.get(stream);
        if (log === undefined) continue;
        if (st['error'] !== undefined) refused = true;
        else position(log, st, resumed);
      }
      for (const p of (answer['publications'] ?? []) as Frame[]) record(this, p);
      this.cursor = answer['cursor'] as string;
      if (!refused) this.onReady?.();
      if (refused) await sleep(150);
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    void this.done;
  }
}

// ---- checker -----------------------------------------------------------------------------------

interface Verdict {
  delivered: number;
  told: number;
  /** Namespaces with a stream that was told `recovered: false`. */
  toldNamespaces: Set<string>;
  problems: string[];
}

/**
 * Per stream of each subscriber, per channel: a number seen before is a duplicate (unless the
 * stream was told of a hole since and the number's publish was retried: the store lost it with its
 * idempotency key, and it was applied again); a number below the highest is a reordering; skipped
 * acknowledged numbers are a hole, allowed only when the stream was told since that channel's last
 * publication; and the channel's sentinel must have arrived.
 */
function judge(subscribers: readonly Subscriber[], pub: Publisher): Verdict {
  const v: Verdict = { delivered: 0, told: 0, toldNamespaces: new Set(), problems: [] };
  for (const sub of subscribers) {
    v.problems.push(...sub.faults);
    for (const log of sub.logs.values()) {
      const channels = pub.channels.filter(
        (c) => log.stream === c || (log.stream.endsWith('.**') && c.startsWith(log.stream.slice(0, -2))),
      );
      const first = (c: string): number => {
        const e = log.events.find((x) => x.kind === 'pub' && x.channel === c);
        return sub.lateJoin === true && e?.kind === 'pub' ? e.n - 1 : 0;
      };
      const last = new Map<string, number>(channels.map((c) => [c, first(c)]));
      const told = new Map<string, boolean>(channels.map((c) => [c, false]));
      const where = `${sub.name} ${log.stream}`;
      for (const e of log.events) {
        if (e.kind === 'told') {
          v.told += 1;
          v.toldNamespaces.add(log.stream.split('.')[0] as string);
          for (const c of channels) told.set(c, true);
          continue;
        }
        const prev = last.get(e.channel);
        if (prev === undefined) {
          v.problems.push(`${where}: publication of an unexpected channel ${e.channel}`);
          continue;
        }
        v.delivered += 1;
        if (e.n <= prev) {
          if (!(told.get(e.channel) === true && pub.ambiguous.get(e.channel)?.has(e.n) === true)) {
            v.problems.push(
              `${where}: ${e.channel} #${e.n} after #${prev} (${e.n === prev ? 'duplicate' : 'reordered'})`,
            );
          }
          continue;
        }
        const acked = pub.acked.get(e.channel) as Set<number>;
        let missed = 0;
        for (let k = prev + 1; k < e.n; k++) if (acked.has(k)) missed += 1;
        if (missed > 0 && told.get(e.channel) !== true) {
          v.problems.push(
            `${where}: ${e.channel} skipped ${missed} acknowledged publications before #${e.n}, untold ${JSON.stringify(log.trace)}`,
          );
        }
        last.set(e.channel, e.n);
        told.set(e.channel, false);
      }
      for (const c of channels) {
        const sentinel = pub.sentinel.get(c) as number;
        if ((last.get(c) ?? 0) < sentinel) {
          v.problems.push(`${where}: ${c} dead at #${last.get(c) ?? 0}, sentinel #${sentinel} never arrived`);
        }
      }
    }
  }
  return v;
}

function channelsOf(stream: string, channels: readonly string[]): string[] {
  return channels.filter((c) => stream === c || (stream.endsWith('.**') && c.startsWith(stream.slice(0, -2))));
}

/** Whether every stream of every subscriber got, on each of its channels, at least number `top(channel)`. */
function reached(subscribers: readonly Subscriber[], pub: Publisher, top: (channel: string) => number): boolean {
  return subscribers.every((s) =>
    [...s.logs.values()].every((log) =>
      channelsOf(log.stream, pub.channels).every((c) =>
        log.events.some((e) => e.kind === 'pub' && e.channel === c && e.n >= top(c)),
      ),
    ),
  );
}

/** Waits until every subscriber's every stream got the sentinel of each of its channels. */
async function sentinelsArrive(subscribers: readonly Subscriber[], pub: Publisher, ms: number): Promise<void> {
  await until(
    () => reached(subscribers, pub, (c) => pub.sentinel.get(c) ?? 0),
    'every stream of every subscriber to get its sentinel',
    ms,
  ).catch(() => undefined); // the verdict names the streams that did not
}

/** Waits (publishing going on) until every stream got what was acknowledged when called; resolves with how long. */
function caughtUp(subscribers: readonly Subscriber[], pub: Publisher, ms: number): Promise<number> {
  const tops = new Map(pub.channels.map((c) => [c, Math.max(0, ...(pub.acked.get(c) ?? []))]));
  return until(() => reached(subscribers, pub, (c) => tops.get(c) ?? 0), 'every stream to catch up', ms);
}

/** Waits until `count` nodes subscribe (SSUBSCRIBE) to `ns.a` on the master on `port`. */
async function subscribedOn(prefix: string, ns: string, port: number, count: number, ms: number): Promise<void> {
  const channel = `${prefix}:{${ns}}:p:${ns}.a`;
  await until(
    async () => {
      const [, n] = (await withAdmin(port, (r) => r.call('PUBSUB', 'SHARDNUMSUB', channel))) as [string, number];
      return Number(n) === count;
    },
    `${count} nodes to subscribe to ${channel} on ${port}`,
    ms,
    50,
  );
}

// ---- the tests ---------------------------------------------------------------------------------

/** Namespaces named `<base><i>`, `per` of them on each of `masters` (ports), as the cluster maps them now. */
async function namespacesPerMaster(
  cluster: TestCluster,
  base: string,
  per: number,
  masters: readonly number[],
): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>(masters.map((m) => [m, []]));
  for (let i = 0; i < 1000 && [...out.values()].some((l) => l.length < per); i++) {
    const ns = `${base}${i}`;
    const list = out.get(await cluster.ownerOfNamespace(ns));
    if (list !== undefined && list.length < per) list.push(ns);
  }
  return out;
}

/** Ports of the masters that have a replica. */
async function replicatedMasters(cluster: TestCluster): Promise<number[]> {
  const all = await cluster.nodes();
  return all.filter((n) => n.master && !n.failed && all.some((r) => r.of === n.id && !r.failed)).map((n) => n.port);
}

/** Subscribers over every transport on every node, for `channels` (and the subtree of each namespace). */
async function subscribeAll(nodes: readonly RedisNode[], namespaces: readonly string[], tag: string) {
  const exact = namespaces.flatMap((ns) => [`${ns}.a`, `${ns}.b`]);
  const subtrees = namespaces.map((ns) => `${ns}.**`);
  const subs: Subscriber[] = [];
  nodes.forEach((n, i) => {
    subs.push(new WsSubscriber(`${tag}-ws${i}`, n.wsUrl, [...exact, ...subtrees]));
    subs.push(new SseSubscriber(`${tag}-sse${i}`, n.url, [...exact]));
    subs.push(new PollSubscriber(`${tag}-poll${i}`, n.url, [...subtrees, exact[0] as string]));
  });
  await withTimeout(Promise.all(subs.map((s) => s.ready)), 15_000, 'subscribers to subscribe');
  return { subs, channels: exact };
}

function report(v: Verdict, pub: Publisher): string {
  return `${pub.total} acknowledged, ${v.delivered} delivered, ${v.told} told; problems:\n${v.problems.slice(0, 20).join('\n')}`;
}

describe.skipIf(skip)('Redis Cluster topology changes (3 masters, 3 replicas)', () => {
  let cluster: TestCluster;
  let nodes: RedisNode[] = [];
  const prefix = testPrefix();

  beforeAll(async () => {
    cluster = await TestCluster.start(3, 1, 1000);
    const urls = cluster.urls;
    nodes = await Promise.all([0, 1, 2].map((i) => startClusterNode(prefix, config, urls.slice(i, i + 2))));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await cluster?.stop();
  });

  it('publishes, broadcasts and batches spanning masters all succeed on a healthy cluster, under load', async () => {
    const byMaster = await namespacesPerMaster(cluster, 'h', 4, await replicatedMasters(cluster));
    const namespaces = [...byMaster.values()].flat();
    expect(byMaster.size).toBe(3);
    // 1,200 single publishes, 60 at a time, over all nodes and namespaces.
    const statuses = new Map<number, number>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 60 }, async () => {
        while (next < 1200) {
          const i = next++;
          const ns = namespaces[i % namespaces.length] as string;
          const r = await api((nodes[i % 3] as RedisNode).url, 'publish', { channel: `${ns}.x`, data: i });
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        }
      }),
    );
    expect(Object.fromEntries(statuses)).toEqual({ 200: 1200 });

    // A broadcast and a batch over every master, while single publishes go on.
    const background = Array.from({ length: 200 }, (_, i) =>
      api((nodes[i % 3] as RedisNode).url, 'publish', { channel: `${namespaces[i % namespaces.length]}.y`, data: i }),
    );
    const b = await api((nodes[0] as RedisNode).url, 'broadcast', {
      channels: namespaces.map((ns) => `${ns}.z`),
      data: 'all',
    });
    expect(b.status).toBe(200);
    expect((b.body.results as Frame[]).filter((r) => r['error'] !== undefined)).toEqual([]);
    const before = await api((nodes[1] as RedisNode).url, 'history', { channel: `${namespaces[0]}.q`, limit: 0 });
    const commands = Array.from({ length: 60 }, (_, i) => ({
      publish: { channel: `${namespaces[i % namespaces.length]}.q`, data: i },
    }));
    const batch = await api((nodes[1] as RedisNode).url, 'batch', { commands });
    expect(batch.status).toBe(200);
    const replies = batch.body.replies as Frame[];
    expect(replies.filter((r) => r['error'] !== undefined)).toEqual([]);
    // Per channel, offsets follow command order.
    for (const ns of namespaces) {
      const offsets = replies
        .filter((_, i) => commands[i]?.publish.channel === `${ns}.q`)
        .map((r) => r['publish'].offset as number);
      expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
      expect(new Set(offsets).size).toBe(offsets.length);
    }
    expect(replies[0]?.['publish'].offset).toBe((before.body.offset as number) + 1);
    const h = await api((nodes[2] as RedisNode).url, 'history', { channel: `${namespaces[0]}.q`, limit: 100 });
    expect((h.body.publications as Frame[]).map((p) => p['data'])).toEqual(
      commands
        .map((c, i) => (c.publish.channel === `${namespaces[0]}.q` ? i : undefined))
        .filter((x) => x !== undefined),
    );
    expect((await Promise.all(background)).every((r) => r.status === 200)).toBe(true);
  }, 60_000);

  it('slots resharded to an existing and to a new master under load: every stream stays live, nothing lost', async () => {
    const byMaster = await namespacesPerMaster(cluster, 'r', 3, await replicatedMasters(cluster));
    const masters = [...byMaster.keys()];
    const [mA, mB, mC] = masters as [number, number, number];
    const namespaces = [...byMaster.values()].flat();
    const { subs, channels } = await subscribeAll(nodes, namespaces, 'reshard');
    const pub = new Publisher(channels, [nodes[0] as RedisNode], 40);
    pub.start();
    try {
      await pub.flowing(10);
      // To an existing master, publishing through one node only: nodes 1 and 2 publish nothing, so
      // they learn of the move from Redis (sunsubscribe), not from a MOVED reply.
      const toExisting = [byMaster.get(mA)?.[0], byMaster.get(mA)?.[1], byMaster.get(mB)?.[0]] as string[];
      for (const ns of toExisting) await cluster.migrateSlot(clusterSlot(`{${ns}}`), mC);
      for (const ns of toExisting) await subscribedOn(prefix, ns, mC, nodes.length, 5_000);
      const phase1 = await caughtUp(subs, pub, 5_000);
      // To a new master, publishing through every node.
      const mD = await cluster.addMaster();
      pub.nodes = nodes;
      const toNew = [byMaster.get(mA)?.[2], byMaster.get(mB)?.[1], byMaster.get(mC)?.[0]] as string[];
      for (const ns of toNew) await cluster.migrateSlot(clusterSlot(`{${ns}}`), mD);
      for (const ns of toNew) await subscribedOn(prefix, ns, mD, nodes.length, 5_000);
      const phase2 = await caughtUp(subs, pub, 5_000);
      await pub.stop();
      for (const ns of toExisting) expect(await cluster.ownerOfNamespace(ns)).toBe(mC);
      for (const ns of toNew) expect(await cluster.ownerOfNamespace(ns)).toBe(mD);
      // Nothing of the moved namespaces left on the old masters.
      for (const ns of [...toExisting, ...toNew]) {
        for (const port of masters) {
          if (port === (await cluster.ownerOfNamespace(ns))) continue;
          const [, n] = (await withAdmin(port, (r) =>
            r.call('PUBSUB', 'SHARDNUMSUB', `${prefix}:{${ns}}:p:${ns}.a`),
          )) as [string, number];
          expect(Number(n)).toBe(0);
        }
      }
      await pub.publishSentinels();
      await sentinelsArrive(subs, pub, 15_000);
      const v = judge(subs, pub);
      expect(v.problems, report(v, pub)).toEqual([]);
      expect(v.delivered).toBeGreaterThan(pub.total * subs.length * 0.5);
      // Moved streams get new epochs on their new master (their subscribers are told); no other is.
      expect([...v.toldNamespaces].filter((ns) => ![...toExisting, ...toNew].includes(ns))).toEqual([]);
      for (const n of nodes) {
        const t = n.engine.status().topology;
        expect(t.moves).toBeGreaterThan(0);
        expect(t.maxMoveMs).toBeLessThan(5_000);
      }
      // Nodes 1 and 2 published nothing during the first move: Redis told them (sunsubscribe).
      expect(nodes.slice(1).every((n) => n.engine.status().topology.serverUnsubscribes > 0)).toBe(true);
      expect(nodes.every((n) => n.engine.ready())).toBe(true);
      console.info(
        `[reshard] ${pub.total} acknowledged (${pub.failedAttempts} attempts retried), ${v.told} told; ` +
          `streams caught up ${phase1} ms after the move to an existing master, ${phase2} ms after the move to a new one; ` +
          `longest move ${Math.max(...nodes.map((n) => n.engine.status().topology.maxMoveMs))} ms`,
      );
    } finally {
      await pub.stop().catch(() => undefined);
      for (const s of subs) s.stop();
    }
  }, 90_000);

  it("a node's subscriber connections cut on every master: its subscribers catch up from history, untold", async () => {
    const withReplica = await replicatedMasters(cluster);
    const byMaster = await namespacesPerMaster(cluster, 'k', 1, withReplica);
    const namespaces = [...byMaster.values()].flat();
    const { subs, channels } = await subscribeAll(nodes, namespaces, 'cut');
    const pub = new Publisher(channels, [nodes[0] as RedisNode], 30);
    pub.start();
    try {
      await pub.flowing(10);
      const victim = nodes[1] as RedisNode;
      const gaps = victim.engine.status().gaps;
      let killed = 0;
      for (const port of withReplica) {
        killed += await withAdmin(port, async (r) => {
          const list = (await r.client('LIST')) as string;
          const ids = list
            .split('\n')
            .filter((l) => l.includes(` name=${victim.engine.connectionName}:sub `))
            .map((l) => /(?:^| )id=(\d+)/.exec(l)?.[1] as string);
          for (const id of ids) await r.client('KILL', 'ID', id);
          return ids.length;
        });
      }
      expect(killed).toBe(withReplica.length);
      await until(
        () => victim.engine.ready() && victim.engine.status().gaps > gaps,
        'node 1 to subscribe again',
        5_000,
      );
      await caughtUp(subs, pub, 5_000);
      await pub.stop();
      await pub.publishSentinels();
      await sentinelsArrive(subs, pub, 10_000);
      const v = judge(subs, pub);
      expect(v.problems, report(v, pub)).toEqual([]);
      // Nothing was lost in Redis: the hub re-read history, no client was told anything.
      expect(v.told).toBe(0);
    } finally {
      await pub.stop().catch(() => undefined);
      for (const s of subs) s.stop();
    }
  }, 60_000);

  it('a manual failover (CLUSTER FAILOVER): subscriptions follow to the promoted replica, nothing lost untold', async () => {
    const withReplica = await replicatedMasters(cluster);
    const master = withReplica[1] as number;
    const byMaster = await namespacesPerMaster(cluster, 's', 2, withReplica);
    const onMaster = byMaster.get(master) as string[];
    const elsewhere = (byMaster.get(withReplica[0] as number) as string[]).slice(0, 1);
    const { subs, channels } = await subscribeAll(nodes, [...onMaster, ...elsewhere], 'switchover');
    const pub = new Publisher(channels, [nodes[0] as RedisNode], 40);
    pub.start();
    try {
      await pub.flowing(10);
      // Only node 0 publishes: the others' connections to the old master stay up, and they follow
      // the slot map (and the master's sunsubscribe), not a MOVED or a lost connection.
      const promoted = await cluster.switchOver(master);
      for (const ns of onMaster) await subscribedOn(prefix, ns, promoted, nodes.length, 5_000);
      await caughtUp(subs, pub, 5_000);
      await pub.stop();
      await pub.publishSentinels();
      await sentinelsArrive(subs, pub, 15_000);
      const v = judge(subs, pub);
      expect(v.problems, report(v, pub)).toEqual([]);
      expect([...v.toldNamespaces].filter((ns) => !onMaster.includes(ns))).toEqual([]);
      for (const ns of onMaster) {
        const [, n] = (await withAdmin(master, (r) =>
          r.call('PUBSUB', 'SHARDNUMSUB', `${prefix}:{${ns}}:p:${ns}.a`),
        )) as [string, number];
        expect(Number(n)).toBe(0);
      }
      expect(nodes.every((n) => n.engine.ready())).toBe(true);
    } finally {
      await pub.stop().catch(() => undefined);
      for (const s of subs) s.stop();
    }
  }, 60_000);

  it('a master killed and its replica promoted: every stream gets everything or is told; every node ready again', async () => {
    const withReplica = await replicatedMasters(cluster);
    const victim = withReplica[0] as number;
    const byMaster = await namespacesPerMaster(cluster, 'f', 2, withReplica);
    const onVictim = byMaster.get(victim) as string[];
    const elsewhere = [...byMaster.entries()].filter(([p]) => p !== victim).flatMap(([, l]) => l);
    expect(onVictim.length).toBe(2);
    // Nodes 0 and 1 subscribe to everything; node 2 to nothing on the victim.
    const a = await subscribeAll(nodes.slice(0, 2), [...onVictim, ...elsewhere], 'failover');
    const z = await subscribeAll(nodes.slice(2), elsewhere, 'failover-z');
    const subs = [...a.subs, ...z.subs];
    const pub = new Publisher(a.channels, nodes, 40);
    pub.start();
    try {
      await pub.flowing(15);
      const killedAt = Date.now();
      const promoted = await cluster.failMaster(victim);
      const promotedAfter = Date.now() - killedAt;
      // Every node is ready again, and reaches the new master (node 2 had nothing there).
      const readyAfter = await until(
        async () => {
          for (const n of nodes) {
            if (!n.engine.ready()) return false;
            if ((await fetch(`${n.url}/ready`)).status !== 200) return false;
          }
          return true;
        },
        'every node to be ready after the failover',
        10_000,
        50,
      );
      expect(nodes.every((n) => n.engine.status().shards.some((s) => s.redis.endsWith(`:${promoted}`)))).toBe(true);
      // Node 2 can subscribe to a namespace of the failed master, and gets its publications.
      const late = new WsSubscriber('late-z', (nodes[2] as RedisNode).wsUrl, [`${onVictim[0]}.a`]);
      late.lateJoin = true;
      await withTimeout(late.ready, 10_000, 'a subscribe on node 2 to a namespace of the failed master');
      subs.push(late);
      await pub.flowing(20); // live publications for the late subscriber too
      await pub.stop();
      await pub.publishSentinels();
      await sentinelsArrive(subs, pub, 15_000);
      const v = judge(subs, pub);
      expect(v.problems, report(v, pub)).toEqual([]);
      expect(v.delivered).toBeGreaterThan(pub.total * (subs.length - 1) * 0.5);
      // Only the failed master's streams got new epochs (their subscribers are told); no other.
      expect([...v.toldNamespaces].filter((ns) => !onVictim.includes(ns))).toEqual([]);
      console.info(
        `[failover] promoted after ${promotedAfter} ms; every node ready ${readyAfter} ms later; ` +
          `${pub.total} acknowledged, ${v.told} told; moves: ${nodes.map((n) => n.engine.status().topology.lastMoveMs).join('/')} ms`,
      );
      expect(readyAfter).toBeLessThan(5_000);
    } finally {
      await pub.stop().catch(() => undefined);
      for (const s of subs) s.stop();
    }
  }, 90_000);
});
