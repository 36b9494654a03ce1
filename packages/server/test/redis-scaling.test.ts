/**
 * Past one Redis: independent shards (consistent hashing on the namespace) and a Redis Cluster
 * (hash tags on the namespace, sharded pub/sub). The servers are started by this file on free
 * loopback ports: two plain redis-server processes, and three cluster-enabled masters joined with
 * `redis-cli --cluster create`.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSlot, shardOf } from '../src/engines/redis/keys.js';
import { RedisEngine } from '../src/engines/redis/redis-engine.js';
import { engineConformance } from './conformance/engine-suite.js';
import { api, WsClient } from '@herald/test-support/server';
import {
  startRedisCluster,
  startRedisServer,
  type SpawnedCluster,
  type SpawnedRedis,
} from '@herald/test-support/redis';
import { skipSpawnedRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';
import { SESSION_SECRET, expectForwardedSend } from './support/send-forward.js';

/** PUBSUB NUMSUB (or SHARDNUMSUB) of one channel on one server. */
async function subscribersOn(url: string, channel: string, sharded: boolean): Promise<number> {
  const r = new Redis(url, { lazyConnect: true, retryStrategy: () => null });
  await r.connect();
  try {
    const reply = (await r.call('PUBSUB', sharded ? 'SHARDNUMSUB' : 'NUMSUB', channel)) as [string, number];
    return Number(reply[1]);
  } finally {
    r.disconnect();
  }
}

async function keysOn(url: string, pattern: string): Promise<string[]> {
  const r = new Redis(url, { lazyConnect: true, retryStrategy: () => null });
  await r.connect();
  try {
    return await r.keys(pattern);
  } finally {
    r.disconnect();
  }
}

describe('shard key', () => {
  it('spreads namespaces over shards and moves few of them when a shard is added', () => {
    const names = Array.from({ length: 2000 }, (_, i) => `ns${i}`);
    const two = names.map((n) => shardOf(n, 2));
    expect(two.filter((s) => s === 0).length).toBeGreaterThan(850);
    expect(two.filter((s) => s === 1).length).toBeGreaterThan(850);
    const three = names.map((n) => shardOf(n, 3));
    const moved = names.filter((_, i) => two[i] !== three[i]);
    // Jump consistent hashing: about a third moves, and only to the new shard.
    expect(moved.length).toBeLessThan(800);
    expect(moved.every((n) => shardOf(n, 3) === 2)).toBe(true);
  });

  it('puts every key of a namespace in one cluster slot', () => {
    const slot = clusterSlot('{radio}');
    for (const key of ['p:{radio}:m:radio.event.tweet', 'p:{radio}:h:radio.**', 'p:{radio}:p:radio.event.**']) {
      expect(clusterSlot(key)).toBe(slot);
    }
    expect(clusterSlot('123456789')).toBe(12739); // the CRC16 test vector of the Redis Cluster spec
  });
});

describe.skipIf(skipSpawnedRedis)('independent Redis shards', () => {
  let shards: SpawnedRedis[] = [];
  let urls: string[] = [];
  beforeAll(async () => {
    shards = await Promise.all([startRedisServer(), startRedisServer()]);
    urls = shards.map((s) => s.url);
  });
  afterAll(async () => {
    await Promise.all(shards.map((s) => s.stop()));
  });

  engineConformance('redis, two shards', () => {
    const engine = new RedisEngine({ urls, prefix: 'conf' });
    return Promise.resolve({
      engine,
      advance: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
      close: () => engine.close(),
    });
  });

  it('keeps each namespace on the shard its name hashes to, and delivers across nodes', async () => {
    const prefix = testPrefix();
    const nodes: RedisNode[] = [await startRedisNode(prefix, {}, { urls }), await startRedisNode(prefix, {}, { urls })];
    try {
      const namespaces = Array.from({ length: 12 }, (_, i) => `sh${i}`);
      const c = await WsClient.connect(nodes[0]!.wsUrl);
      for (const ns of namespaces) await c.request({ cmd: 'subscribe', channel: `${ns}.**` });
      for (const ns of namespaces) await api(nodes[1]!.url, 'publish', { channel: `${ns}.a.b`, data: ns });
      await c.waitForCount((f) => f['push'] === 'pub', namespaces.length, 'one publication per namespace');
      for (const ns of namespaces) {
        const home = shardOf(ns, 2);
        expect(await keysOn(urls[home]!, `${prefix}:{${ns}}:*`)).toHaveLength(8); // meta + history of 4 streams
        expect(await keysOn(urls[1 - home]!, `${prefix}:{${ns}}:*`)).toEqual([]);
      }
      expect(new Set(namespaces.map((ns) => shardOf(ns, 2))).size).toBe(2);
      await c.close();
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  });

  it('forwards POST /send between nodes over the shard that each node id hashes to', async () => {
    const prefix = testPrefix();
    const over = { http: { sessionSecret: SESSION_SECRET } };
    const nodes = [await startRedisNode(prefix, over, { urls }), await startRedisNode(prefix, over, { urls })];
    try {
      await expectForwardedSend(nodes[0]!.url, nodes[1]!.url, 'fwdsh.a');
      await expectForwardedSend(nodes[1]!.url, nodes[0]!.url, 'fwdsh.b');
      for (const n of nodes) {
        const id = n.server.hub.nodeId;
        const home = shardOf(id, 2);
        expect(await subscribersOn(urls[home]!, `${prefix}:node:{${id}}`, false)).toBe(1);
        expect(await subscribersOn(urls[1 - home]!, `${prefix}:node:{${id}}`, false)).toBe(0);
      }
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  });
});

describe.skipIf(skipSpawnedRedis)('Redis Cluster with sharded pub/sub', () => {
  let cluster: SpawnedCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  engineConformance('redis cluster', () => {
    const engine = new RedisEngine({ urls: cluster.urls.slice(0, 1), cluster: true, prefix: 'conf' });
    return Promise.resolve({
      engine,
      advance: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
      close: () => engine.close(),
    });
  });

  it('serves several nodes: publications travel by SSUBSCRIBE on the master owning the namespace', async () => {
    const prefix = testPrefix();
    const nodes: RedisNode[] = [
      await startRedisNode(prefix, {}, { urls: cluster.urls, cluster: true }),
      await startRedisNode(prefix, {}, { urls: cluster.urls.slice(1), cluster: true }),
    ];
    try {
      const namespaces = Array.from({ length: 9 }, (_, i) => `cl${i}`);
      const c = await WsClient.connect(nodes[0]!.wsUrl);
      for (const ns of namespaces) await c.request({ cmd: 'subscribe', channel: `${ns}.**` });
      for (const ns of namespaces) {
        const r = await api(nodes[1]!.url, 'publish', { channel: `${ns}.x`, data: ns, idempotencyKey: `k-${ns}` });
        expect(r.body).toMatchObject({ offset: 1, duplicate: false });
        const again = await api(nodes[0]!.url, 'publish', { channel: `${ns}.x`, data: ns, idempotencyKey: `k-${ns}` });
        expect(again.body).toMatchObject({ offset: 1, duplicate: true });
      }
      await c.waitForCount((f) => f['push'] === 'pub', namespaces.length, 'one publication per namespace');
      expect(
        c
          .pubs()
          .map((p) => p['data'])
          .sort(),
      ).toEqual([...namespaces].sort());
      // Each namespace's keys and its shard channel are on exactly one master.
      const owners = new Set<string>();
      for (const ns of namespaces) {
        const holders: string[] = [];
        for (const url of cluster.urls) {
          const keys = await keysOn(url, `${prefix}:{${ns}}:*`);
          if (keys.length > 0) holders.push(url);
          const r = new Redis(url);
          const [, subscribers] = (await r.call('PUBSUB', 'SHARDNUMSUB', `${prefix}:{${ns}}:p:${ns}.**`)) as [
            string,
            number,
          ];
          r.disconnect();
          if (keys.length > 0) expect(subscribers).toBe(1);
          else expect(subscribers).toBe(0);
        }
        expect(holders).toHaveLength(1);
        owners.add(holders[0]!);
      }
      expect(owners.size).toBeGreaterThan(1);
      const h = await api(nodes[0]!.url, 'history', { channel: 'cl3.**' });
      expect(h.body.publications).toEqual([{ channel: 'cl3.x', offset: 1, data: 'cl3' }]);
      await c.close();
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  }, 30_000);

  it('forwards POST /send between nodes over sharded pub/sub', async () => {
    const prefix = testPrefix();
    const over = { http: { sessionSecret: SESSION_SECRET } };
    const nodes = [
      await startRedisNode(prefix, over, { urls: cluster.urls, cluster: true }),
      await startRedisNode(prefix, over, { urls: cluster.urls.slice(1), cluster: true }),
    ];
    try {
      await expectForwardedSend(nodes[0]!.url, nodes[1]!.url, 'fwdcl.a');
      await expectForwardedSend(nodes[1]!.url, nodes[0]!.url, 'fwdcl.b');
      // Each node's control channel is subscribed (SSUBSCRIBE) on exactly one master.
      for (const n of nodes) {
        const channel = `${prefix}:node:{${n.server.hub.nodeId}}`;
        const counts = await Promise.all(cluster.urls.map((url) => subscribersOn(url, channel, true)));
        expect(counts.reduce((x, y) => x + y, 0)).toBe(1);
      }
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
    }
  }, 30_000);
});
