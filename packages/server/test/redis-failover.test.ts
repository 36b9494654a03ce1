/**
 * Failures around the Redis engine: a node killed (SIGKILL) while its clients stream, and a node
 * whose Redis connections are cut mid-stream. Clients must end with exactly their stream's sequence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChurningClient, prng, type Received } from './support/churning-client.js';
import { until, withTimeout } from '@herald/test-support';
import { api, startChildNode } from '@herald/test-support/server';
import { REDIS_URL, adminClient, clientIds, dropPrefix, killClients, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const prefix = testPrefix();
const config = { namespaces: { default: { historySize: 5000 } } };
let b: RedisNode;
let c: RedisNode;

/** Publishes `total` publications on `node`, calling `at(i)` before the i-th. */
async function publishAll(node: RedisNode, channels: string[], total: number, at: (i: number) => Promise<void>) {
  const rand = prng(77);
  for (let i = 0; i < total; i++) {
    await at(i);
    const channel = channels[Math.floor(rand() * channels.length)]!;
    const r = await api(node.url, 'publish', { channel, data: { i } });
    if (r.status !== 200) throw new Error(`publish ${i} failed: ${JSON.stringify(r.body)}`);
  }
}

async function expectWholeStream(node: RedisNode, cl: ChurningClient): Promise<void> {
  const h = await api(node.url, 'history', { channel: cl.stream, limit: 5000 });
  await cl.reach(h.body.offset);
  cl.stop();
  expect(cl.errors).toEqual([]);
  const expected = (h.body.publications as Received[]).map((p) => ({
    offset: p.offset,
    channel: p.channel,
    data: p.data,
  }));
  expect(expected).toHaveLength(h.body.offset);
  expect(cl.got).toEqual(expected);
}

describe.skipIf(skipRedis)('redis engine failures', () => {
  beforeAll(async () => {
    [b, c] = await Promise.all([startRedisNode(prefix, config), startRedisNode(prefix, config)]);
  });
  afterAll(async () => {
    await Promise.all([b.close(), c.close()]);
    await dropPrefix(prefix);
  });

  it('clients of a node killed with SIGKILL resume on another node with nothing lost', async () => {
    const k = await startChildNode(['--engine', 'redis', '--redis', REDIS_URL], {
      HERALD_REDIS_PREFIX: prefix,
      HERALD_NAMESPACES: JSON.stringify(config.namespaces),
    });
    try {
      let target = k.wsUrl;
      const clients = ['kill.**', 'kill.a', 'kill.**', 'kill.b.**'].map(
        (s, i) => new ChurningClient(() => target, s, prng(300 + i)),
      );
      for (const cl of clients) cl.epoch = (await api(c.url, 'history', { channel: cl.stream, limit: 0 })).body.epoch;
      // Each client streams from the child node; when it dies, straight to node C with its cursor.
      const sessions = clients.map(async (cl) => {
        await cl.session(undefined);
        void cl.session(undefined);
      });
      await publishAll(b, ['kill.a', 'kill.b', 'kill.b.c'], 300, async (i) => {
        if (i === 120) {
          target = c.wsUrl;
          await k.kill();
        }
      });
      await withTimeout(Promise.all(sessions), 10_000, 'clients to leave the killed node');
      for (const cl of clients) await expectWholeStream(c, cl);
      expect(clients.every((cl) => cl.got.length > 0)).toBe(true);
    } finally {
      await k.kill();
    }
  }, 60_000);

  it('clients catch up from history when their node loses its Redis connections mid-stream', async () => {
    const a = await startRedisNode(prefix, config);
    const admin = await adminClient();
    try {
      const clients = ['drop.**', 'drop.a', 'drop.b.**'].map((s, i) => new ChurningClient(a.wsUrl, s, prng(500 + i)));
      for (const cl of clients) cl.epoch = (await api(a.url, 'history', { channel: cl.stream, limit: 0 })).body.epoch;
      for (const cl of clients) void cl.session(undefined);
      for (const cl of clients) await cl.reach(0);
      let killed = 0;
      await publishAll(b, ['drop.a', 'drop.b', 'drop.b.c'], 300, async (i) => {
        if (i === 50) await clients[0]!.reach(1);
        if (i === 100) killed += await killClients(admin, a.engine.connectionName);
        if (i === 200) {
          // Both connections back after the first kill (reconnecting takes a backoff), then again.
          await until(
            async () => (await clientIds(admin, a.engine.connectionName)).length >= 2,
            'node A to reconnect both Redis connections',
            5000,
            20,
          );
          killed += await killClients(admin, a.engine.connectionName);
        }
      });
      expect(killed).toBeGreaterThanOrEqual(4); // command and subscriber connections, twice
      for (const cl of clients) await expectWholeStream(a, cl);
      // The clients stayed connected to node A all along: the engine told the hub, which re-read history.
      expect(clients.map((cl) => cl.reconnects)).toEqual([0, 0, 0]);
      expect(a.engine.status().gaps).toBeGreaterThanOrEqual(2);
      expect(a.engine.ready()).toBe(true);
    } finally {
      admin.disconnect();
      await a.close();
    }
  }, 60_000);
});
