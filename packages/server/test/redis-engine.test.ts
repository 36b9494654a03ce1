import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { Publication } from '../src/core/engine.js';
import { RedisEngine } from '../src/engines/redis/redis-engine.js';
import { engineConformance } from './conformance/engine-suite.js';
import {
  REDIS_URL,
  adminClient,
  dropPrefix,
  killClients,
  skipRedis,
  skipSpawnedRedis,
  testPrefix,
} from './support/redis.js';
import { until } from '@herald/test-support';
import { startRedisServer } from '@herald/test-support/redis';

const policy = { size: 100, ttlMs: 60_000, metaTtlMs: 120_000 };

const prefix = testPrefix();
afterAll(async () => {
  if (!skipRedis) await dropPrefix(prefix);
});

describe.skipIf(skipRedis)('redis engine', () => {
  engineConformance('redis', () => {
    const engine = new RedisEngine({ urls: [REDIS_URL], prefix });
    return Promise.resolve({
      engine,
      advance: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
      close: () => engine.close(),
    });
  });

  it('refuses to start with a clear message when Redis is not there', async () => {
    const engine = new RedisEngine({ urls: ['redis://127.0.0.1:1'], prefix, connectTimeout: 1000 });
    await expect(engine.start({ onPublication: () => undefined })).rejects.toThrow(
      /cannot connect to Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/,
    );
    expect(engine.ready()).toBe(false);
    await engine.close();
  });
});

describe.skipIf(skipRedis)('redis engine, beyond the conformance suite', () => {
  it("starts a new epoch when a stream's keys are lost, and drops the old epoch's history", async () => {
    const engine = new RedisEngine({ urls: [REDIS_URL], prefix });
    await engine.start({ onPublication: () => undefined });
    const admin = await adminClient();
    try {
      const first = await engine.publish({ channel: 'lose.x', data: '1', history: policy, idempotencyWindowMs: 1000 });
      await engine.publish({ channel: 'lose.x', data: '2', history: policy, idempotencyWindowMs: 1000 });
      await admin.del(engine.keys.meta('lose.x')); // as an eviction would
      const again = await engine.publish({ channel: 'lose.x', data: '3', history: policy, idempotencyWindowMs: 1000 });
      expect(again.position.offset).toBe(1);
      expect(again.position.epoch).not.toBe(first.position.epoch);
      const h = await engine.history({ stream: 'lose.x', limit: 10 });
      expect(h.publications.map((p) => p.data)).toEqual(['3']);
      expect(h.oldest).toBe(1);
      // The subtree stream kept its keys: same epoch, offset 3.
      const sub = await engine.history({ stream: 'lose.**', limit: 10 });
      expect(sub.position).toEqual({ epoch: first.position.epoch, offset: 3 });
      // A lost history with a kept meta: nothing to recover, and `oldest` says so.
      await admin.del(engine.keys.history('lose.**'));
      const gone = await engine.history({
        stream: 'lose.**',
        since: { epoch: first.position.epoch, offset: 1 },
        limit: 10,
      });
      expect(gone).toMatchObject({ oldest: 4, publications: [] });
    } finally {
      admin.disconnect();
      await engine.close();
    }
  });

  it('expires a long head of history by TTL and reports the oldest kept offset exactly', async () => {
    const engine = new RedisEngine({ urls: [REDIS_URL], prefix });
    await engine.start({ onPublication: () => undefined });
    const admin = await adminClient();
    /** Redis's clock (the scripts take their time from TIME), in ms. */
    const redisNow = async (): Promise<number> => {
      const [s, us] = await admin.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    try {
      const short = { size: 1000, ttlMs: 300, metaTtlMs: 60_000 };
      await Promise.all(
        Array.from({ length: 250 }, (_, i) =>
          engine.publish({ channel: 'ttl.x', data: String(i), history: short, idempotencyWindowMs: 1000 }),
        ),
      );
      // Past the TTL of all 250 on the clock that decides (Redis's), not on ours.
      const published = await redisNow();
      await until(async () => (await redisNow()) > published + short.ttlMs, 'the TTL to pass on Redis', 5000, 20);
      for (let i = 250; i < 253; i++) {
        await engine.publish({ channel: 'ttl.x', data: String(i), history: short, idempotencyWindowMs: 1000 });
      }
      const h = await engine.history({ stream: 'ttl.x', limit: 1000 });
      expect(h.oldest).toBe(251);
      expect(h.publications.map((p) => p.offset)).toEqual([251, 252, 253]);
    } finally {
      admin.disconnect();
      await engine.close();
    }
  });

  it('reports a lost subscriber link as a gap once it is subscribed again', async () => {
    const engine = new RedisEngine({ urls: [REDIS_URL], prefix });
    const got: Publication[] = [];
    const gaps: (readonly string[] | undefined)[] = [];
    await engine.start({ onPublication: (p) => got.push(p), onGap: (s) => gaps.push(s) });
    const admin = await adminClient();
    try {
      await engine.subscribe('gap.**');
      await engine.subscribe('gap.x');
      expect(await killClients(admin, `${engine.connectionName}:sub`)).toBe(1);
      // Each stream is reported once it is subscribed again (in one report or one per confirmation).
      const reported = (): string[] => gaps.flatMap((g) => g ?? []);
      await until(() => reported().length >= 2, 'both streams reported as gaps');
      expect(reported().sort()).toEqual(['gap.**', 'gap.x']);
      expect(engine.ready()).toBe(true);
      // Subscribed again: live publications flow.
      await engine.publish({ channel: 'gap.x', data: '1', history: policy, idempotencyWindowMs: 1000 });
      await until(() => got.length >= 2, 'the publication on both streams');
      expect(got.map((p) => p.stream).sort()).toEqual(['gap.**', 'gap.x']);
    } finally {
      admin.disconnect();
      await engine.close();
    }
  });
});

describe.skipIf(skipSpawnedRedis)('redis engine round trips', () => {
  it('costs one EVALSHA per publish, however many nodes subscribe', async () => {
    const server = await startRedisServer();
    const engines = [0, 1, 2].map(() => new RedisEngine({ urls: [server.url], prefix: 'rt' }));
    const admin = new Redis(server.url);
    try {
      const received: Publication[] = [];
      for (const e of engines) {
        await e.start({ onPublication: (p) => received.push(p) });
        await e.subscribe('rt.**');
        await e.subscribe('rt.a.b');
      }
      const [publisher] = engines as [RedisEngine];
      await publisher.publish({ channel: 'rt.warm', data: '0', history: policy, idempotencyWindowMs: 1000 });
      await admin.config('RESETSTAT');
      const n = 200;
      await Promise.all(
        Array.from({ length: n }, (_, i) =>
          publisher.publish({ channel: 'rt.a.b', data: String(i), history: policy, idempotencyWindowMs: 1000 }),
        ),
      );
      const stats = await admin.info('commandstats');
      const calls = (cmd: string): number => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
      expect(calls('evalsha')).toBe(n);
      expect(calls('eval')).toBe(0);
      // Commands run by the script itself, not round trips: one PUBLISH per stream of the channel.
      expect(calls('publish')).toBe(n * 4);
      await until(() => received.length >= 3 * 2 * n, 'every publication on every node');
      expect(received.filter((p) => p.channel === 'rt.a.b')).toHaveLength(3 * 2 * n);
    } finally {
      admin.disconnect();
      await Promise.all(engines.map((e) => e.close()));
      await server.stop();
    }
  });
});
