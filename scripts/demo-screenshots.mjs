// @ts-check
/* global document */
/**
 * Screenshots of the demos for docs/demos.md: starts Herald with its demos (as `herald serve` does,
 * from the built dist/), opens each page in headless Chromium and writes docs/img/demo-<name>.png.
 *
 *     npm run build && node scripts/demo-screenshots.mjs [names...] [--width 1000] [--height 700] [--out docs/img]
 *
 * Names: index, progress, ticker, tictactoe, chat (default: the index and the demos with a preparation
 * step below; another demo is shown 1.5 s after loading). Chromium is `CHROMIUM_PATH` or /usr/bin/chromium.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { HeraldServer, prepareDemos, resolveConfig } from '../packages/server/dist/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    width: { type: 'string', default: '1000' },
    height: { type: 'string', default: '700' },
    out: { type: 'string', default: path.join(root, 'docs', 'img') },
  },
});

const { config } = resolveConfig({ host: '127.0.0.1', port: 0, logLevel: 'silent' });
const demos = await prepareDemos(config);
if (!demos) throw new Error('no demos (is examples/ here?)');
const server = new HeraldServer(config, { demos });
const { port } = await server.listen();
const base = `http://127.0.0.1:${port}/demo/`;

/**
 * What to do on each page before the picture: wait for it to be in an interesting state.
 * @type {Record<string, (page: import('playwright-core').Page) => Promise<void>>}
 */
const PREPARE = {
  async progress(page) {
    await page.click('#start');
    await page.waitForFunction(
      () => Number(document.getElementById('bar')?.getAttribute('aria-valuenow')) >= 60,
      null,
      {
        timeout: 15_000,
      },
    );
  },
  async ticker(page) {
    await page.waitForFunction(() => Number(document.getElementById('total')?.dataset.value) >= 40, null, {
      timeout: 15_000,
    });
  },
};

const names = positionals.length > 0 ? positionals : ['index', ...demos.names.filter((n) => n in PREPARE)];
mkdirSync(values.out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
try {
  for (const name of names) {
    const page = await browser.newPage({ viewport: { width: Number(values.width), height: Number(values.height) } });
    await page.goto(name === 'index' ? base : `${base}${name}/`);
    await (PREPARE[name] ?? ((p) => p.waitForTimeout(1500)))(page);
    const file = path.join(values.out, `demo-${name}.png`);
    await page.screenshot({ path: file });
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
}
