/**
 * The SDK's failure modes in a real browser (headless Chromium through playwright-core), the page
 * on another origin than the servers, loading the `<script>` bundle:
 * - StrictMode-style churn (subscribe → unsubscribe → subscribe, many cycles in random rhythms,
 *   while a publisher never stops) on every transport: the last subscription gets every
 *   publication after its `ready()`, once, in order, and no subscription reports an error;
 * - failures that used to be silent: a wrong port, a wrong path, an origin the server does not allow, a refused
 *   token (then `setToken()`): an `error` event with a code, `state` events naming the cause,
 *   `ready()` and commands settle;
 * - a long-poll whose held poll's connection froze (a TCP proxy stops forwarding without closing):
 *   noticed within `pollTimeout + connectTimeout`, every publication recovered;
 * - the page's `offline` and `online` events on a network that died silently (the proxy again), on
 *   WebSocket and SSE: the first publication comes right after `online`, not after the liveness
 *   window (2 × 25 s + 10 s on a WebSocket).
 * Skipped when Chromium is not installed, except in CI (CI=true), where that fails.
 */
import { createServer, type Server } from 'node:http';
import { SignJWT } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundleClient } from '../../../scripts/bundle-client.mjs';
import { CHROMIUM, chromiumPresent, launchChromium, freePort, until, untilValue } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { FreezeProxy } from './support/freeze-proxy.js';
import { gapless, publisher } from './support/helpers.js';

const ci = process.env['CI'] === 'true';
const SECRET = 'browser-defects-hmac-secret-0123456789';

interface Failure {
  code: string;
  message: string;
}
interface Rec {
  states: { state: string; reason: string; code?: number; error?: Failure; at: number }[];
  errors: Failure[];
  /** Offsets delivered to the client's last subscription, with the time each came. */
  offsets: number[];
  times: number[];
  /** The offset the last subscription's first `subscribed` said. */
  from?: number;
  subErrors: string[];
}
/** What the page offers (see PAGE). */
interface PageApi {
  recs: Record<string, Rec>;
  start(name: string, url: string, opts: object, channel: string): Promise<Failure | undefined>;
  churn(name: string, url: string, transport: string, channel: string, cycles: number, seed: number): Promise<void>;
  settle(name: string, what: 'ready' | 'ping', timeout: number): Promise<string>;
  setToken(name: string, token: string): Promise<Failure | undefined>;
  fire(type: 'online' | 'offline'): number;
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><script src="/herald.min.js"></script></head>
<body><script>
  const clients = {};
  window.recs = {};
  const brief = (e) => (e === undefined ? undefined : { code: e.code, message: e.message });
  const within = (p, ms, what) =>
    Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error('page: timed out waiting for ' + what)), ms))]);
  function record(name, h) {
    const r = (window.recs[name] = { states: [], errors: [], offsets: [], times: [], subErrors: [] });
    h.on('state', (s) => r.states.push({ state: s.state, reason: s.reason, code: s.code, error: brief(s.error), at: Date.now() }));
    h.on('error', (e) => r.errors.push(brief(e)));
    clients[name] = h;
    return r;
  }
  function track(name, sub) {
    const r = window.recs[name];
    sub.on('error', (e) => r.subErrors.push(e.code));
    sub.once('subscribed', (e) => { r.from = e.offset; });
    sub.on('publication', (p) => { r.offsets.push(p.offset); r.times.push(Date.now()); });
  }
  // Subscribes one client to a channel; resolves when subscribed, or with why not.
  window.start = async (name, url, opts, channel) => {
    const h = new Herald(url, opts);
    record(name, h);
    const sub = h.subscribe(channel);
    track(name, sub);
    return sub.ready().then(() => undefined, brief);
  };
  window.settle = (name, what, timeout) => {
    const h = clients[name];
    const p = what === 'ready' ? [...h.subscriptions.values()][0].ready({ timeout }) : h.ping({ timeout });
    return p.then(() => 'resolved', (e) => e.code);
  };
  window.setToken = (name, token) => {
    const h = clients[name];
    h.setToken(token);
    return [...h.subscriptions.values()][0].ready().then(() => undefined, brief);
  };
  window.fire = (type) => { window.dispatchEvent(new Event(type)); return Date.now(); };
  function random(seed) {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const turns = async (n) => { for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0)); };
  // StrictMode-style churn; the last subscription is tracked, and its ready() awaited.
  window.churn = async (name, url, transport, channel, cycles, seed) => {
    const h = new Herald(url, { transports: [transport], timeout: 5000 });
    const r = record(name, h);
    const rnd = random(seed);
    const make = () => { const s = h.subscribe(channel); s.on('error', (e) => r.subErrors.push(e.code)); return s; };
    let sub = make();
    for (let i = 0; i < cycles; i++) {
      const rhythm = Math.floor(rnd() * 5);
      if (rhythm === 1) await Promise.resolve();
      else if (rhythm === 2) await turns(1 + Math.floor(rnd() * 4));
      else if (rhythm === 3) await within(sub.ready(), 5000, 'subscription ' + i);
      sub.unsubscribe();
      if (rhythm === 4) await turns(1 + Math.floor(rnd() * 3));
      sub = make();
    }
    sub.once('subscribed', (e) => { r.from = e.offset; });
    sub.on('publication', (p) => { r.offsets.push(p.offset); r.times.push(Date.now()); });
    await within(sub.ready(), 5000, 'the last subscription');
  };
</script></body></html>`;

describe.skipIf(!chromiumPresent && !ci)('in headless Chromium, the page on another origin', () => {
  let srv: TestServer;
  let strict: TestServer;
  let authSrv: TestServer;
  let web: Server;
  let browser: Browser;
  let page: Page;
  const proxies: FreezeProxy[] = [];
  const pageErrors: string[] = [];

  const rec = (name: string): Promise<Rec> => page.evaluate((n) => (window as unknown as PageApi).recs[n] as Rec, name);
  const fire = (type: 'online' | 'offline'): Promise<number> =>
    page.evaluate((t) => (window as unknown as PageApi).fire(t), type);
  const start = (name: string, url: string, opts: object, channel: string): Promise<Failure | undefined> =>
    page.evaluate((a) => (window as unknown as PageApi).start(...a), [name, url, opts, channel] as const);

  beforeAll(async () => {
    if (!chromiumPresent) throw new Error(`Chromium is not at ${CHROMIUM} (CI=true: the browser test must run)`);
    srv = await startServer({
      http: { heartbeatInterval: 1000, pollTimeout: 1000 },
      namespaces: { churn: { historySize: 5000 }, live: { historySize: 5000 } },
    });
    strict = await startServer({ allowedOrigins: ['http://allowed.test'] });
    authSrv = await startServer({ auth: { hmacSecret: SECRET, anonymousConnect: false } });
    const { iife } = await bundleClient();
    web = createServer((req, res) => {
      if (req.url === '/herald.min.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(iife.code);
      else res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    browser = await launchChromium();
  }, 40_000);

  // A fresh page per test: its clients, connections and listeners go with it.
  afterEach(async () => {
    await page?.close();
    for (const p of proxies.splice(0)) await p.close();
    expect(pageErrors.splice(0)).toEqual([]);
  });
  const open = async (): Promise<void> => {
    page = await browser.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${(web.address() as { port: number }).port}/`);
  };

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => (web ? web.close(r) : r(undefined)));
    await srv?.close();
    await strict?.close();
    await authSrv?.close();
  });

  describe.each(['websocket', 'http-stream', 'sse', 'long-poll'])('StrictMode churn over %s', (transport) => {
    it('leaves one working subscription that gets every publication after ready(), once, in order', async () => {
      await open();
      const channel = `churn.${transport}`;
      const pub = publisher(srv.url, channel, 3);
      try {
        await until(() => pub.sent() >= 5, 'the publisher to start');
        await page.evaluate(
          (a) => (window as unknown as PageApi).churn('c', a[0], a[1], a[2], 80, a[1].length * 7919),
          [srv.url, transport, channel] as const,
        );
        const from = (await rec('c')).from ?? 0;
        await until(() => pub.sent() >= from + 30, 'publications after ready()', 10_000);
        const sent = await pub.stop();
        const r = await untilValue(
          async () => {
            const now = await rec('c');
            return now.offsets.at(-1) === sent ? now : undefined;
          },
          `the page to get offset ${sent}`,
          10_000,
          50,
        ).catch(() => rec('c'));
        expect(r.offsets.at(-1), 'the last publication arrived').toBe(sent);
        expect(gapless(r.offsets, from + 1)).toBeUndefined();
        expect(r.subErrors).toEqual([]);
        expect(r.errors).toEqual([]);
        expect(r.states.map((s) => s.state)).toEqual(['connected']);
        console.log(`churn over ${transport}: 80 cycles, then ${r.offsets.length} publications after ready()`);
      } finally {
        await pub.stop().catch(() => undefined);
      }
    }, 40_000);
  });

  describe('failures are not silent', () => {
    const opts = { connectTimeout: 1000, minReconnectDelay: 50, maxReconnectDelay: 200, timeout: 800 };

    it('wrong port: an error event (HERALD_ERR_CLIENT_DISCONNECTED) and a state reason; ready() and ping() time out', async () => {
      await open();
      const url = `http://127.0.0.1:${await freePort()}`;
      const ready = await start('p', url, opts, 'x.y');
      expect(ready?.code).toBe('HERALD_ERR_TIMEOUT');
      const r = await untilValue(async () => {
        const now = await rec('p');
        return now.errors.length > 0 ? now : undefined;
      }, 'an error event');
      expect(r.errors[0]).toEqual({ code: 'HERALD_ERR_CLIENT_DISCONNECTED', message: `no answer from ${url}` });
      expect(r.states.find((s) => s.error !== undefined)).toMatchObject({
        state: 'connecting',
        reason: `no answer from ${url}`,
        error: r.errors[0],
      });
      const settle = (what: 'ping' | 'ready'): Promise<string> =>
        page.evaluate((w) => (window as unknown as PageApi).settle('p', w, 300), what);
      expect(await settle('ping')).toBe('HERALD_ERR_TIMEOUT');
      expect(await settle('ready')).toBe('HERALD_ERR_TIMEOUT');
    });

    it('an origin not in allowedOrigins: HERALD_ERR_PERMISSION_DENIED naming the page origin', async () => {
      await open();
      const ready = await start('o', strict.url, opts, 'x.y');
      expect(ready?.code).toBe('HERALD_ERR_TIMEOUT');
      const r = await untilValue(async () => {
        const now = await rec('o');
        return now.errors.length > 0 ? now : undefined;
      }, 'an error event');
      const origin = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
      expect(r.errors[0]?.code).toBe('HERALD_ERR_PERMISSION_DENIED');
      expect(r.errors[0]?.message).toContain(`origin ${origin} is not allowed`);
      expect(r.states.find((s) => s.error !== undefined)?.reason).toBe(r.errors[0]?.message);
    });

    it('a wrong path: HERALD_ERR_API_NOT_FOUND naming the path, told apart from a wrong origin', async () => {
      await open();
      const ready = await start('w', `${srv.url}/wrong`, opts, 'x.y');
      expect(ready?.code).toBe('HERALD_ERR_TIMEOUT');
      const r = await untilValue(async () => {
        const now = await rec('w');
        return now.errors.length > 0 ? now : undefined;
      }, 'an error event');
      expect(r.errors[0]?.code).toBe('HERALD_ERR_API_NOT_FOUND');
      expect(r.errors[0]?.message).toContain('no route for /wrong/');
    });

    it('a refused token: disconnected with the auth error, ready() rejects with it; setToken() connects', async () => {
      await open();
      const ready = await start('t', authSrv.url, { ...opts, token: 'not-a-jwt', timeout: 10_000 }, 'auth.feed');
      expect(ready?.code).toMatch(/^HERALD_ERR_AUTH_TOKEN_/);
      const r = await rec('t');
      expect(r.errors).toEqual([ready]);
      expect(r.states.at(-1)).toMatchObject({ state: 'disconnected', code: 3510, error: ready });
      const key = new TextEncoder().encode(SECRET);
      const token = await new SignJWT({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 600 })
        .setProtectedHeader({ alg: 'HS256' })
        .sign(key);
      expect(await page.evaluate((t) => (window as unknown as PageApi).setToken('t', t), token)).toBeUndefined();
      await api(authSrv.url, 'publish', { channel: 'auth.feed', data: 'hello' });
      await until(async () => (await rec('t')).offsets.length === 1, 'the publication after setToken()');
    });
  });

  it('long-poll: notices a frozen poll within pollTimeout + connectTimeout and recovers every publication', async () => {
    await open();
    const proxy = await FreezeProxy.start(srv.url);
    proxies.push(proxy);
    const opts = {
      transports: ['long-poll'],
      pollTimeout: 1000,
      connectTimeout: 1000,
      timeout: 10_000,
      minReconnectDelay: 50,
    };
    expect(await start('lp', proxy.url, opts, 'live.poll')).toBeUndefined();
    const pub = publisher(srv.url, 'live.poll', 20);
    try {
      await until(async () => (await rec('lp')).offsets.length >= 5, 'some publications');
      await until(() => proxy.freeze((line) => line.startsWith('GET /poll')) > 0, 'a poll to freeze');
      const frozenAt = Date.now();
      const lost = await untilValue(
        async () => (await rec('lp')).states.find((s) => s.state === 'connecting'),
        'the client to notice',
        10_000,
      );
      const noticed = lost.at - frozenAt;
      expect(lost.reason).toMatch(/no answer to the poll within 2000 ms/);
      expect(noticed).toBeLessThan(3000);
      await until(async () => (await rec('lp')).states.at(-1)?.state === 'connected', 'a reconnect', 5000);
      const sent = await pub.stop();
      const r = await untilValue(
        async () => {
          const now = await rec('lp');
          return now.offsets.at(-1) === sent ? now : undefined;
        },
        'every publication',
        10_000,
        50,
      );
      expect(gapless(r.offsets)).toBeUndefined();
      console.log(
        `chromium long-poll: a frozen poll noticed after ${noticed} ms (pollTimeout 1000 + connectTimeout 1000)`,
      );
    } finally {
      await pub.stop().catch(() => undefined);
    }
  });

  it.each(['websocket', 'sse'])(
    'over %s: offline drops the silently dead connection, online reconnects at once, nothing is lost',
    async (transport) => {
      await open();
      const proxy = await FreezeProxy.start(srv.url);
      proxies.push(proxy);
      const channel = `live.net.${transport}`;
      // A backoff long enough to show that `online` does not wait for it.
      const opts = { transports: [transport], minReconnectDelay: 5000, maxReconnectDelay: 5000 };
      expect(await start('n', proxy.url, opts, channel)).toBeUndefined();
      await api(srv.url, 'publish', { channel, data: 1 });
      await until(async () => (await rec('n')).offsets.length === 1, 'the first publication');
      proxy.cut(); // the network dies: nothing passes, nothing is closed
      await fire('offline');
      const down = await untilValue(
        async () => (await rec('n')).states.find((s) => s.state === 'connecting'),
        'state connecting after offline',
      );
      expect(down).toMatchObject({ reason: 'offline', code: 1006 });
      for (let i = 2; i <= 4; i++) await api(srv.url, 'publish', { channel, data: i });
      proxy.thaw();
      const online = await fire('online');
      const r = await untilValue(
        async () => {
          const now = await rec('n');
          return now.offsets.length === 4 ? now : undefined;
        },
        'the publications made while offline',
        10_000,
      );
      expect(r.offsets).toEqual([1, 2, 3, 4]);
      const first = (r.times[1] ?? 0) - online;
      expect(first).toBeLessThan(3000);
      console.log(`chromium ${transport}: first publication ${first} ms after online`);
    },
  );
});
