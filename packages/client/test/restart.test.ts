/**
 * Server restarts with the memory engine, on every transport: the graceful shutdown's hint is
 * honoured (3001, `retryAfterMs`), the client comes back to the new server on the same port,
 * resubscribes from its cursors, and is told `recovered: false` (the new server has new epochs).
 */
import { describe, expect, it } from 'vitest';
import { Herald, type StateEvent, type UnrecoveredEvent } from '@herald/client';
import { until } from '@herald/test-support';
import { startServer, type TestConfigInput } from '@herald/test-support/server';
import { collect, count, next, publishSoon } from './support/helpers.js';

const config = (port: number): TestConfigInput => ({
  port,
  shutdown: { reconnectJitter: 400, timeout: 2000 },
  http: { heartbeatInterval: 1000 },
});

describe.each(['websocket', 'http-stream', 'sse', 'long-poll'] as const)('over %s', (transport) => {
  it('reconnects after a graceful restart, after the hint, and reports recovered: false', async () => {
    let srv = await startServer(config(0));
    const port = Number(new URL(srv.url).port);
    const h = new Herald(srv.url, { transports: [transport], minReconnectDelay: 100, maxReconnectDelay: 400 });
    try {
      const sub = h.subscribe<string>('rs.chat', { backlog: 10 });
      const got = collect(sub);
      await sub.ready();
      await publishSoon(srv.url, 'rs.chat', 'before');
      await count(sub, got, 1);
      const oldEpoch = sub.cursor?.epoch;

      // A long-poll client hears the shutdown only in a poll that is open: wait until one is.
      const server = srv.server;
      if (transport === 'long-poll')
        await until(() => server.connectionsByTransport()['long-poll'] === 1, 'a held poll');
      const lost = next(h, 'state', (s) => s.state === 'connecting', 5000);
      const unrecovered = next(sub, 'unrecovered', () => true, 8000);
      const resubscribed = next(sub, 'subscribed', () => true, 8000);
      const closing = srv.close();
      const ev: StateEvent = await lost;
      const lostAt = Date.now();
      expect(ev.code).toBe(3001);
      expect(ev.retryIn).toBeGreaterThanOrEqual(0);
      expect(ev.retryIn).toBeLessThanOrEqual(400);
      expect(sub.state).toBe('subscribing');
      await closing;
      srv = await startServer(config(port));
      await publishSoon(srv.url, 'rs.chat', 'after');

      const u: UnrecoveredEvent = await unrecovered;
      expect(Date.now() - lostAt).toBeGreaterThanOrEqual((ev.retryIn ?? 0) - 5);
      expect(u.previous).toEqual({ epoch: oldEpoch, offset: 1 });
      expect(u.position.epoch).not.toBe(oldEpoch);
      expect((await resubscribed).recovered).toBe(false);
      // The backlog fills in what the new server has: the publication made before we came back.
      await count(sub, got, 2);
      expect(got.map((p) => p.data)).toEqual(['before', 'after']);
      await publishSoon(srv.url, 'rs.chat', 'live');
      await count(sub, got, 3);
      expect(got.map((p) => [p.epoch === oldEpoch, p.offset])).toEqual([
        [true, 1],
        [false, 1],
        [false, 2],
      ]);
    } finally {
      h.close();
      await srv.close();
    }
  });
});
