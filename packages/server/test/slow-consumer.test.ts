/**
 * A client that stops reading must not grow server memory: once its queued bytes pass
 * limits.maxQueueBytes it is disconnected (SLOW, 3002) while every other client keeps receiving
 * everything, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({ limits: { maxQueueBytes: 256 * 1024 }, namespaces: { big: { maxMessageSize: 65_536 } } });
});
afterAll(async () => {
  await srv.close();
});

describe('slow consumer', () => {
  it('disconnects a client that stops reading; others get every publication', async () => {
    const hub = srv.server.hub;
    const good = await WsClient.connect(srv.wsUrl);
    const slow = await WsClient.connect(srv.wsUrl);
    await good.request({ cmd: 'subscribe', channel: 'big.feed' });
    await slow.request({ cmd: 'subscribe', channel: 'big.feed' });
    const slowId = slow.clientId;
    slow.ws.pause(); // stop reading from the socket: the kernel buffers fill, then the server's queue
    const payload = 'x'.repeat(16 * 1024);
    const total = 400; // 6.4 MB in all: far more than socket buffers plus maxQueueBytes
    let sent = 0;
    while (sent < total && hub.sessions.has(slowId)) {
      const r = await api(srv.url, 'publish', { channel: 'big.feed', data: { n: sent, payload } });
      expect(r.status).toBe(200);
      sent += 1;
    }
    expect(hub.sessions.has(slowId)).toBe(false);
    expect(srv.server.metrics.value('herald_slow_disconnects_total')).toBe(1);
    // The slow client's socket is closed by the server, even though it never reads the close frame.
    slow.ws.resume();
    const closed = await withTimeout(slow.closed, 15_000, 'slow client socket to close');
    expect([3002, 1006]).toContain(closed.code);
    // Sentinel: the good client receives everything up to it, in order, exactly once.
    await api(srv.url, 'publish', { channel: 'big.feed', data: { n: 'end' } });
    const pubs = await good.waitForCount((f) => f['push'] === 'pub', sent + 1, 'all publications', 20_000);
    expect(pubs.map((p) => p['data'].n)).toEqual([...[...Array(sent).keys()], 'end']);
    expect(srv.server.hub.sessions.has(good.clientId)).toBe(true);
    await good.close();
  }, 60_000);

  it('does not call a reading client slow because one reply (a large backlog) is bigger than the queue limit', async () => {
    const payload = 'y'.repeat(30 * 1024);
    for (let i = 0; i < 60; i++) await api(srv.url, 'publish', { channel: 'big.hist', data: { i, payload } }); // ~1.8 MB of history
    const c = await WsClient.connect(srv.wsUrl);
    const r = await c.request({ cmd: 'subscribe', channel: 'big.hist', backlog: 60 }, 20_000);
    expect(r['result'].publications).toHaveLength(60);
    const h = await c.request({ cmd: 'history', channel: 'big.hist', limit: 60 }, 20_000);
    expect(h['result'].publications).toHaveLength(60);
    await api(srv.url, 'publish', { channel: 'big.hist', data: { i: 'live' } });
    await c.waitFor((f) => f['push'] === 'pub' && f['data'].i === 'live', 'live publication after the large replies');
    expect(srv.server.hub.sessions.has(c.clientId)).toBe(true);
    await c.close();
  }, 60_000);
});
