/**
 * `history` with `latest: true`: the newest `limit` publications, in offset order (oldest first),
 * on the memory and Redis engines, through the server API (fetch) and the WebSocket command
 * (WsClient). With `since`, the newest `limit` of those after it; with `reverse: true`, refused. The
 * SDK's `latest` option: packages/client/test/base-path.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  api,
  startServer,
  WsClient,
  type Frame,
  type TestConfigInput,
  type TestServer,
} from '@herald/test-support/server';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { RedisEngine } from '../src/engines/redis/redis-engine.js';
import type { Engine } from '../src/core/engine.js';
import { dropPrefix, REDIS_URL, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode } from './support/redis-nodes.js';

const prefix = testPrefix();

const CONFIG: TestConfigInput = {
  // Small enough that a few 1000-byte publications overflow a WebSocket reply.
  limits: { maxReplyBytes: 4096 },
  namespaces: { lt: { historySize: 10 }, big: { historySize: 100 } },
};

const ENGINES: { name: string; skip: boolean; start: () => Promise<TestServer>; engine: () => Engine }[] = [
  { name: 'memory', skip: false, start: () => startServer(CONFIG), engine: () => new MemoryEngine() },
  {
    name: 'redis',
    skip: skipRedis,
    start: () => startRedisNode(prefix, CONFIG),
    engine: () => new RedisEngine({ urls: [REDIS_URL], prefix, commandTimeout: 2000 }),
  },
];

afterAll(async () => {
  if (!skipRedis) await dropPrefix(prefix);
});

const offsets = (pubs: Frame[]): number[] => pubs.map((p) => p['offset'] as number);

for (const e of ENGINES) {
  describe.skipIf(e.skip)(`history latest: ${e.name} engine`, () => {
    let srv: TestServer;
    // A channel name of this run (the Redis keys outlive the server).
    const ch = `lt.${e.name}${Math.random().toString(36).slice(2, 8)}`;
    let epoch: string;

    beforeAll(async () => {
      srv = await e.start();
      for (let i = 1; i <= 7; i++) {
        const r = await api(srv.url, 'publish', { channel: ch, data: { n: i } });
        expect(r.status).toBe(200);
        epoch = r.body.epoch as string;
      }
    });
    afterAll(async () => {
      await srv.close();
    });

    it('engine: reverse with since gives the newest of those after it, newest first', async () => {
      const engine = e.engine();
      await engine.start({ onPublication: () => undefined });
      const stream = `lt.engine${Math.random().toString(36).slice(2, 8)}`;
      const history = { size: 10, ttlMs: 60_000, metaTtlMs: 3_600_000 };
      try {
        let at = { epoch: '', offset: 0 };
        for (let i = 1; i <= 7; i++) {
          at = (await engine.publish({ channel: stream, data: String(i), history, idempotencyWindowMs: 1000 }))
            .position;
        }
        const since = (offset: number) => ({ epoch: at.epoch, offset });
        const h = await engine.history({ stream, since: since(3), limit: 2, reverse: true });
        expect(h.publications.map((p) => p.offset)).toEqual([7, 6]);
        const all = await engine.history({ stream, since: since(5), limit: 10, reverse: true });
        expect(all.publications.map((p) => p.offset)).toEqual([7, 6]);
        const none = await engine.history({ stream, since: since(7), limit: 10, reverse: true });
        expect(none.publications).toEqual([]);
      } finally {
        await engine.close();
      }
    });

    it('API: latest gives the newest N, oldest first; without it the oldest N; reverse the newest N newest first', async () => {
      const latest = await api(srv.url, 'history', { channel: ch, limit: 2, latest: true });
      expect(latest.status).toBe(200);
      expect(latest.body).toMatchObject({ stream: ch, epoch, offset: 7 });
      expect(offsets(latest.body.publications)).toEqual([6, 7]);
      expect(latest.body.publications.map((p: Frame) => p['data'])).toEqual([{ n: 6 }, { n: 7 }]);
      expect(latest.body.truncated).toBeUndefined();
      const oldest = await api(srv.url, 'history', { channel: ch, limit: 2 });
      expect(offsets(oldest.body.publications)).toEqual([1, 2]);
      const falseIsDefault = await api(srv.url, 'history', { channel: ch, limit: 2, latest: false });
      expect(offsets(falseIsDefault.body.publications)).toEqual([1, 2]);
      const reverse = await api(srv.url, 'history', { channel: ch, limit: 2, reverse: true });
      expect(offsets(reverse.body.publications)).toEqual([7, 6]);
      const allowed = await api(srv.url, 'history', { channel: ch, limit: 2, latest: true, reverse: false });
      expect(offsets(allowed.body.publications)).toEqual([6, 7]);
    });

    it('API: latest with since gives the newest N after it', async () => {
      const cases: [number, number, number[]][] = [
        [3, 2, [6, 7]],
        [5, 10, [6, 7]],
        [6, 10, [7]],
        [7, 10, []],
        [0, 3, [5, 6, 7]],
      ];
      for (const [since, limit, want] of cases) {
        const r = await api(srv.url, 'history', { channel: ch, since: { epoch, offset: since }, limit, latest: true });
        expect(offsets(r.body.publications), `since ${since} limit ${limit}`).toEqual(want);
      }
      // The text cursor too, and another epoch gives none (not an error).
      const text = await api(srv.url, 'history', { channel: ch, since: `${epoch}:4`, limit: 1, latest: true });
      expect(offsets(text.body.publications)).toEqual([7]);
      const other = await api(srv.url, 'history', { channel: ch, since: 'other:1', limit: 1, latest: true });
      expect([other.status, other.body.publications]).toEqual([200, []]);
    });

    it('API: latest without a limit gives everything kept, capped at historySize; limit 0 the position', async () => {
      const capped = `lt.cap${e.name}${Math.random().toString(36).slice(2, 8)}`;
      for (let i = 1; i <= 12; i++) await api(srv.url, 'publish', { channel: capped, data: i });
      const all = await api(srv.url, 'history', { channel: capped, latest: true });
      expect(offsets(all.body.publications)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      const over = await api(srv.url, 'history', { channel: capped, limit: 50, latest: true });
      expect(offsets(over.body.publications)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      const three = await api(srv.url, 'history', { channel: capped, limit: 3, latest: true });
      expect(offsets(three.body.publications)).toEqual([10, 11, 12]);
      const none = await api(srv.url, 'history', { channel: capped, limit: 0, latest: true });
      expect(none.body).toMatchObject({ offset: 12, publications: [] });
    });

    it('API: latest on a subtree stream, in the stream’s offset order', async () => {
      const root = `lt.tree${e.name}${Math.random().toString(36).slice(2, 8)}`;
      for (const [leaf, n] of [
        ['a', 1],
        ['b', 2],
        ['a', 3],
        ['b', 4],
      ] as const) {
        await api(srv.url, 'publish', { channel: `${root}.${leaf}`, data: n });
      }
      const r = await api(srv.url, 'history', { channel: `${root}.**`, limit: 3, latest: true });
      expect(r.body.publications.map((p: Frame) => [p['channel'], p['offset'], p['data']])).toEqual([
        [`${root}.b`, 2, 2],
        [`${root}.a`, 3, 3],
        [`${root}.b`, 4, 4],
      ]);
    });

    it('API: refuses latest with reverse, and a latest that is not a boolean (400)', async () => {
      const both = await api(srv.url, 'history', { channel: ch, limit: 2, latest: true, reverse: true });
      expect(both.status).toBe(400);
      expect(both.body.error.code).toBe('HERALD_ERR_API_BAD_REQUEST');
      expect(both.body.error.message).toMatch(/"latest" and "reverse" cannot both be true/);
      for (const latest of ['true', 1, null]) {
        const r = await api(srv.url, 'history', { channel: ch, latest });
        expect([r.status, r.body.error.code, r.body.error.message], String(latest)).toEqual([
          400,
          'HERALD_ERR_API_BAD_REQUEST',
          '"latest" must be a boolean',
        ]);
      }
    });

    it('API batch: history with latest', async () => {
      const r = await api(srv.url, 'batch', {
        commands: [
          { history: { channel: ch, limit: 1, latest: true } },
          { history: { channel: ch, limit: 1, latest: true, reverse: true } },
        ],
      });
      expect(r.status).toBe(200);
      expect(offsets(r.body.replies[0].history.publications)).toEqual([7]);
      expect(r.body.replies[1].error.code).toBe('HERALD_ERR_API_BAD_REQUEST');
    });

    it('WebSocket: latest, with since, and refused with reverse or a non-boolean', async () => {
      const c = await WsClient.connect(srv.wsUrl);
      try {
        const r = await c.request({ cmd: 'history', channel: ch, limit: 3, latest: true });
        expect(r['result']).toMatchObject({ stream: ch, epoch, offset: 7 });
        expect(offsets(r['result'].publications)).toEqual([5, 6, 7]);
        const since = await c.request({
          cmd: 'history',
          channel: ch,
          limit: 3,
          latest: true,
          since: { epoch, offset: 5 },
        });
        expect(offsets(since['result'].publications)).toEqual([6, 7]);
        const both = await c.request({ cmd: 'history', channel: ch, latest: true, reverse: true });
        expect(both['error']).toMatchObject({
          code: 'HERALD_ERR_PROTOCOL_BAD_FIELD',
          message: expect.stringContaining('"latest" and "reverse"'),
        });
        const bad = await c.request({ cmd: 'history', channel: ch, latest: 'yes' });
        expect(bad['error']).toEqual({ code: 'HERALD_ERR_PROTOCOL_BAD_FIELD', message: '"latest" must be a boolean' });
        // The connection is still usable after the refusals.
        const after = await c.request({ cmd: 'history', channel: ch, limit: 1, latest: true });
        expect(offsets(after['result'].publications)).toEqual([7]);
      } finally {
        await c.close();
      }
    });

    it('WebSocket: a latest reply larger than maxReplyBytes keeps the newest that fit, oldest first', async () => {
      const chan = `big.${e.name}${Math.random().toString(36).slice(2, 8)}`;
      for (let i = 1; i <= 10; i++) await api(srv.url, 'publish', { channel: chan, data: `${i}:${'x'.repeat(1000)}` });
      const c = await WsClient.connect(srv.wsUrl);
      try {
        const r = await c.request({ cmd: 'history', channel: chan, limit: 10, latest: true });
        const got = offsets(r['result'].publications);
        expect(r['result'].truncated).toBe(true);
        expect(got.length).toBeGreaterThan(0);
        expect(got.length).toBeLessThan(10);
        // The newest ones, contiguous up to the top, in offset order.
        expect(got).toEqual(Array.from({ length: got.length }, (_, i) => 11 - got.length + i));
        const forward = await c.request({ cmd: 'history', channel: chan, limit: 10 });
        expect(offsets(forward['result'].publications)[0]).toBe(1);
      } finally {
        await c.close();
      }
    });
  });
}
