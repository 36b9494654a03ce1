/**
 * A server killed in the middle of `publishMany` and started again on the same port (Redis engine,
 * so the publications and idempotency keys outlive the process): the client keeps retrying with
 * the same keys, and every publication is applied exactly once, in order, with no gap.
 *
 * The kill is abrupt: when the server has applied 1500 publications, it stops listening and resets
 * every connection at once, from inside the publish that reached the count, so the batch being
 * applied loses its answer (its publications are applied, the client never hears of it) and other
 * batches are cut while on the wire.
 */
import type { Server as HttpServer } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '@herald/test-support';
import { API_KEY, startServer, type TestConfigInput, type TestServer } from '@herald/test-support/server';
import { HeraldApi, type PublishOutcome, type RetryEvent } from '@herald/api';
import { dropPrefix, REDIS_URL, skipRedis, testPrefix } from './support/redis.js';
import { countConnections, onPublish } from './support/servers.js';

const prefix = testPrefix();
const CHANNELS = ['kill.a', 'kill.b', 'kill.c', 'kill.d'];
const PER_CHANNEL = 1000;
const KILL_AT = 1500;

describe.skipIf(skipRedis)('a server killed mid-batch and restarted (Redis engine)', () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
    await dropPrefix(prefix);
  });

  it('applies every publication exactly once, in order', async () => {
    const port = await freePort();
    const config = {
      port,
      engine: 'redis',
      redis: { urls: [REDIS_URL], prefix },
      namespaces: { kill: { historySize: PER_CHANNEL } },
    } as TestConfigInput;
    const first = await startServer(config);
    servers.push(first);
    const conns = countConnections(first.server.httpServer);

    let applied = 0;
    let killed: Promise<void> | undefined;
    let restarted: Promise<TestServer> | undefined;
    const stopWatching = onPublish((d) => {
      if (!d.channel.startsWith('kill.') || ++applied !== KILL_AT) return;
      // Abrupt: no more accepts, every connection reset, nothing drained or answered.
      (first.server.httpServer as HttpServer).close();
      for (const socket of conns.accepted) socket.resetAndDestroy();
      killed = first.close();
    });

    const retries: RetryEvent[] = [];
    const client = new HeraldApi({
      url: `http://127.0.0.1:${port}`,
      apiKey: API_KEY,
      connections: 4,
      batchSize: 50,
      retries: 50,
      backoff: { initial: 20, max: 250 },
      onRetry: (e) => {
        retries.push(e);
        // The new server starts once the client has found the port closed.
        if (killed === undefined || restarted !== undefined || !/ECONNREFUSED/.test(e.error.message)) return;
        restarted = killed.then(async () => {
          const second = await startServer(config);
          servers.push(second);
          return second;
        });
      },
    });
    try {
      const outcomes = await Promise.all(
        CHANNELS.map((channel) =>
          client.publishMany(Array.from({ length: PER_CHANNEL }, (_, i) => ({ channel, data: { channel, i } }))),
        ),
      );
      stopWatching();
      expect(killed, 'the server was killed').toBeDefined();
      expect(restarted, 'the server was started again').toBeDefined();
      const second = await restarted;
      expect(second?.server.address?.port).toBe(port);
      // Retries met both a dropped connection and a refused one (while the server was down).
      const messages = retries.map((e) => e.error.message).join('\n');
      expect(messages).toMatch(/dropped before the answer/);
      expect(messages).toMatch(/ECONNREFUSED/);

      const all: PublishOutcome[] = outcomes.flat();
      const failed = all.filter((o) => !o.ok);
      expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
      // The batch being applied at the kill lost its answer: its publications come back as duplicates.
      expect(all.some((o) => o.ok && o.duplicate)).toBe(true);

      const reader = new HeraldApi({ url: `http://127.0.0.1:${port}`, apiKey: API_KEY });
      for (const [c, channel] of CHANNELS.entries()) {
        const mine = outcomes[c] as PublishOutcome[];
        // The offsets the client got: 1..N in array order, one epoch.
        expect(mine.map((o) => o.ok && o.offset)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => i + 1));
        expect(new Set(mine.map((o) => o.ok && o.epoch)).size).toBe(1);
        // What the server holds: each publication once, in order, no gap.
        const h = await reader.history<{ i: number }>(channel, { limit: PER_CHANNEL });
        expect(h.offset).toBe(PER_CHANNEL);
        expect(h.publications.map((p) => p.offset)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => i + 1));
        expect(h.publications.map((p) => p.data.i)).toEqual(Array.from({ length: PER_CHANNEL }, (_, i) => i));
      }
      await reader.close();
    } finally {
      stopWatching();
      await client.close();
    }
  }, 60_000);
});
