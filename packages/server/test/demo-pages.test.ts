/**
 * The Ticker and Progress demo pages in headless Chromium (through playwright-core), served by
 * Herald under /demo/ as `herald serve` does, with the SDK bundle built from the sources:
 * - Ticker: the page counts messages per second (> 0) and its total grows, on the default
 *   transport and on SSE, and served on its own by the example's runner (another origin, long-poll);
 * - Progress: pressing "Start job", the bar reaches 100 % and shows the result (over HTTP streaming
 *   by default, and over long-polling with ?transport=poll); a reload mid-job picks the job up
 *   where it is (the first state shown is not below the one before the reload) and still reaches
 *   100 %.
 * Skipped when Chromium is not installed, except in CI (CI=true), where that fails.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundleClient } from '../../../scripts/bundle-client.mjs';
import { CHROMIUM, chromiumPresent, freePort, launchChromium, until, untilValue } from '@herald/test-support';
import { startDemoServer, type DemoServer } from './support/demo-server.js';

const ci = process.env['CI'] === 'true';

describe.skipIf(!chromiumPresent && !ci)('the demo pages in headless Chromium', () => {
  let srv: DemoServer;
  let dir: string;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!chromiumPresent) throw new Error(`Chromium is not at ${CHROMIUM} (CI=true: the browser test must run)`);
    dir = await mkdtemp(path.join(tmpdir(), 'herald-demo-pages-'));
    const sdkPath = path.join(dir, 'herald.min.js');
    await writeFile(sdkPath, (await bundleClient()).iife.code);
    srv = await startDemoServer({}, { sdkPath });
    browser = await launchChromium();
  }, 40_000);

  afterEach(async () => {
    await page?.close();
    expect(pageErrors.splice(0)).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await srv?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const open = async (demo: string, query = ''): Promise<void> => {
    page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    await page.goto(`${srv.url}/demo/${demo}/${query}`);
  };
  const text = (selector: string): Promise<string> => page.locator(selector).innerText();
  const number = async (selector: string, attribute: string): Promise<number> =>
    Number(await page.locator(selector).getAttribute(attribute));

  describe('Ticker', () => {
    it.each([
      ['', 'websocket'],
      ['?transport=sse', 'sse'],
    ])(
      'counts the messages it receives (%s)',
      async (query, transport) => {
        await open('ticker', query);
        await until(async () => (await number('#total', 'data-value')) >= 20, 'twenty prices', 10_000, 50);
        expect(await text('#transport')).toBe(transport);
        const rate = await untilValue(
          async () => {
            const r = await number('#rate', 'data-value');
            return r > 0 ? r : undefined;
          },
          'a rate above 0',
          5000,
          50,
        );
        expect(rate).toBeGreaterThan(0);
        expect(rate).toBeLessThan(60);
        const total = await number('#total', 'data-value');
        await until(async () => (await number('#total', 'data-value')) >= total + 10, 'the total to grow', 10_000, 50);
        // Every symbol has a price, and the table shows them all.
        expect(await page.locator('#quotes tbody tr').count()).toBe(10);
        expect(await text('#status')).toBe('Connected');
      },
      30_000,
    );

    it('counts too when served on its own (examples/ticker/server.mjs), on another origin than Herald', async () => {
      const { serveExample } = (await import('../../../examples/shared/serve-example.mjs')) as {
        serveExample(url: string, argv: string[]): Promise<{ stop(): Promise<void> }>;
      };
      const port = await freePort();
      const example = await serveExample(new URL('../../../examples/ticker/server.mjs', import.meta.url).href, [
        ...['--herald', srv.url, '--api-key', srv.config.apiKeys[0] ?? '', '--port', String(port)],
        ...['--host', '127.0.0.1'],
      ]);
      try {
        page = await browser.newPage();
        page.on('pageerror', (e) => pageErrors.push(String(e)));
        await page.goto(`http://127.0.0.1:${port}/?transport=poll`);
        await until(async () => (await number('#total', 'data-value')) >= 20, 'twenty prices', 10_000, 50);
        expect(await text('#transport')).toBe('long-poll');
        expect(await number('#rate', 'data-value')).toBeGreaterThan(0);
      } finally {
        await example.stop();
      }
    }, 30_000);
  });

  describe('Progress', () => {
    const pct = (): Promise<number> => number('#bar', 'aria-valuenow');

    it.each([
      ['', 'http-stream'],
      ['?transport=poll', 'long-poll'],
    ])(
      'fills the bar to the end and shows the result (%s)',
      async (query, transport) => {
        await open('progress', query);
        await until(async () => (await text('#status')) === 'Connected', 'connected', 10_000, 50);
        expect(await text('#transport')).toBe(transport);
        await page.click('#start');
        await until(async () => (await pct()) > 0, 'the bar to move', 10_000, 50);
        await until(async () => (await pct()) === 100, 'the bar to reach 100 %', 15_000, 50);
        await page.locator('#result').waitFor({ state: 'visible', timeout: 5000 });
        expect(await text('#result-text')).toMatch(/^Processed [\d,]+ records in \d+\.\d s · checksum [0-9a-f]{8}$/);
        expect(await text('#pct')).toBe('100 %');
        expect(await page.locator('#start').isEnabled()).toBe(true);
        const log = (await page.evaluate(() => (globalThis as unknown as { progressLog: number[] }).progressLog)) ?? [];
        expect(log, 'the bar never goes back').toEqual([...log].sort((a, b) => a - b));
        expect(new URL(page.url()).searchParams.get('job')).toMatch(/^[A-Za-z0-9_-]+$/);
      },
      30_000,
    );

    it('says so for a job Herald has no state of, and offers a new one', async () => {
      await open('progress', '?job=nosuchjob');
      await until(
        async () => (await text('#stage')).startsWith('This job is unknown'),
        'the page to say so',
        10_000,
        50,
      );
      expect(await page.locator('#start').isEnabled()).toBe(true);
      expect(await pct()).toBe(0);
    }, 30_000);

    it('picks the job up where it is after a reload, and still reaches 100 %', async () => {
      await open('progress');
      await until(async () => (await text('#status')) === 'Connected', 'connected', 10_000, 50);
      await page.click('#start');
      await until(async () => (await pct()) >= 15, 'the bar past 15 %', 10_000, 20);
      const before = await pct();
      const job = new URL(page.url()).searchParams.get('job');
      expect(job).not.toBeNull();
      await page.reload();
      const first = await untilValue(
        () => page.evaluate(() => (globalThis as unknown as { progressLog: number[] }).progressLog[0]),
        'the first state after the reload',
        10_000,
        20,
      );
      expect(first, 'the bar does not restart from 0').toBeGreaterThanOrEqual(before);
      expect(new URL(page.url()).searchParams.get('job')).toBe(job);
      await until(async () => (await pct()) === 100, 'the bar to reach 100 %', 15_000, 50);
      await page.locator('#result').waitFor({ state: 'visible', timeout: 5000 });
      const log = await page.evaluate(() => (globalThis as unknown as { progressLog: number[] }).progressLog);
      expect(log).toEqual([...log].sort((a, b) => a - b));
    }, 30_000);
  });
});
