/**
 * Transport fallback: the default order tries WebSocket first and moves on, within a bounded time,
 * when the upgrade is refused (server option, proxy 403), dropped, never answered, or when frames
 * are swallowed after the handshake (no `connected` push within `connectTimeout`).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Herald, type HeraldOptions, type TransportName } from '@herald/client';
import { Proxy, type UpgradeMode } from './support/proxy.js';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { collect, count, next } from './support/helpers.js';

const CONNECT_TIMEOUT = 400;
let srv: TestServer;
const clients: Herald[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function client(url: string, opts: HeraldOptions = {}): Herald {
  const h = new Herald(url, { connectTimeout: CONNECT_TIMEOUT, ...opts });
  clients.push(h);
  return h;
}

/** Connects, subscribes, receives one publication; returns how long connecting took and the transport. */
async function connectAndReceive(
  h: Herald,
  base: string,
  channel: string,
): Promise<{ ms: number; transport: TransportName | undefined }> {
  const start = Date.now();
  const sub = h.subscribe(channel);
  const got = collect(sub);
  await sub.ready();
  const ms = Date.now() - start;
  await api(base, 'publish', { channel, data: 'hello' });
  await count(sub, got, 1);
  expect(got[0]?.data).toBe('hello');
  return { ms, transport: h.transport };
}

describe('fallback', () => {
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(() => srv.close());

  it.each([
    ['answers the upgrade with 403', 'refuse', 1000],
    ['closes the connection on the upgrade', 'drop', 1000],
    ['never answers the upgrade', 'hang', CONNECT_TIMEOUT + 1000],
    ['swallows every frame after the handshake', 'swallow', CONNECT_TIMEOUT + 1000],
  ] as [string, UpgradeMode, number][])('falls back to HTTP streaming when a proxy %s', async (_what, mode, bound) => {
    const proxy = await Proxy.start(srv.url, mode);
    try {
      const h = client(proxy.url);
      const { ms, transport } = await connectAndReceive(h, srv.url, `fb.${mode}`);
      expect(transport).toBe('http-stream');
      expect(proxy.upgrades).toBe(1);
      expect(ms).toBeLessThan(bound);
      if (mode === 'hang' || mode === 'swallow') expect(ms).toBeGreaterThanOrEqual(CONNECT_TIMEOUT - 20);
    } finally {
      await proxy.close();
    }
  });

  it('uses WebSocket through a proxy that passes it', async () => {
    const proxy = await Proxy.start(srv.url, 'pass');
    try {
      expect((await connectAndReceive(client(proxy.url), srv.url, 'fb.pass')).transport).toBe('websocket');
    } finally {
      await proxy.close();
    }
  });

  it('keeps to the transports it is given (restricting to long-poll never opens a WebSocket)', async () => {
    const proxy = await Proxy.start(srv.url, 'pass');
    try {
      const h = client(proxy.url, { transports: ['long-poll'] });
      expect((await connectAndReceive(h, srv.url, 'fb.only')).transport).toBe('long-poll');
      expect(proxy.upgrades).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('reconnects with backoff after the network cuts every connection, and recovers', async () => {
    const proxy = await Proxy.start(srv.url, 'pass');
    try {
      const h = client(proxy.url, { minReconnectDelay: 50 });
      const sub = h.subscribe<number>('fb.cut');
      const got = collect(sub);
      await sub.ready();
      await api(srv.url, 'publish', { channel: 'fb.cut', data: 1 });
      await count(sub, got, 1);
      const lost = next(h, 'state', (s) => s.state === 'connecting');
      proxy.cutAll();
      expect((await lost).code).toBe(1006);
      await api(srv.url, 'publish', { channel: 'fb.cut', data: 2 });
      await next(h, 'state', (s) => s.state === 'connected');
      await count(sub, got, 2);
      expect(got.map((p) => p.data)).toEqual([1, 2]);
    } finally {
      await proxy.close();
    }
  });
});

describe.each([
  [{ websocket: false }, 'http-stream'],
  [{ websocket: false, stream: false }, 'sse'],
  [{ websocket: false, stream: false, sse: false }, 'long-poll'],
] as [Record<string, boolean>, TransportName][])('a server with transports %j', (transports, expected) => {
  let limited: TestServer;
  beforeAll(async () => {
    limited = await startServer({ transports });
  });
  afterAll(() => limited.close());

  it(`connects over ${expected} at once`, async () => {
    const { ms, transport } = await connectAndReceive(client(limited.url), limited.url, 'fb.server');
    expect(transport).toBe(expected);
    expect(ms).toBeLessThan(1000);
  });
});
