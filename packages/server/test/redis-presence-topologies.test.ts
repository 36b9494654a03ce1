/**
 * Presence past one Redis: two Herald nodes on independent shards, and on a three-master Redis
 * Cluster (sharded pub/sub), with namespaces placed on different shards and masters. Every node
 * lists every subscriber, joins and leaves cross nodes, a lobby lists the channels of a namespace.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSlot, shardOf } from '../src/engines/redis/keys.js';
import { until } from '@herald/test-support';
import { api, WsClient, type Frame } from '@herald/test-support/server';
import {
  startRedisCluster,
  startRedisServer,
  type SpawnedCluster,
  type SpawnedRedis,
} from '@herald/test-support/redis';
import { skipSpawnedRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

// Presence for every namespace, so the test can pick namespaces by where they land.
const config = {
  presence: { refreshInterval: 200, ttl: 600 },
  namespaces: { default: { presence: true, joinLeave: true } },
};

/** Namespaces `ns0`, `ns1`, ... : the first one for each value of `placeOf`, `count` of them. */
function spread(placeOf: (ns: string) => number, count: number): string[] {
  const seen = new Map<number, string>();
  for (let i = 0; seen.size < count && i < 10_000; i++) {
    const ns = `ns${i}`;
    if (!seen.has(placeOf(ns))) seen.set(placeOf(ns), ns);
  }
  return [...seen.values()];
}

async function subscribed(url: string, channel: string): Promise<WsClient> {
  const c = await WsClient.connect(url);
  const r = await c.request({ cmd: 'subscribe', channel });
  if (r['result'] === undefined) throw new Error(`subscribe ${channel}: ${JSON.stringify(r['error'])}`);
  return c;
}

async function presenceAt(node: RedisNode, channel: string): Promise<string[]> {
  const r = await api(node.url, 'presence', { channel });
  if (r.status !== 200) throw new Error(`presence ${channel}: ${JSON.stringify(r.body)}`);
  return (r.body.presence as Frame[]).map((e) => e['client'] as string).sort();
}

/** What both topologies must do, for each namespace (each on its own shard or master). */
async function presenceAcross(nodes: [RedisNode, RedisNode], namespaces: string[]): Promise<void> {
  const [a, b] = nodes;
  for (const ns of namespaces) {
    const channel = `${ns}.room`;
    const ca = await subscribed(a.wsUrl, channel);
    const cb = await subscribed(b.wsUrl, channel);
    await ca.waitFor((f) => f['push'] === 'join' && f['client'] === cb.clientId, `the join at a (${ns})`);
    expect(await presenceAt(a, channel)).toEqual([ca.clientId, cb.clientId].sort());
    expect(await presenceAt(b, channel)).toEqual([ca.clientId, cb.clientId].sort());
    const lobby = await api(a.url, 'channels', { pattern: `${ns}.*` });
    expect(lobby.body.channels).toEqual([{ stream: channel, subscribers: 1, presence: { clients: 2, users: 1 } }]);
    await ca.close();
    await cb.waitFor((f) => f['push'] === 'leave' && f['client'] === ca.clientId, `the leave at b (${ns})`);
    expect(await presenceAt(a, channel)).toEqual([cb.clientId]);
    await cb.close();
    await until(async () => (await presenceAt(b, channel)).length === 0, `${channel} to be empty`);
  }
}

describe.skipIf(skipSpawnedRedis)('presence on independent Redis shards', () => {
  let shards: SpawnedRedis[] = [];
  let nodes: RedisNode[] = [];
  const prefix = testPrefix();

  beforeAll(async () => {
    shards = await Promise.all([startRedisServer(), startRedisServer()]);
    const urls = shards.map((s) => s.url);
    nodes = [await startRedisNode(prefix, config, { urls }), await startRedisNode(prefix, config, { urls })];
  }, 60_000);
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await Promise.all(shards.map((s) => s.stop()));
  });

  it('lists and announces subscribers of both nodes, in namespaces on either shard', async () => {
    const namespaces = spread((ns) => shardOf(ns, 2), 2);
    expect(namespaces).toHaveLength(2);
    await presenceAcross(nodes as [RedisNode, RedisNode], namespaces);
  });
});

describe.skipIf(skipSpawnedRedis)('presence on a Redis Cluster', () => {
  let cluster: SpawnedCluster | undefined;
  let nodes: RedisNode[] = [];
  const prefix = testPrefix();

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    nodes = [
      await startRedisNode(prefix, config, { urls: cluster.urls, cluster: true }),
      await startRedisNode(prefix, config, { urls: cluster.urls.slice(1), cluster: true }),
    ];
  }, 60_000);
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await cluster?.stop();
  });

  it('lists and announces subscribers of both nodes, in namespaces on each master', async () => {
    // `redis-cli --cluster create` gives each of three masters a third of the slots.
    const namespaces = spread((ns) => Math.floor((clusterSlot(`{${ns}}`) * 3) / 16384), 3);
    expect(namespaces).toHaveLength(3);
    await presenceAcross(nodes as [RedisNode, RedisNode], namespaces);
  });
});
