/**
 * `format: 'msgpack'` in a real browser (headless Chromium through playwright-core): a page loads
 * `herald.min.js` from a folder of its own; the bundle loads `herald-msgpack.min.mjs` from next to
 * itself only when a client asks for MessagePack. Publications (values and bytes) arrive on a
 * MessagePack client and on a JSON one, bytes as `Uint8Array` on both.
 * Skipped when Chromium is not installed, except in CI (CI=true), where that fails.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { bundleClient } from '../../../scripts/bundle-client.mjs';
import { CHROMIUM, chromiumPresent, launchChromium, until } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';

const ci = process.env['CI'] === 'true';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><script src="/lib/herald.min.js"></script></head>
<body><script>
  window.got = { json: [], msgpack: [] };
  window.start = (url, format) => {
    const h = new Herald(url, { transports: ['websocket'], format });
    h.subscribe('br.mp').on('publication', (p) => {
      const d = p.data;
      window.got[format].push(d instanceof Uint8Array ? { bytes: Array.from(d) } : { value: d });
    });
  };
</script></body></html>`;

describe.skipIf(!chromiumPresent && !ci)('format: msgpack in headless Chromium', () => {
  let srv: TestServer;
  let web: Server;
  let browser: Browser;
  let page: Page;
  let codecRequests = 0;

  beforeAll(async () => {
    if (!chromiumPresent) throw new Error(`Chromium is not at ${CHROMIUM} (CI=true: the browser test must run)`);
    srv = await startServer({ namespaces: { br: { historySize: 100 } } });
    const { iife, msgpack } = await bundleClient();
    web = createServer((req, res) => {
      const js = { 'Content-Type': 'text/javascript' };
      if (req.url === '/lib/herald.min.js') res.writeHead(200, js).end(iife.code);
      else if (req.url === '/lib/herald-msgpack.min.mjs') {
        codecRequests += 1;
        res.writeHead(200, js).end(msgpack.code);
      } else res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    browser = await launchChromium();
    page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`http://127.0.0.1:${(web.address() as { port: number }).port}/app/`);
    expect(pageErrors).toEqual([]);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => (web ? web.close(r) : r(undefined)));
    await srv?.close();
  });

  it('loads the codec next to the bundle only for MessagePack; bytes arrive as Uint8Array on both', async () => {
    type Got = Record<'json' | 'msgpack', { bytes?: number[]; value?: unknown }[]>;
    const got = (): Promise<Got> => page.evaluate(() => (window as unknown as { got: Got }).got);
    const start = (format: string): Promise<void> =>
      page.evaluate(
        ([url, f]) => (window as unknown as { start(u: string, f: string): void }).start(url!, f!),
        [srv.url, format],
      );
    const subscribers = async (n: number): Promise<boolean> =>
      ((await api(srv.url, 'channels', {})).body.channels as { stream: string; subscribers: number }[]).some(
        (c) => c.stream === 'br.mp' && c.subscribers === n,
      );
    await start('json');
    await until(() => subscribers(1), 'the JSON client to subscribe');
    expect(codecRequests).toBe(0);
    await start('msgpack');
    await until(() => subscribers(2), 'the MessagePack client to subscribe');
    expect(codecRequests).toBe(1);
    await api(srv.url, 'publish', { channel: 'br.mp', data: { text: 'héllo' } });
    await api(srv.url, 'publish', { channel: 'br.mp', b64data: Buffer.from([0, 255, 7]).toString('base64') });
    await until(async () => (await got()).msgpack.length === 2 && (await got()).json.length === 2, 'both publications');
    const want = [{ value: { text: 'héllo' } }, { bytes: [0, 255, 7] }];
    expect(await got()).toEqual({ json: want, msgpack: want });
    const sessions = [...srv.server.hub.sessions.values()].map(
      (s) => (s.transport as unknown as { binary: boolean }).binary,
    );
    expect(sessions.sort()).toEqual([false, true]);
  });
});
