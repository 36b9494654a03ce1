/**
 * The browser's limit of 6 HTTP/1.1 connections per host, without cross-tab sharing: 8 tabs of one
 * origin each open an HTTP stream (and `POST /send`s) to a server without WebSocket. Tabs beyond the
 * limit wait on requests the browser holds back; the SDK notices (the origin's Herald connections,
 * counted through Web Locks, fill the pool) and says so: an `error` event with
 * HERALD_ERR_BROWSER_CONNECTION_LIMIT naming the remedies. Headless Chromium; skipped when it is
 * not installed, except in CI (CI=true), where that fails.
 */
import { createServer, type Server } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleClient } from '../../../scripts/bundle-client.mjs';
import { CHROMIUM, chromiumPresent, launchChromium, untilValue } from '@herald/test-support';
import { startServer, type TestServer } from '@herald/test-support/server';

const ci = process.env['CI'] === 'true';
const TABS = 8;

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><script src="/herald.min.js"></script></head>
<body><script>
  window.errors = [];
  window.start = (url, opts, ch) => {
    const h = new Herald(url, opts);
    h.on('error', (e) => errors.push({ code: e.code, message: e.message }));
    h.subscribe(ch).on('error', (e) => errors.push({ code: e.code, message: e.message }));
  };
</script></body></html>`;

describe.skipIf(!chromiumPresent && !ci)('8 tabs over HTTP/1.1 without sharing, in headless Chromium', () => {
  let browser: Browser;
  let web: Server;
  let srv: TestServer;

  beforeAll(async () => {
    if (!chromiumPresent) throw new Error(`Chromium is not at ${CHROMIUM} (CI=true: the browser test must run)`);
    const { iife } = await bundleClient();
    web = createServer((req, res) => {
      if (req.url === '/herald.min.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(iife.code);
      else res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    srv = await startServer({ transports: { websocket: false } });
    browser = await launchChromium();
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => (web ? web.close(r) : r(undefined)));
    await srv?.close();
  });

  it('tells a starved tab why: HERALD_ERR_BROWSER_CONNECTION_LIMIT, naming HTTP/2 and SharedHerald', async () => {
    const ctx = await browser.newContext();
    try {
      const origin = `http://127.0.0.1:${(web.address() as { port: number }).port}`;
      const pages: Page[] = [];
      for (let i = 0; i < TABS; i++) {
        const page = await ctx.newPage();
        await page.goto(origin);
        pages.push(page);
      }
      const opts = { transports: ['http-stream'], connectTimeout: 2000, timeout: 4000 };
      await Promise.all(
        pages.map((p, i) => p.evaluate((a) => (window as any).start(...a), [srv.url, opts, `s.t${i}`])),
      );
      type Err = { code: string; message: string };
      const found = await untilValue(
        async () => {
          const all = (await Promise.all(pages.map((p) => p.evaluate(() => (window as any).errors as Err[])))).flat();
          return all.find((e) => e.code === 'HERALD_ERR_BROWSER_CONNECTION_LIMIT');
        },
        'a tab to report HERALD_ERR_BROWSER_CONNECTION_LIMIT',
        20_000,
        100,
      );
      console.log(`starved tab: ${found.message}`);
      expect(found.message).toContain(srv.url);
      expect(found.message).toMatch(/HTTP\/2/);
      expect(found.message).toMatch(/SharedHerald/);
    } finally {
      await ctx.close();
    }
  }, 60_000);
});
