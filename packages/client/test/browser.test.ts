/**
 * In a real browser (headless Chromium through playwright-core): a page from another origin loads
 * the `<script>` bundle, and five clients (one per transport, and one that starts on long-polling
 * and upgrades) subscribe to a channel fed by a publisher that never stops. The server drops each
 * client midway; every client still receives every publication once, in order.
 * Skipped when Chromium is not installed, except in CI (CI=true), where that fails.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { bundleClient } from '../../../scripts/bundle-client.mjs';
import { CHROMIUM, chromiumPresent, launchChromium, until } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { gapless, publisher } from './support/helpers.js';

const ci = process.env['CI'] === 'true';
const CLIENTS = ['websocket', 'http-stream', 'sse', 'long-poll', 'upgrade'] as const;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><script src="/herald.min.js"></script></head>
<body><script>
  window.results = {};
  window.clients = {};
  window.start = (url) => {
    for (const name of ${JSON.stringify(CLIENTS)}) {
      const opts = name === 'upgrade' ? { upgrade: true } : { transports: [name] };
      const h = new Herald(url, { ...opts, minReconnectDelay: 50, maxReconnectDelay: 500 });
      const r = (window.results[name] = { offsets: [], states: [], errors: [], transport: '' });
      window.clients[name] = h;
      h.on('state', (s) => r.states.push(s.state));
      h.on('connected', (e) => { r.transport = e.transport; });
      const sub = h.subscribe('br.feed');
      sub.on('publication', (p) => r.offsets.push(p.offset));
      sub.on('error', (e) => r.errors.push(e.code));
    }
  };
</script></body></html>`;

describe.skipIf(!chromiumPresent && !ci)('in headless Chromium', () => {
  let srv: TestServer;
  let web: Server;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    if (!chromiumPresent) throw new Error(`Chromium is not at ${CHROMIUM} (CI=true: the browser test must run)`);
    srv = await startServer({ http: { heartbeatInterval: 1000 }, namespaces: { br: { historySize: 1000 } } });
    const { iife } = await bundleClient();
    web = createServer((req, res) => {
      if (req.url === '/herald.min.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(iife.code);
      else res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    browser = await launchChromium();
    page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${(web.address() as { port: number }).port}/`);
    expect(pageErrors).toEqual([]);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => (web ? web.close(r) : r(undefined)));
    await srv?.close();
  });

  it('receives every publication of a continuous publisher over each transport, across server-side drops', async () => {
    type Result = { offsets: number[]; states: string[]; errors: string[]; transport: string };
    const results = (): Promise<Record<string, Result>> =>
      page.evaluate(() => (window as unknown as { results: Record<string, Result> }).results);
    const pub = publisher(srv.url, 'br.feed', 5);
    await page.evaluate((url) => (window as unknown as { start(u: string): void }).start(url), srv.url);
    await until(() => pub.sent() > 30, 'some publications');
    // Drop every client from the server side (they reconnect and recover from their cursors).
    for (const name of CLIENTS) {
      const dropped = async (): Promise<boolean> => {
        const client = await page.evaluate(
          (n) => (window as unknown as { clients: Record<string, { client?: string }> }).clients[n]?.client,
          name,
        );
        if (client === undefined) return false;
        return (await api(srv.url, 'disconnect', { client, reconnect: true })).body.disconnected > 0;
      };
      await until(dropped, `the server to drop the ${name} client`);
    }
    await until(() => pub.sent() > 80, 'more publications');
    const sent = await pub.stop();
    let r: Record<string, Result> = {};
    const caughtUp = async (): Promise<boolean> => {
      r = await results();
      return CLIENTS.every((n) => r[n]?.offsets.at(-1) === sent);
    };
    // On a timeout, the expectations below say which client is behind and what it saw.
    await until(caughtUp, 'every client to get the last publication', 15_000, 50).catch(() => undefined);
    for (const name of CLIENTS) {
      const res = r[name]!;
      expect(res.errors, name).toEqual([]);
      expect(res.offsets.at(-1), `${name} got the last publication`).toBe(sent);
      expect(gapless(res.offsets, res.offsets[0]), `${name}: no gap, no duplicate`).toBeUndefined();
      expect(res.offsets[0], `${name} started early`).toBeLessThan(30);
      expect(res.states, `${name} reconnected`).toContain('connecting');
      expect(res.transport).toBe(name === 'upgrade' ? 'websocket' : name);
    }
    console.log(
      `browser: ${sent} publications; per client ${CLIENTS.map((n) => `${n} ${r[n]!.offsets.length}`).join(', ')}`,
    );
  }, 40_000);
});
