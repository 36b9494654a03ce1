/**
 * Redis coming back from an older state must never make Herald hand out an offset twice within one
 * epoch (docs/scaling.md, "When Redis comes back with older data"). Each scenario runs real
 * `redis-server` processes of its own on free ports (never the shared one on 6379):
 *
 * - a restart from an RDB snapshot taken mid-stream (SAVE, publish more, kill -9, start again);
 * - a replica promoted while it was behind, reached through the same address (a TCP forwarder,
 *   as a virtual IP or DNS name would be);
 * - a master that was made a replica of a lagging one and then promoted again (same run id: only
 *   the replication id tells).
 *
 * Clients returning with a cursor from before must get `recovered: false` (WS, SSE, long-poll);
 * live subscribers (WS, SSE, a held long-poll) must be told (INSUFFICIENT_STATE), never left to drop
 * the reused offsets as duplicates. Each stream gets one new epoch, however many nodes publish; it
 * keeps the offsets and history that survived, so it hands out every offset once.
 */
import { Redis } from 'ioredis';
import { streamsOf } from '@herald/protocol';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clusterSlot, shardOf } from '../src/engines/redis/keys.js';
import { RedisEngine } from '../src/engines/redis/redis-engine.js';
import { freePort, startTcpProxy, until, untilValue, withTimeout, type TcpProxy } from '@herald/test-support';
import { api, WsClient, type Frame } from '@herald/test-support/server';
import { startRedisCluster, startRedisServer, type SpawnedRedis } from '@herald/test-support/redis';
import { SseReader } from './support/http-clients.js';
import { skipSpawnedRedis } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const INSUFFICIENT_STATE = 3006;
const config = { namespaces: { default: { historySize: 1000 } }, http: { pollTimeout: 15_000 } };
const policy = { size: 100, ttlMs: 60_000, metaTtlMs: 120_000 };
/** Replicas sync at once (diskless sync waits 5 s by default for more replicas to join). */
const FAST_SYNC = ['--repl-diskless-sync-delay', '0'];

async function admin(port: number): Promise<Redis> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  r.on('error', () => undefined);
  await r.connect();
  return r;
}

async function info(port: number, section: string, field: string): Promise<string> {
  const r = await admin(port);
  try {
    const text = await r.info(section);
    return new RegExp(`^${field}:(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  } finally {
    r.disconnect();
  }
}

/** Waits until the replica on `port` is in sync with its master. */
async function inSync(port: number): Promise<void> {
  await until(async () => (await info(port, 'replication', 'master_link_status')) === 'up', 'replica link up', 15_000);
}

let runs = 0;
/** Publishes through the API with an idempotency key, retrying while Redis is unavailable. */
async function publish(node: RedisNode, channel: string, data: number): Promise<{ epoch: string; offset: number }> {
  const idempotencyKey = `k${++runs}`;
  return untilValue(
    async () => {
      const r = await api(node.url, 'publish', { channel, data, idempotencyKey });
      if (r.status === 200) return { epoch: r.body.epoch as string, offset: r.body.offset as number };
      if (r.status !== 503) throw new Error(`publish failed: ${JSON.stringify(r.body)}`);
      return undefined; // Redis unavailable: again
    },
    `a publish to ${channel} to be accepted`,
    15_000,
    50,
  );
}

async function publishRange(nodes: RedisNode[], channel: string, from: number, to: number) {
  const out: { epoch: string; offset: number }[] = [];
  for (let i = from; i <= to; i++) out.push(await publish(nodes[i % nodes.length] as RedisNode, channel, i));
  return out;
}

/** Live subscribers on one node: WS (the channel and its subtree), SSE (the channel). */
class LiveClients {
  private constructor(
    readonly ws: WsClient,
    readonly sse: SseReader,
    readonly channel: string,
    readonly subtree: string,
  ) {}

  static async open(node: RedisNode, channel: string, subtree: string): Promise<LiveClients> {
    const ws = await WsClient.subscribed(node.wsUrl, channel, subtree);
    const sse = new SseReader(`${node.url}/sse?channel=${encodeURIComponent(channel)}`);
    await sse.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'sse subscribed');
    return new LiveClients(ws, sse, channel, subtree);
  }

  async reach(n: number): Promise<void> {
    await this.ws.waitForCount((f) => f['push'] === 'pub' && f['stream'] === this.channel, n, 'ws publications');
    await this.ws.waitForCount((f) => f['push'] === 'pub' && f['stream'] === this.subtree, n, 'ws subtree pubs');
    await this.sse.waitFor((e) => e.filter((x) => x.event === 'message').length >= n, 'sse publications');
  }

  /**
   * Each live subscriber got exactly offsets 1..n (data 1..n) of one epoch (`epoch` for the channel;
   * the subtree stream has its own) and was then told that publications were lost: the WebSocket
   * closed with INSUFFICIENT_STATE, the SSE stream sent a `disconnect` event with that code. Nothing
   * of another epoch or at a reused offset reached them.
   */
  async expectToldAfter(epoch: string, n: number): Promise<void> {
    const closed = await withTimeout(this.ws.closed, 15_000, 'the WebSocket subscriber to be told');
    expect(closed.code).toBe(INSUFFICIENT_STATE);
    const want = Array.from({ length: n }, (_, i) => [epoch, i + 1, i + 1]);
    expect(this.ws.pubs(this.channel).map((p: Frame) => [p['epoch'], p['offset'], p['data']])).toEqual(want);
    const subtree = this.ws.pubs(this.subtree);
    const subtreeEpoch = subtree[0]?.['epoch'] as string;
    expect(subtree.map((p: Frame) => [p['epoch'], p['offset'], p['data']])).toEqual(
      want.map(([, offset, data]) => [subtreeEpoch, offset, data]),
    );
    await this.sse.waitFor((e) => e.some((x) => x.event === 'disconnect'), 'sse disconnect event', 15_000);
    const disconnect = this.sse.of('disconnect')[0] as Frame;
    expect(disconnect['code']).toBe(INSUFFICIENT_STATE);
    expect(this.sse.pubs().map((p) => [p['epoch'], p['offset'], p['data']])).toEqual(want);
    this.sse.close();
  }
}

/** How many sessions of `node` have a live (caught up) subscription to `stream`. */
function liveSubscribers(node: RedisNode, stream: string): number {
  let n = 0;
  for (const s of node.server.hub.sessions.values()) if (s.subscriptions.get(stream)?.state === 'live') n += 1;
  return n;
}

/** A long-poll from `cursor`, held until something happens (at most the server's poll timeout). */
async function poll(node: RedisNode, channel: string, cursor: string, timeoutS: number): Promise<Frame> {
  const q = `channel=${encodeURIComponent(channel)}&cursor=${encodeURIComponent(cursor)}&timeout=${timeoutS}`;
  const res = await fetch(`${node.url}/poll?${q}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Frame;
}

/**
 * Clients that come back with a cursor from before the restore (inside the lost stretch, and inside
 * what the restore kept): `recovered: false` on WS, SSE (Last-Event-ID) and long-poll, the new
 * epoch, and live publications of the new epoch afterwards.
 */
async function expectReturningClientsTold(
  node: RedisNode,
  publisher: RedisNode,
  channel: string,
  old: string,
  top: number,
): Promise<void> {
  for (const offset of [top, Math.floor(top / 2)]) {
    const c = await WsClient.connect(node.wsUrl);
    const r = await c.request({ cmd: 'subscribe', channel, since: { epoch: old, offset } });
    expect(r['result']).toMatchObject({ recovered: false, publications: [] });
    expect(r['result'].epoch).not.toBe(old);
    await c.close();
  }
  const sse = new SseReader(`${node.url}/sse?channel=${encodeURIComponent(channel)}`, {
    headers: { 'Last-Event-ID': `${channel};${old};${top}` },
  });
  await sse.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'sse subscribed');
  const sub = sse.of('subscribed')[0] as Frame;
  expect(sub['recovered']).toBe(false);
  expect(sub['epoch']).not.toBe(old);
  sse.close();
  const answer = await poll(node, channel, `${channel};${old};${top}`, 0);
  expect(answer['streams'][channel]).toMatchObject({ recovered: false });
  expect(answer['streams'][channel].epoch).not.toBe(old);
  expect(answer['publications']).toEqual([]);

  // Back to normal: a client resuming in the new epoch recovers and gets live publications.
  const epoch = answer['streams'][channel].epoch as string;
  const offset = answer['streams'][channel].offset as number;
  const c = await WsClient.connect(node.wsUrl);
  const r = await c.request({ cmd: 'subscribe', channel, since: { epoch, offset } });
  expect(r['result']).toMatchObject({ recovered: true, epoch, offset });
  await publish(publisher, channel, 1000);
  const [p] = await c.waitForCount((f) => f['push'] === 'pub', 1, 'a live publication in the new epoch');
  expect(p).toMatchObject({ epoch, offset: offset + 1, data: 1000 });
  await c.close();
}

/**
 * After the restore: one new epoch (whichever node published), going on from the offset that
 * survived (`kept`): it has every offset once.
 */
function expectOneNewEpoch(after: { epoch: string; offset: number }[], old: string, kept: number): void {
  expect(new Set(after.map((p) => p.epoch)).size).toBe(1);
  expect(after[0]?.epoch).not.toBe(old);
  expect(after.map((p) => p.offset)).toEqual(after.map((_, i) => kept + i + 1));
}

/** The new epoch's history: what survived (data 1..kept), then what came after (data from..to). */
async function expectHistory(node: RedisNode, channel: string, kept: number, from: number, to: number) {
  const h = await api(node.url, 'history', { channel, limit: 1000 });
  const data = [
    ...Array.from({ length: kept }, (_, i) => i + 1),
    ...Array.from({ length: to - from + 1 }, (_, i) => from + i),
  ];
  expect(h.body.publications.map((p: Frame) => [p['offset'], p['data']])).toEqual(data.map((d, i) => [i + 1, d]));
  return h.body.epoch as string;
}

describe.skipIf(skipSpawnedRedis)('redis restored from an older state', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
  });

  it('restart from an RDB snapshot taken mid-stream: new epoch, live subscribers told, old cursors not recovered', async () => {
    const redis = await startRedisServer();
    cleanup.push(() => redis.stop());
    const [a, b] = await Promise.all([
      startRedisNode('rdb', config, { urls: [redis.url] }),
      startRedisNode('rdb', config, { urls: [redis.url] }),
    ]);
    cleanup.push(
      () => a.close(),
      () => b.close(),
    );
    const live = await LiveClients.open(a, 'rs.a', 'rs.**');

    const before = await publishRange([b], 'rs.a', 1, 10);
    const old = before[0]?.epoch as string;
    const r = await admin(redis.port);
    await r.save();
    r.disconnect();
    before.push(...(await publishRange([b], 'rs.a', 11, 20)));
    expect(before.map((p) => [p.epoch, p.offset])).toEqual(before.map((_, i) => [old, i + 1]));
    await live.reach(20);
    // A long-poll that read everything and now waits: live, like the others.
    const first = await poll(a, 'rs.a', `rs.a;${old};0`, 0);
    expect(first['publications']).toHaveLength(20);
    const held = poll(a, 'rs.a', first['cursor'] as string, 14);
    await until(() => liveSubscribers(a, 'rs.a') === 3, 'the poll to be held', 15_000); // WS, SSE, poll

    await redis.kill();
    await redis.restart(); // loads the snapshot: the meta says offset 10 of the same epoch
    await until(() => a.engine.ready() && b.engine.ready(), 'both nodes to reconnect', 15_000);
    const after = await publishRange([a, b], 'rs.a', 21, 40);
    expectOneNewEpoch(after, old, 10);
    // The new epoch keeps what the snapshot had (a backlog still serves it), and nothing twice.
    expect(await expectHistory(a, 'rs.a', 10, 21, 40)).toBe(after[0]?.epoch);

    await live.expectToldAfter(old, 20);
    const answer = await held;
    expect(answer['disconnect']).toMatchObject({ code: INSUFFICIENT_STATE });
    expect(answer['publications']).toEqual([]);
    await expectReturningClientsTold(a, b, 'rs.a', old, 20);
    expect(a.engine.stats.epochsRenewed + b.engine.stats.epochsRenewed).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('a replica promoted while behind: new epoch, live subscribers told, old cursors not recovered', async () => {
    const master = await startRedisServer(FAST_SYNC);
    cleanup.push(() => master.stop());
    const replica = await startRedisServer([...FAST_SYNC, '--replicaof', '127.0.0.1', String(master.port)]);
    cleanup.push(() => replica.stop());
    await inSync(replica.port);
    const proxy: TcpProxy = await startTcpProxy(master.port);
    cleanup.push(() => proxy.close());
    const [a, b] = await Promise.all([
      startRedisNode('promo', config, { urls: [proxy.url] }),
      startRedisNode('promo', config, { urls: [proxy.url] }),
    ]);
    cleanup.push(
      () => a.close(),
      () => b.close(),
    );
    const live = await LiveClients.open(a, 'rp.a', 'rp.**');

    const before = await publishRange([b], 'rp.a', 1, 10);
    const old = before[0]?.epoch as string;
    const m = await admin(master.port);
    expect(await m.wait(1, 5000)).toBe(1); // the replica has 1..10
    m.disconnect();
    // The replica falls behind: it follows a master that is not there.
    const rep = await admin(replica.port);
    await rep.replicaof('127.0.0.1', await freePort());
    before.push(...(await publishRange([b], 'rp.a', 11, 20)));
    await live.reach(20);

    await master.kill();
    await rep.replicaof('NO', 'ONE');
    rep.disconnect();
    proxy.switchTo(replica.port);
    await until(() => a.engine.ready() && b.engine.ready(), 'both nodes to reach the promoted replica', 15_000);
    const after = await publishRange([a, b], 'rp.a', 21, 40);
    expectOneNewEpoch(after, old, 10);
    expect(await expectHistory(b, 'rp.a', 10, 21, 40)).toBe(after[0]?.epoch);

    await live.expectToldAfter(old, 20);
    await expectReturningClientsTold(b, a, 'rp.a', old, 20);
  }, 60_000);

  it('a master made replica of a lagging server and promoted again keeps its run id: the replication id tells', async () => {
    const first = await startRedisServer(FAST_SYNC);
    cleanup.push(() => first.stop());
    const second = await startRedisServer([...FAST_SYNC, '--replicaof', '127.0.0.1', String(first.port)]);
    cleanup.push(() => second.stop());
    await inSync(second.port);
    const engine = new RedisEngine({ urls: [first.url], prefix: 'ff', commandTimeout: 2000 });
    cleanup.push(() => engine.close());
    await engine.start({ onPublication: () => undefined });
    const pub = (i: number) =>
      engine.publish({ channel: 'ff.x', data: String(i), history: policy, idempotencyWindowMs: 60_000 });

    let old = '';
    for (let i = 1; i <= 10; i++) old = (await pub(i)).position.epoch;
    const f = await admin(first.port);
    const s = await admin(second.port);
    cleanup.push(
      () => Promise.resolve(f.disconnect()),
      () => Promise.resolve(s.disconnect()),
    );
    expect(await f.wait(1, 5000)).toBe(1);
    await s.replicaof('127.0.0.1', await freePort()); // falls behind at 10
    for (let i = 11; i <= 20; i++) expect((await pub(i)).position).toEqual({ epoch: old, offset: i });
    const runId = await info(first.port, 'server', 'run_id');

    // Failover to the lagging server, then the first one follows it (taking its data: offset 10 of
    // the same epoch, written under the first server's run id) and is promoted again.
    await s.replicaof('NO', 'ONE');
    await f.replicaof('127.0.0.1', String(second.port));
    await inSync(first.port);
    expect(await f.hget(engine.keys.meta('ff.x'), 't')).toBe('10');
    await f.replicaof('NO', 'ONE');
    expect(await info(first.port, 'server', 'run_id')).toBe(runId);

    let next: Awaited<ReturnType<typeof pub>> | undefined;
    await until(
      async () => {
        next = await pub(21).catch(() => undefined);
        return next !== undefined;
      },
      'a publish on the promoted server',
      15_000,
    );
    expect(next?.position.offset).toBe(11); // offsets 11..20 of the old epoch are not handed out again in it
    expect(next?.position.epoch).not.toBe(old);
    const h = await engine.history({ stream: 'ff.x', since: { epoch: old, offset: 20 }, limit: 100 });
    expect(h.position.epoch).not.toBe(old);
    expect(engine.stats.epochsRenewed).toBe(streamsOf('ff.x').length); // once per stream of the channel
  }, 60_000);
});

/** Publishes with an engine, retrying while its connection to the server is being re-established. */
async function publishWhenBack(engine: RedisEngine, channel: string): Promise<{ epoch: string; offset: number }> {
  let out: { epoch: string; offset: number } | undefined;
  await until(
    async () => {
      out = await engine
        .publish({ channel, data: '0', history: policy, idempotencyWindowMs: 1000 })
        .then((r) => r.position)
        .catch(() => undefined);
      return out !== undefined;
    },
    `a publish to ${channel}`,
    15_000,
  );
  return out as { epoch: string; offset: number };
}

describe.skipIf(skipSpawnedRedis)('each Redis server separately', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => undefined);
  });

  /**
   * Publishes 2 to each namespace, restarts `restarted` from a snapshot taken after the first, and
   * publishes again: the namespaces on that server get new epochs, the others go on.
   */
  async function restartOne(engine: RedisEngine, restarted: SpawnedRedis, moved: string, kept: string) {
    const before = new Map<string, { epoch: string; offset: number }>();
    for (const ns of [moved, kept]) await publishWhenBack(engine, `${ns}.x`);
    const r = await admin(restarted.port);
    await r.save();
    r.disconnect();
    for (const ns of [moved, kept]) before.set(ns, await publishWhenBack(engine, `${ns}.x`));
    await restarted.kill();
    await restarted.restart();
    const m = await publishWhenBack(engine, `${moved}.x`);
    expect(m.offset).toBe(2); // the snapshot had offset 1
    expect(m.epoch).not.toBe(before.get(moved)?.epoch);
    expect(await publishWhenBack(engine, `${kept}.x`)).toEqual({ epoch: before.get(kept)?.epoch, offset: 3 });
  }

  it('independent shards: only the namespaces of the restarted shard get new epochs', async () => {
    const servers = [await startRedisServer(), await startRedisServer()];
    cleanup.push(() => Promise.all(servers.map((x) => x.stop())).then(() => undefined));
    const engine = new RedisEngine({ urls: servers.map((x) => x.url), prefix: 'sh', commandTimeout: 2000 });
    cleanup.push(() => engine.close());
    await engine.start({ onPublication: () => undefined });
    const names = Array.from({ length: 32 }, (_, i) => `sh${i}`);
    const on0 = names.find((n) => shardOf(n, 2) === 0) as string;
    const on1 = names.find((n) => shardOf(n, 2) === 1) as string;
    await restartOne(engine, servers[1] as SpawnedRedis, on1, on0);
  }, 30_000);

  it('Redis Cluster: only the namespaces of the restarted master get new epochs', async () => {
    const cluster = await startRedisCluster(3);
    cleanup.push(() => cluster.stop());
    const engine = new RedisEngine({ urls: cluster.urls, cluster: true, prefix: 'cl', commandTimeout: 2000 });
    cleanup.push(() => engine.close());
    await engine.start({ onPublication: () => undefined });
    // Which master serves each namespace.
    const r = await admin((cluster.servers[0] as SpawnedRedis).port);
    const slots = await r.cluster('SLOTS');
    r.disconnect();
    const portOf = (ns: string): number => {
      const slot = clusterSlot(`{${ns}}`);
      const range = slots.find(([lo, hi]) => slot >= lo && slot <= hi);
      return Number(range?.[2]?.[1]);
    };
    const restarted = cluster.servers[0] as SpawnedRedis;
    const names = Array.from({ length: 64 }, (_, i) => `cl${i}`);
    const moved = names.find((n) => portOf(n) === restarted.port) as string;
    const kept = names.find((n) => portOf(n) !== restarted.port) as string;
    await restartOne(engine, restarted, moved, kept);
  }, 60_000);
});

describe.skipIf(skipSpawnedRedis)('redis restarted with nothing lost', () => {
  let redis: SpawnedRedis;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('still gives its streams new epochs (Herald cannot tell a complete restore from a partial one), once each', async () => {
    const engine = new RedisEngine({ urls: [redis.url], prefix: 'same', commandTimeout: 2000 });
    await engine.start({ onPublication: () => undefined });
    try {
      const pub = (channel: string) =>
        engine.publish({ channel, data: '1', history: policy, idempotencyWindowMs: 1000 });
      const x = await pub('same.x');
      const r = await admin(redis.port);
      await r.save();
      r.disconnect();
      await redis.kill();
      await redis.restart();
      await until(() => engine.ready(), 'the engine to reconnect', 15_000);
      let y: Awaited<ReturnType<typeof pub>> | undefined;
      await until(
        async () => {
          y = await pub('same.x').catch(() => undefined);
          return y !== undefined;
        },
        'a publish after the restart',
        15_000,
      );
      expect(y?.position.epoch).not.toBe(x.position.epoch);
      expect(y?.position.offset).toBe(2);
      // The subtree streams get new epochs too, once; offsets and history go on.
      const z = await pub('same.x');
      expect(z.position).toEqual({ epoch: y?.position.epoch, offset: 3 });
      const sub = await engine.history({ stream: 'same.**', limit: 10 });
      expect(sub.position.offset).toBe(3);
      expect(sub.publications.map((p) => [p.offset, p.epoch])).toEqual([1, 2, 3].map((o) => [o, sub.position.epoch]));
      expect(engine.stats.epochsRenewed).toBe(streamsOf('same.x').length); // once per stream
    } finally {
      await engine.close();
    }
  }, 30_000);
});
