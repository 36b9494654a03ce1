/**
 * `GET /sse` with headless Chromium's own `EventSource` (Debian `chromium`, driven by
 * `playwright-core`). The page comes from another origin (a tiny page server), so the stream is a
 * CORS request: Herald echoes the allowed Origin. A publisher never stops while the server drops the
 * connection twice; the browser reconnects on its own (after `retry:`, with `Last-Event-ID`) and
 * must end up with every publication exactly once, in order.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram, Inbox, launchChromium, needProgram, until, withTimeout } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';

const executable = findProgram('chromium', ['/usr/bin/chromium']);
const need = needProgram(executable, 'chromium', 'apt-get install -y chromium');

interface Report {
  type: 'connected' | 'subscribed' | 'message' | 'error';
  data?: string;
  id?: string;
}

function page(herald: string, channel: string): string {
  return `<!doctype html><meta charset="utf-8"><title>herald sse</title><script>
const es = new EventSource(${JSON.stringify(`${herald}/sse?channel=${channel}`)});
for (const type of ['connected', 'subscribed', 'message']) {
  es.addEventListener(type, (e) => window.report({ type, data: e.data, id: e.lastEventId }));
}
es.addEventListener('error', () => window.report({ type: 'error' }));
</script>`;
}

describe.skipIf(need.mode === 'skip')(need.title('Chromium EventSource against /sse'), () => {
  let ts: TestServer;
  let pages: Server;
  let pageOrigin: string;
  let browser: Browser | undefined;
  const origins: Array<string | undefined> = [];
  const lastEventIds: Array<string | undefined> = [];

  beforeAll(async () => {
    if (need.mode === 'fail') throw new Error(need.missing);
    ts = await startServer({ http: { sseRetry: 300, heartbeatInterval: 30_000 } });
    ts.server.httpServer?.on('request', (req: IncomingMessage) => {
      if (!req.url?.startsWith('/sse')) return;
      origins.push(req.headers.origin);
      lastEventIds.push(req.headers['last-event-id'] as string | undefined);
    });
    pages = createServer((req: IncomingMessage, res: ServerResponse) => {
      const channel = new URL(req.url ?? '/', 'http://x').searchParams.get('channel') ?? 'none';
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(page(ts.url, channel));
    });
    await new Promise<void>((resolve) => pages.listen(0, '127.0.0.1', resolve));
    // "localhost" and 127.0.0.1 are different origins: the EventSource request is cross-origin.
    pageOrigin = `http://localhost:${(pages.address() as AddressInfo).port}`;
    browser = await withTimeout(launchChromium(executable), 30_000, 'chromium launch');
  }, 40_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (pages ? pages.close(() => resolve()) : resolve()));
    await ts?.close();
  });

  it('receives every publication of a continuous publisher across two server-side drops', async () => {
    const channel = 'chromium.feed';
    const context = await (browser as Browser).newContext();
    const tab = await context.newPage();
    const reports = new Inbox<Report>();
    await tab.exposeFunction('report', (r: Report) => reports.push(r));
    await tab.goto(`${pageOrigin}/?channel=${channel}`);
    await reports.waitFor((r) => r.type === 'subscribed', 'subscribed in the browser', 10_000);

    const messages = (): Report[] => reports.items.filter((r) => r.type === 'message');
    const connects = (): number => reports.items.filter((r) => r.type === 'connected').length;
    const dropAt = [50, 120];
    const total = 200;
    let drops = 0;
    for (let i = 1; i <= total; i++) {
      const r = await api(ts.url, 'publish', { channel, data: i });
      expect(r.status).toBe(200);
      if (drops < dropAt.length && messages().length >= (dropAt[drops] as number)) {
        // Reset the browser's connection from the server side, mid-stream.
        const sse = [...ts.server.hub.sessions.values()].find((s) => s.transport.name === 'sse');
        // An HTTP/1.1 stream holds its socket itself (detached from node:http); through Node it has `res`.
        const t = sse?.transport as { socket?: Socket; res?: ServerResponse } | undefined;
        (t?.socket ?? t?.res?.socket)?.destroy();
        drops++;
      }
      await new Promise((resolve) => setTimeout(resolve, 3)); // a steady publisher, not a burst
    }
    expect(drops).toBe(2);
    const sentinel = total + 1;
    await api(ts.url, 'publish', { channel, data: sentinel });
    await reports.waitFor(
      (r) => r.type === 'message' && (JSON.parse(r.data ?? '{}') as { data: number }).data === sentinel,
      'the sentinel in the browser',
      15_000,
    );
    const got = messages().map((r) => (JSON.parse(r.data ?? '{}') as { data: number; offset: number }).data);
    expect(got).toEqual(Array.from({ length: sentinel }, (_, i) => i + 1));
    expect(connects()).toBe(3);
    // Every connection came from the page's origin; the reconnects carried the last id seen.
    expect(origins).toEqual([pageOrigin, pageOrigin, pageOrigin]);
    expect(lastEventIds[0]).toBeUndefined();
    expect(lastEventIds.slice(1).every((id) => id?.startsWith(`${channel};`))).toBe(true);
    await context.close();
    await until(() => ts.server.hub.sessions.size === 0, 'the server freed the browser session');
  }, 60_000);
});
