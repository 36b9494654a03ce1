/**
 * Redis going away while Herald runs, and Redis absent at start. Uses a redis-server of its own on a
 * free port (never the shared one): killed with SIGKILL and started again.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, until } from '@herald/test-support';
import { api, runCli, WsClient } from '@herald/test-support/server';
import { startRedisServer, type SpawnedRedis } from '@herald/test-support/redis';
import { skipSpawnedRedis } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const ready = async (n: RedisNode): Promise<number> => (await fetch(`${n.url}/ready`)).status;
const alive = async (n: RedisNode): Promise<number> => (await fetch(`${n.url}/health`)).status;

describe.skipIf(skipSpawnedRedis)('readiness with independent shards', () => {
  it('stays ready while at least half of the shards are up, and says which part is down', async () => {
    const shards = await Promise.all([startRedisServer(), startRedisServer(), startRedisServer()]);
    const node = await startRedisNode('sh', {}, { urls: shards.map((r) => r.url) });
    try {
      expect(await ready(node)).toBe(200);
      await shards[1]?.kill();
      await until(async () => node.engine.availability().up === 2, 'the engine to see one shard down', 10_000);
      const r = await fetch(`${node.url}/ready`);
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ status: 'ok', store: { parts: 3, up: 2, status: 'degraded' } });
      await shards[2]?.kill();
      await until(
        async () => (await ready(node)) === 503,
        '/ready to report 503 with two shards of three down',
        10_000,
      );
      expect(await alive(node)).toBe(200);
      await shards[1]?.restart();
      await until(async () => (await ready(node)) === 200, '/ready to report 200 with two shards up again', 10_000);
    } finally {
      await node.close();
      await Promise.all(shards.map((r) => r.stop()));
    }
  });
});

describe.skipIf(skipSpawnedRedis)('redis availability', () => {
  let redis: SpawnedRedis;
  beforeAll(async () => {
    redis = await startRedisServer();
  });
  afterAll(async () => {
    await redis.stop();
  });

  it('turns not ready while Redis is down, fails publishes clearly, keeps clients, and resumes when Redis returns', async () => {
    const node = await startRedisNode('av', {}, { urls: [redis.url] });
    try {
      const c = await WsClient.connect(node.wsUrl);
      const r1 = await c.request({ cmd: 'subscribe', channel: 'av.**' });
      for (let i = 1; i <= 3; i++) await api(node.url, 'publish', { channel: 'av.x', data: i });
      await c.waitForCount((f) => f['push'] === 'pub', 3, 'three publications');
      // Keep what was published (a restart that loads its dump), then take Redis away.
      const saver = new Redis(redis.url);
      await saver.save();
      saver.disconnect();
      await redis.kill();

      await until(async () => (await ready(node)) === 503, '/ready to report 503', 10_000);
      expect(node.engine.ready()).toBe(false);
      expect(await alive(node)).toBe(200); // the process is alive: a liveness probe must not restart it
      const failed = await api(node.url, 'publish', { channel: 'av.x', data: 'lost' });
      expect(failed.status).toBe(503);
      expect(failed.body.error.code).toBe('HERALD_ERR_ENGINE_UNAVAILABLE');

      expect(c.closeCode).toBeUndefined(); // connected while Redis is away

      await redis.restart();
      await until(async () => (await ready(node)) === 200, '/ready to report 200 again', 10_000);
      for (let i = 4; i <= 6; i++) {
        const r = await api(node.url, 'publish', { channel: 'av.x', data: i });
        expect(r.status).toBe(200);
      }
      // A restarted Redis may have come back with older data (here it did not, but Herald cannot
      // tell): its streams get new epochs, and the client is told (redis-restore.test.ts).
      expect((await c.closed).code).toBe(3006);
      const pubs = c.frames.filter((f) => f['push'] === 'pub');
      expect(pubs.map((p) => [p['offset'], p['data']])).toEqual([1, 2, 3].map((i) => [i, i]));
      const d = await WsClient.connect(node.wsUrl);
      const again = await d.request({
        cmd: 'subscribe',
        channel: 'av.**',
        since: { epoch: r1['result'].epoch, offset: 3 },
      });
      expect(again['result']).toMatchObject({ recovered: false, offset: 6 });
      await api(node.url, 'publish', { channel: 'av.x', data: 7 });
      const [p7] = await d.waitForCount((f) => f['push'] === 'pub', 1, 'a publication after the restart');
      expect(p7).toMatchObject({ offset: 7, data: 7, epoch: again['result'].epoch });
      await d.close();
    } finally {
      await node.close();
    }
  }, 30_000);

  it('tells clients recovered: false when Redis came back without its data', async () => {
    const node = await startRedisNode('av2', {}, { urls: [redis.url] });
    try {
      const c = await WsClient.connect(node.wsUrl);
      const r1 = await c.request({ cmd: 'subscribe', channel: 'lost.x' });
      await api(node.url, 'publish', { channel: 'lost.x', data: 1 });
      await c.waitFor((f) => f['push'] === 'pub', 'first publication');
      await redis.kill();
      // dump.rdb of the previous test is from before these keys existed: they are gone after the restart.
      await redis.restart();
      await until(() => node.engine.ready(), 'the engine to be ready again', 10_000);
      await api(node.url, 'publish', { channel: 'lost.x', data: 2 });
      // The new epoch shows on the live stream: the hub cannot fill the gap and says so (3006).
      const closed = await c.closed;
      expect(closed.code).toBe(3006);
      const d = await WsClient.connect(node.wsUrl);
      const again = await d.request({
        cmd: 'subscribe',
        channel: 'lost.x',
        since: { epoch: r1['result'].epoch, offset: 1 },
      });
      expect(again['result']).toMatchObject({ recovered: false, offset: 1 });
      expect(again['result'].epoch).not.toBe(r1['result'].epoch);
      await d.close();
    } finally {
      await node.close();
    }
  }, 30_000);

  it('herald serve exits non-zero with a clear message when Redis is not there', async () => {
    const port = await freePort();
    const { code, output } = await runCli(
      ['serve', '--engine', 'redis', '--redis', `redis://127.0.0.1:${port}`, '--port', '0', '--log-level', 'silent'],
      { HERALD_API_KEYS: 'test-api-key-0123456789' },
    );
    expect(code).toBe(1);
    expect(output).toContain(`herald: cannot start: cannot connect to Redis at redis://127.0.0.1:${port}`);
    expect(output).toContain('ECONNREFUSED');
  });
});
