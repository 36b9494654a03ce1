import { afterEach, describe, expect, it } from 'vitest';
import { until } from '@herald/test-support';
import { api, refusedUpgrade, startServer, WsClient, type TestServer } from '@herald/test-support/server';

let srv: TestServer | undefined;
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

async function connectionCount(base: string): Promise<number> {
  const r = await api(base, 'info', {});
  return r.body.nodes[0].connections as number;
}

describe('limits.maxConnections', () => {
  it('refuses the upgrade past the limit with 503 and a JSON code, without disturbing the others', async () => {
    const s = (srv = await startServer({ limits: { maxConnections: 2 } }));
    const a = await WsClient.connect(srv.wsUrl);
    const b = await WsClient.connect(srv.wsUrl);
    await a.request({ cmd: 'subscribe', channel: 'lim.x' });
    await b.request({ cmd: 'subscribe', channel: 'lim.x' });

    const third = await refusedUpgrade(srv.wsUrl);
    expect(third.status).toBe(503);
    expect(third.headers['content-type']).toMatch(/^application\/json/);
    expect(third.body).toEqual({ error: { code: 'HERALD_ERR_CONNECTION_LIMIT', message: expect.any(String) } });

    // The two admitted clients are unaffected.
    await api(srv.url, 'publish', { channel: 'lim.x', data: 'after refusal' });
    for (const c of [a, b]) {
      await c.waitFor((f) => f['push'] === 'pub' && f['data'] === 'after refusal', 'publication after the refusal');
      expect(c.closeCode).toBeUndefined();
    }
    expect(await connectionCount(srv.url)).toBe(2);

    // Once one leaves (and the server has seen it go), a new client is admitted again.
    await a.close();
    await until(async () => (await connectionCount(s.url)) === 1, 'the server to count 1 connection', 5000, 20);
    const c = await WsClient.connect(srv.wsUrl);
    expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
    await c.close();
    await b.close();
  });
});

describe('allowedOrigins', () => {
  it('refuses a browser upgrade from another origin with 403, accepts the allowed one and non-browsers', async () => {
    srv = await startServer({ allowedOrigins: ['https://good.example'] });

    const evil = await refusedUpgrade(srv.wsUrl, { origin: 'https://evil.example' });
    expect(evil.status).toBe(403);
    expect(evil.body.error.code).toBe('HERALD_ERR_PERMISSION_DENIED');
    expect(evil.body.error.message).toContain('https://evil.example');

    // Look-alikes of the allowed origin are refused too.
    for (const origin of [
      'http://good.example',
      'https://good.example:8443',
      'https://good.example.evil.example',
      'null',
    ]) {
      const r = await refusedUpgrade(srv.wsUrl, { origin });
      expect(r.status, origin).toBe(403);
    }

    const good = await WsClient.connect(srv.wsUrl, { origin: 'https://good.example' });
    expect(good.frames[0]).toMatchObject({ push: 'connected' });
    // Origins compare case-insensitively (browsers send them lower-case anyway).
    const upper = await WsClient.connect(srv.wsUrl, { origin: 'HTTPS://GOOD.EXAMPLE' });
    // No Origin header: a non-browser client (backend, CLI), which Origin checks do not apply to.
    const plain = await WsClient.connect(srv.wsUrl);
    expect(plain.frames[0]).toMatchObject({ push: 'connected' });
    for (const c of [good, upper, plain]) {
      expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
      await c.close();
    }
  });

  it("accepts any origin with the default '*'", async () => {
    srv = await startServer();
    const c = await WsClient.connect(srv.wsUrl, { origin: 'https://anywhere.example' });
    expect(c.frames[0]).toMatchObject({ push: 'connected' });
    await c.close();
  });
});
