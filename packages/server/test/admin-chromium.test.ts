/**
 * The admin page in headless Chromium (Debian `chromium`, driven by `playwright-core`): log in (a
 * wrong password first), see the charts drawn from the samples, the top channels, inspect a channel
 * whose history holds HTML (shown as text, never run), find a connection and disconnect it, publish
 * from the console to a WebSocket subscriber, log out. The page must run under its own
 * Content-Security-Policy without a violation or a script error.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProgram, launchChromium, needProgram, until, withTimeout } from '@herald/test-support';
import { startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { ADMIN_PASSWORD, adminConfig } from './support/admin.js';
import { SECRET, sign } from './support/tokens.js';

const executable = findProgram('chromium', ['/usr/bin/chromium']);
const need = needProgram(executable, 'chromium', 'apt-get install -y chromium');
const token = (sub: string): Promise<string> => sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);

const XSS = '<img src=x onerror="window.__xss = 1">';

describe.skipIf(need.mode === 'skip')(need.title('the admin page in Chromium'), () => {
  let srv: TestServer;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  const clients: WsClient[] = [];
  let ticker: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    if (need.mode === 'fail') throw new Error(need.missing);
    srv = await startServer({
      admin: adminConfig({ sampleInterval: 300 }),
      auth: { hmacSecret: SECRET },
      namespaces: { chat: { presence: true, historySize: 50 }, feed: { historySize: 50 } },
    });
    for (const [name, channels] of [
      ['alice', ['chat.lobby', 'feed.ticker']],
      ['bob', ['chat.lobby']],
      ['carol', ['feed.ticker']],
    ] as const) {
      const c = await WsClient.connect(`${srv.wsUrl}?token=${await token(name)}`);
      for (const channel of channels) await c.request({ cmd: 'subscribe', channel });
      clients.push(c);
    }
    await srv.server.hub.publish('chat.lobby', { user: 'mallory', text: XSS });
    let n = 0;
    ticker = setInterval(() => void srv.server.hub.publish('feed.ticker', { n: n++ }), 50);
    browser = await withTimeout(launchChromium(executable), 30_000, 'chromium launch');
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${String(e)}`));
    page.on('console', (m) => {
      // Expected resource errors: the wrong password and the check after logging out (401), the bad channel (400).
      if (m.type() === 'error' && !/status of 40[01] /.test(m.text())) problems.push(`console: ${m.text()}`);
    });
  }, 40_000);

  afterAll(async () => {
    clearInterval(ticker);
    await browser?.close();
    await Promise.all(clients.map((c) => c.close()));
    await srv?.close();
  });

  it('logs in, after a wrong password', async () => {
    await page.goto(`${srv.url}/admin/`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    await page.fill('#password', 'not-the-password');
    await page.click('button[type=submit]');
    await page.waitForSelector('.login-error');
    expect(await page.textContent('.login-error')).toBe('Wrong password.');
    await page.fill('#password', ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL(`${srv.url}/admin/`);
    const cookies = await context.cookies();
    const cookie = cookies.find((c) => c.name === 'herald_admin');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin' });
    // The page's script cannot read it.
    expect(await page.evaluate('document.cookie')).toBe('');
  }, 30_000);

  it('draws the charts from the samples and fills the figures and the nodes table', async () => {
    await page.waitForSelector('#chart-connections canvas');
    expect(await page.locator('.chart-box canvas').count()).toBe(4);
    await page.waitForFunction("document.getElementById('kpi-connections')?.textContent === '3'");
    expect(await page.textContent('#node-count')).toBe('1 node');
    expect(await page.getAttribute('#health', 'data-state')).toBe('ok');
    expect(await page.locator('#nodes-table tbody tr').count()).toBe(1);
    // The legend shows the latest value of each series: 3 WebSocket connections.
    await until(
      async () =>
        (await page.locator('#chart-connections .u-legend .u-series').nth(1).textContent())?.includes('3') === true,
      'the websocket series in the legend',
      10_000,
    );
    // A line was drawn: pixels of the websocket series' color on the connections chart.
    await until(
      async () => (await drawnPixels(page, '#chart-connections canvas', [47, 111, 237])) > 50,
      'the websocket line on the canvas',
      10_000,
    );
    expect(await drawnPixels(page, '#chart-rates canvas', [12, 166, 120])).toBeGreaterThan(0);
  }, 30_000);

  it('lists the top channels; a click inspects one, whose HTML payload stays text', async () => {
    await until(
      async () => (await page.locator('#top-subscribers tbody button.link').allTextContents()).includes('chat.lobby'),
      'chat.lobby among the top channels by subscribers',
      10_000,
    );
    await until(
      async () => (await page.locator('#top-rate tbody button.link').first().textContent()) === 'feed.ticker',
      'feed.ticker first by rate',
      10_000,
    );
    await page.locator('#top-subscribers tbody button.link', { hasText: 'chat.lobby' }).click();
    await page.waitForSelector('#channel-view .title');
    expect(await page.textContent('#channel-view .title')).toBe('chat.lobby');
    const payloads = await page.locator('#channel-view .payload').allTextContents();
    expect(payloads.some((p) => p.includes(XSS.replace(/"/g, '\\"')))).toBe(true);
    expect(await page.locator('#channel-view img').count()).toBe(0);
    expect(await page.evaluate('window.__xss')).toBeUndefined();
    expect(await page.locator('#channel-view').textContent()).toContain('2 clients, 2 users');
  }, 30_000);

  it('searches a connection and disconnects it', async () => {
    const bob = clients[1] as WsClient;
    await page.fill('#conn-q', 'bob');
    await page.click('#conn-form button[type=submit]');
    const row = page.locator(`#conn-table tbody tr[data-client="${bob.clientId}"]`);
    // The unfiltered list (shown at start) has bob's row too: wait for the search's answer.
    await until(
      async () => (await page.textContent('#conn-summary')) === '1 connection match',
      'the search answered',
      5000,
    );
    await row.waitFor();
    expect(await page.locator('#conn-table tbody tr').count()).toBe(1);
    expect(await row.textContent()).toContain('chat.lobby');
    const button = row.locator('button.danger');
    await button.click();
    expect(await button.textContent()).toBe('Confirm');
    await button.click();
    const closed = await withTimeout(bob.closed, 5000, 'bob disconnected');
    expect(closed.code).toBe(3500);
    await until(async () => (await button.textContent()) === 'Disconnected', 'the row says so', 5000);
  }, 30_000);

  it('publishes from the console to a WebSocket subscriber, and shows errors', async () => {
    const alice = clients[0] as WsClient;
    await page.fill('#pub-channel', 'chat.lobby');
    await page.fill('#pub-data', '{"text": "hello from the console"}');
    await page.click('#publish-form button[type=submit]');
    await page.waitForSelector('#pub-result.ok');
    expect(await page.textContent('#pub-result')).toMatch(/^Published to chat\.lobby at offset 2 /);
    const pub = await alice.waitFor(
      (f) => f['push'] === 'pub' && f['channel'] === 'chat.lobby' && f['offset'] === 2,
      'the console publication at alice',
    );
    expect(pub['data']).toEqual({ text: 'hello from the console' });
    await page.fill('#pub-data', '{not json');
    await page.click('#publish-form button[type=submit]');
    await page.waitForSelector('#pub-result.err');
    expect(await page.textContent('#pub-result')).toMatch(/^Not valid JSON/);
    await page.fill('#pub-channel', 'bad channel');
    await page.fill('#pub-data', '1');
    await page.click('#publish-form button[type=submit]');
    await until(
      async () => (await page.textContent('#pub-result'))?.startsWith('HERALD_ERR_CHANNEL_INVALID') === true,
      'the error shown',
      5000,
    );
  }, 30_000);

  it('logs out, and ran without a script error or a CSP violation', async () => {
    await page.click('#logout');
    await page.waitForURL(`${srv.url}/admin/login`);
    expect(await page.evaluate("fetch('/admin/api/overview').then((r) => r.status)")).toBe(401);
    expect(problems).toEqual([]);
  }, 30_000);
});

/** How many pixels of `canvas` are about `rgb`. */
async function drawnPixels(page: Page, selector: string, rgb: readonly [number, number, number]): Promise<number> {
  const script = `(() => {
    const c = document.querySelector(${JSON.stringify(selector)});
    if (!c) return 0;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - ${rgb[0]}) < 24 && Math.abs(d[i + 1] - ${rgb[1]}) < 24 && Math.abs(d[i + 2] - ${rgb[2]}) < 24 && d[i + 3] > 128) n++;
    }
    return n;
  })()`;
  return (await page.evaluate(script)) as number;
}
