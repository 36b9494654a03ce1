import { afterEach, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

/** Resolves once `client` has received `n` more pings from the server. */
function pings(client: WsClient, n: number, ms = 5000): Promise<void> {
  let seen = 0;
  return withTimeout(
    new Promise<void>((resolve) => {
      const on = (): void => {
        seen += 1;
        if (seen >= n) {
          client.ws.off('ping', on);
          resolve();
        }
      };
      client.ws.on('ping', on);
    }),
    ms,
    `${n} pings`,
  );
}

describe('heartbeat', () => {
  it('closes a connection that does not answer pings with 3003 STALE', async () => {
    srv = await startServer({ heartbeat: { pingInterval: 100, pingTimeout: 100 } });
    const stale = await WsClient.connect(srv.wsUrl, { autoPong: false });
    expect(stale.frames[0]).toMatchObject({ push: 'connected', pingInterval: 100 });
    const closed = await withTimeout(stale.closed, 5000, 'the stale connection to be closed');
    expect(closed.code).toBe(3003);
    const push = await stale.waitFor((f) => f['push'] === 'disconnect', 'disconnect push');
    expect(push).toMatchObject({ code: 3003, reconnect: true });
  });

  // Server and clients share one event loop here, so a pingTimeout of 100 ms would let a busy test
  // machine (a scheduler stall of 100 ms) reap the live client too. A pingTimeout longer than the
  // ping interval keeps this test about the protocol, and covers a regression: each ping round used
  // to cancel the previous round's reap, so with pingTimeout > pingInterval a silent connection was
  // never closed.
  it('keeps a client that answers pings while a silent one is reaped', async () => {
    srv = await startServer({ heartbeat: { pingInterval: 100, pingTimeout: 1000 } });
    const live = await WsClient.connect(srv.wsUrl);
    await live.request({ cmd: 'subscribe', channel: 'hb.x' });
    const livePings = pings(live, 5, 10_000);
    const stale = await WsClient.connect(srv.wsUrl, { autoPong: false });

    const closed = await withTimeout(stale.closed, 10_000, 'the stale connection to be closed');
    expect(closed.code).toBe(3003);
    expect(await stale.waitFor((f) => f['push'] === 'disconnect', 'disconnect push')).toMatchObject({ code: 3003 });

    // The live client answered every ping over the same period (several rounds), and is still
    // connected: a sentinel publication reaches it.
    await livePings;
    await api(srv.url, 'publish', { channel: 'hb.x', data: 'sentinel' });
    await live.waitFor((f) => f['push'] === 'pub' && f['data'] === 'sentinel', 'sentinel on the live client');
    expect(live.closeCode).toBeUndefined();
    expect(live.frames.filter((f) => f['push'] === 'disconnect')).toEqual([]);
    await live.close();
  });
});

describe('heartbeat with many connections', () => {
  // Pings go out in batches (one per turn of the event loop): every connection still gets one.
  it('pings every one of 1,200 connections in each round', async () => {
    srv = await startServer({ heartbeat: { pingInterval: 300, pingTimeout: 5000 } });
    const url = srv.wsUrl;
    const clients = await Promise.all(Array.from({ length: 1200 }, () => WsClient.connect(url)));
    try {
      await Promise.all(clients.map((c) => pings(c, 2, 15_000)));
      expect(srv.server.hub.sessions.size).toBe(1200);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }, 30_000);
});

describe('heartbeat spread over the interval', () => {
  // With a pingInterval of 3 s the server ticks every second and pings a third of the connections
  // each time: every connection still gets one ping per interval, but they do not all come at once.
  it('pings each connection once per interval, a share of them at each tick', async () => {
    srv = await startServer({ heartbeat: { pingInterval: 3000, pingTimeout: 10_000 } });
    const url = srv.wsUrl;
    const clients = await Promise.all(Array.from({ length: 60 }, () => WsClient.connect(url)));
    try {
      const t0 = Date.now();
      const firstPing = new Map<WsClient, number>();
      for (const c of clients) {
        c.ws.on('ping', () => {
          if (!firstPing.has(c)) firstPing.set(c, Date.now() - t0);
        });
      }
      // Everyone's first ping arrives within one interval (and a tick of slack), then a second one.
      await Promise.all(clients.map((c) => pings(c, 2, 10_000)));
      const times = [...firstPing.values()].sort((a, b) => a - b);
      expect(times).toHaveLength(60);
      // Spread: the first and the last connection to be pinged were pinged at least half a second
      // apart (ticks are a second apart), and no tick pinged more than half of them.
      expect(times[59]! - times[0]!).toBeGreaterThan(500);
      const groups = new Map<number, number>();
      for (const t of times) groups.set(Math.round(t / 250), (groups.get(Math.round(t / 250)) ?? 0) + 1);
      expect(Math.max(...groups.values())).toBeLessThanOrEqual(30);
      expect(srv.server.hub.sessions.size).toBe(60);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }, 30_000);
});
