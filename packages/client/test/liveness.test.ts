/**
 * Dead connections that stay open (in Node; browser-defects.test.ts does the same in Chromium),
 * made with a TCP proxy that stops forwarding without closing anything:
 * - a long-poll whose held poll's connection froze: the poll gets `pollTimeout + connectTimeout`,
 *   replies to `POST /send` (liveness pings on other connections) are no sign of life, so the client
 *   notices within that window, reconnects and recovers every publication from its cursor;
 * - the browser's `offline` and `online` events (a stand-in `addEventListener` and `navigator` here):
 *   `offline` drops the connection (state `connecting`, reason `offline`), `online` reconnects at
 *   once, skipping the backoff; the first publication comes within a second, not after the liveness
 *   window. `close()` removes both listeners.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Herald, type HeraldOptions, type Publication } from '@herald/client';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { FakeServer } from './support/fake-server.js';
import { FreezeProxy } from './support/freeze-proxy.js';
import { collect, count, gapless, next, publisher } from './support/helpers.js';

let srv: TestServer;
const clients: Herald[] = [];
const proxies: FreezeProxy[] = [];
beforeAll(async () => {
  srv = await startServer({
    http: { heartbeatInterval: 1000, pollTimeout: 1000 },
    namespaces: { live: { historySize: 5000 } },
  });
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const p of proxies.splice(0)) await p.close();
});
afterAll(() => srv?.close());

async function proxied(opts: HeraldOptions): Promise<{ h: Herald; proxy: FreezeProxy }> {
  const proxy = await FreezeProxy.start(srv.url);
  proxies.push(proxy);
  const h = new Herald(proxy.url, { minReconnectDelay: 50, maxReconnectDelay: 500, ...opts });
  clients.push(h);
  return { h, proxy };
}

describe('long-poll', () => {
  it('notices a frozen poll within pollTimeout + connectTimeout, reconnects and recovers every publication', async () => {
    const POLL = 1000;
    const CONNECT = 1000;
    // Liveness by data alone would take 2 × pollTimeout + timeout = 12 s here.
    const { h, proxy } = await proxied({
      transports: ['long-poll'],
      pollTimeout: POLL,
      connectTimeout: CONNECT,
      timeout: 10_000,
    });
    const sub = h.subscribe<{ n: number }>('live.poll');
    const got: Publication<{ n: number }>[] = collect(sub);
    await sub.ready();
    const pub = publisher(srv.url, 'live.poll', 20);
    try {
      await count(sub, got, 5);
      const lost = next(h, 'state', (s) => s.state === 'connecting', 10_000);
      // Freeze the connection that carries the held poll (retried until a poll is in flight).
      await until(() => proxy.freeze((line) => line.startsWith('GET /poll')) > 0, 'a poll to freeze');
      const frozenAt = Date.now();
      const state = await lost;
      const noticed = Date.now() - frozenAt;
      expect(state.reason).toMatch(/no answer to the poll within 2000 ms/);
      expect(noticed).toBeLessThan(POLL + CONNECT + 1000);
      await next(h, 'state', (s) => s.state === 'connected', 5000);
      const at = got.length;
      await count(sub, got, at + 10);
      const sent = await pub.stop();
      await count(sub, got, sent);
      expect(gapless(got.map((p) => p.offset))).toBeUndefined();
      console.log(
        `long-poll: a frozen poll noticed after ${noticed} ms (pollTimeout ${POLL} + connectTimeout ${CONNECT})`,
      );
    } finally {
      await pub.stop().catch(() => undefined);
    }
  });

  it('stays connected on a quiet channel (held polls answer empty; no reconnect)', async () => {
    const { h, proxy } = await proxied({ transports: ['long-poll'], pollTimeout: 1000, connectTimeout: 1000 });
    const states: string[] = [];
    h.on('state', (s) => states.push(s.state));
    const sub = h.subscribe<number>('live.quiet');
    const got = collect(sub);
    await sub.ready();
    // Three held polls end empty (the server's hold time passes); then a publication arrives.
    const client = h.client;
    const polls = (): number => proxy.requests.filter((r) => r.startsWith('GET /poll?cursor')).length;
    const before = polls();
    await until(() => polls() >= before + 3, 'three more polls', 6000);
    await api(srv.url, 'publish', { channel: 'live.quiet', data: 1 });
    await count(sub, got, 1);
    expect(states).toEqual(['connected']);
    expect(h.client).toBe(client);
  });
});

/** A stand-in for the browser's window events and `navigator.onLine`, counting listeners. */
function fakeWindow(): { fire(type: 'online' | 'offline'): void; listeners(): number } {
  const target = new EventTarget();
  let n = 0;
  vi.stubGlobal('navigator', { onLine: true });
  vi.stubGlobal('addEventListener', (type: string, fn: EventListener) => {
    n += 1;
    target.addEventListener(type, fn);
  });
  vi.stubGlobal('removeEventListener', (type: string, fn: EventListener) => {
    n -= 1;
    target.removeEventListener(type, fn);
  });
  return { fire: (type) => target.dispatchEvent(new Event(type)), listeners: () => n };
}

describe('offline and online events', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('removes its two listeners on close()', () => {
    const win = fakeWindow();
    const h = new Herald('http://fake.test', { transports: ['websocket'], WebSocket: new FakeServer().WebSocket });
    expect(win.listeners()).toBe(2);
    h.close();
    expect(win.listeners()).toBe(0);
  });

  it('registers nothing where there is no navigator.onLine (Node)', () => {
    const added = vi.fn();
    vi.stubGlobal('addEventListener', added);
    const h = new Herald('http://fake.test', { transports: ['websocket'], WebSocket: new FakeServer().WebSocket });
    h.close();
    expect(added).not.toHaveBeenCalled();
  });

  it.each(['websocket', 'sse'] as const)(
    'over %s: offline drops the dead connection, online reconnects at once; nothing is lost',
    async (transport) => {
      const win = fakeWindow();
      // A long backoff: without `online`, the next attempt would be seconds away.
      const { h, proxy } = await proxied({
        transports: [transport],
        minReconnectDelay: 5000,
        maxReconnectDelay: 5000,
        connectTimeout: 10_000,
      });
      const sub = h.subscribe<number>('live.net.' + transport);
      const got = collect(sub);
      await sub.ready();
      await api(srv.url, 'publish', { channel: sub.channel, data: 1 });
      await count(sub, got, 1);
      proxy.cut(); // the network goes: nothing passes, nothing closes
      const down = next(h, 'state', (s) => s.state === 'connecting', 2000);
      win.fire('offline');
      expect(await down).toMatchObject({ reason: 'offline', code: 1006 });
      for (let i = 2; i <= 4; i++) await api(srv.url, 'publish', { channel: sub.channel, data: i });
      proxy.thaw();
      const online = Date.now();
      win.fire('online');
      await withTimeout(
        next(sub, 'publication', () => true, 5000),
        5000,
        'the first publication after online',
      );
      const first = Date.now() - online;
      await count(sub, got, 4, 5000);
      expect(got.map((p) => p.data)).toEqual([1, 2, 3, 4]);
      expect(first).toBeLessThan(1000);
      console.log(`${transport}: first publication ${first} ms after online`);
    },
  );
});
