/**
 * `slowConsumer: drop-oldest` on the Redis engine: publications reach the hub through Redis pub/sub,
 * history is a Redis Stream. A subscriber that stops reading stays connected, gets a `skip` push and
 * the newest K when it reads again, and `history` from the told cursor (read from Redis) returns
 * exactly what was skipped. (The memory engine, SSE and `/stream`: slow-consumer-policy.test.ts.)
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
import { dropPrefix, REDIS_URL, skipRedis, testPrefix } from './support/redis.js';

const KEEP = 4;
const MAX_QUEUE = 256 * 1024;
const prefix = testPrefix();

describe.skipIf(skipRedis)('drop-oldest on the Redis engine', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({
      engine: 'redis',
      redis: { urls: [REDIS_URL], prefix },
      limits: { maxQueueBytes: MAX_QUEUE },
      namespaces: { drop: { historySize: 2000, slowConsumer: { policy: 'drop-oldest', keep: KEEP } } },
    } as TestConfigInput);
  });
  afterAll(async () => {
    await srv.close();
    await dropPrefix(prefix);
  });

  it('keeps the newest K, announces the skip, and Redis history has exactly the skipped ones', async () => {
    const hub = srv.server.hub;
    const fast = await WsClient.subscribed(srv.wsUrl, 'drop.redis');
    const slow = await WsClient.subscribed(srv.wsUrl, 'drop.redis');
    const skipped = (): number => srv.server.metrics.value('herald_slow_skipped_total') ?? 0;
    slow.ws.pause();
    const payload = 'r'.repeat(16 * 1024);
    let top = 0;
    // Bounded: far more than socket buffers plus the queue bound, stopped once 30 were dropped.
    while (top < 1500 && skipped() < 30) {
      const r = await api(srv.url, 'publish', { channel: 'drop.redis', data: { payload } });
      expect(r.status).toBe(200);
      top = r.body.offset as number;
      expect(hub.sessions.get(slow.clientId)?.outputBytes()).toBeLessThanOrEqual(MAX_QUEUE);
    }
    expect(skipped()).toBeGreaterThanOrEqual(30);
    slow.ws.resume();
    await slow.waitFor((f) => f['push'] === 'pub' && f['offset'] === top, 'the newest publication', 20_000);

    const frames = slow.frames.filter((f) => f['push'] === 'pub' || f['push'] === 'skip');
    const skips = frames.filter((f) => f['push'] === 'skip');
    expect(skips).toHaveLength(1);
    const skip = skips[0] as Frame;
    const at = frames.indexOf(skip);
    const before = frames.slice(0, at).map((f) => f['offset']);
    const after = frames.slice(at + 1).map((f) => f['offset']);
    expect(before).toEqual(Array.from({ length: skip['since'].offset }, (_, i) => i + 1));
    expect(skip['since'].offset + skip['count']).toBe(top - KEEP);
    expect(after).toEqual(Array.from({ length: KEEP }, (_, i) => top - KEEP + 1 + i));

    const h = await slow.request({ cmd: 'history', channel: 'drop.redis', since: skip['since'], limit: skip['count'] });
    expect((h['result'].publications as Frame[]).map((p) => p['offset'])).toEqual(
      Array.from({ length: skip['count'] }, (_, i) => skip['since'].offset + 1 + i),
    );
    const fastPubs = await fast.waitForCount((f) => f['push'] === 'pub', top, 'every publication', 20_000);
    expect(fastPubs.map((p) => p['offset'])).toEqual(Array.from({ length: top }, (_, i) => i + 1));
    await Promise.all([fast.close(), slow.close()]);
  }, 90_000);
});
