import { afterEach, describe, expect, it } from 'vitest';
import { api, startServer, withTimeout, WsClient, type TestServer } from './support/harness.js';

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
  it('closes a connection that does not answer pings with 3003 STALE, and keeps a live one', async () => {
    srv = await startServer({ heartbeat: { pingInterval: 100, pingTimeout: 100 } });
    const live = await WsClient.connect(srv.wsUrl);
    expect(live.frames[0]).toMatchObject({ push: 'connected', pingInterval: 100 });
    await live.request({ cmd: 'subscribe', channel: 'hb.x' });
    const stale = await WsClient.connect(srv.wsUrl, { autoPong: false });
    let stalePings = 0;
    stale.ws.on('ping', () => (stalePings += 1));

    const closed = await withTimeout(stale.closed, 5000, 'the stale connection to be closed');
    expect(closed.code).toBe(3003);
    expect(stalePings).toBeGreaterThanOrEqual(1);
    const push = await stale.waitFor((f) => f['push'] === 'disconnect', 'disconnect push');
    expect(push).toMatchObject({ code: 3003, reconnect: true });

    // The live client answered the same pings; let a few more rounds go by, then prove it is still
    // connected with a sentinel publication.
    await pings(live, 3);
    await api(srv.url, 'publish', { channel: 'hb.x', data: 'sentinel' });
    await live.waitFor((f) => f['push'] === 'pub' && f['data'] === 'sentinel', 'sentinel on the live client').catch((e) => { console.log('DEBUG', live.closeCode, JSON.stringify(live.frames)); throw e; });
    expect(live.closeCode).toBeUndefined();
    expect(live.frames.filter((f) => f['push'] === 'disconnect')).toEqual([]);
    await live.close();
  });

  it('reaps a stale connection when pingTimeout is longer than pingInterval', async () => {
    // Regression: each ping round used to cancel the previous round's reap, so with
    // pingTimeout > pingInterval a silent connection was never closed.
    srv = await startServer({ heartbeat: { pingInterval: 50, pingTimeout: 150 } });
    const live = await WsClient.connect(srv.wsUrl);
    await live.request({ cmd: 'subscribe', channel: 'hb.y' });
    const stale = await WsClient.connect(srv.wsUrl, { autoPong: false });
    const closed = await withTimeout(stale.closed, 5000, 'the stale connection to be closed');
    expect(closed.code).toBe(3003);
    await pings(live, 4);
    await api(srv.url, 'publish', { channel: 'hb.y', data: 'sentinel' });
    await live.waitFor((f) => f['push'] === 'pub' && f['data'] === 'sentinel', 'sentinel on the live client');
    expect(live.closeCode).toBeUndefined();
    await live.close();
  });

});
