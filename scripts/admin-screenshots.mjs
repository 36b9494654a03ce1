// @ts-check
/* global document, fetch, setInterval, clearInterval, setTimeout, AbortController, TextEncoder */
/**
 * Screenshots of the admin page for docs/operations.md: starts Herald (from the built dist/) with the
 * admin page on, two nodes sharing a Redis when `--redis <url>` is given (one node with the memory
 * engine otherwise), makes some traffic (WebSocket and SSE clients of a few users, a chat with
 * presence, a fast ticker), logs in with headless Chromium and writes docs/img/admin-*.png.
 *
 *     npm run build && node scripts/admin-screenshots.mjs [--redis redis://127.0.0.1:6379] [--seconds 25] [--out docs/img]
 *
 * Chromium is `CHROMIUM_PATH` or /usr/bin/chromium. Traffic goes to 127.0.0.1 only and stops with the script.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { HeraldServer, resolveConfig } from '../packages/server/dist/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    redis: { type: 'string' },
    seconds: { type: 'string', default: '25' },
    out: { type: 'string', default: path.join(root, 'docs', 'img') },
  },
});

const PASSWORD = 'screenshots-' + randomBytes(6).toString('hex');
const SECRET = randomBytes(32).toString('hex');
const prefix = `herald-shots-${randomBytes(4).toString('hex')}`;

/** @param {number} i */
async function startNode(i) {
  const { config } = resolveConfig({
    host: '127.0.0.1',
    port: 0,
    logLevel: 'warn',
    demos: false,
    apiKeys: ['shots-api-key-0123456789'],
    auth: { hmacSecret: SECRET },
    admin: { password: PASSWORD, secret: SECRET, sampleInterval: '1s' },
    ...(values.redis !== undefined ? { engine: 'redis', redis: { urls: [values.redis], prefix } } : {}),
    namespaces: {
      chat: { presence: true, historySize: 100 },
      ticker: { historySize: 50 },
      game: { presence: true, historySize: 20 },
    },
  });
  const server = new HeraldServer(config);
  const { port } = await server.listen();
  return { server, url: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}/ws`, name: `node ${i}` };
}

const nodes = values.redis !== undefined ? [await startNode(0), await startNode(1)] : [await startNode(0)];

/** @param {string} sub */
const token = (sub) =>
  new SignJWT({ info: { name: sub[0]?.toUpperCase() + sub.slice(1) } })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

/** @type {Array<{ close(): void }>} */
const clients = [];

/** A WebSocket client of `user` on `node`, subscribed to `channels`. */
async function wsClient(node, user, channels) {
  const ws = new WebSocket(`${node.ws}?token=${await token(user)}`);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let id = 1;
  for (const channel of channels) ws.send(JSON.stringify({ id: id++, cmd: 'subscribe', channel }));
  ws.on('error', () => undefined);
  clients.push({ close: () => ws.close() });
}

/** An SSE client of `user` (read and dropped). */
async function sseClient(node, user, channel) {
  const ac = new AbortController();
  const res = await fetch(`${node.url}/sse?channel=${channel}&token=${await token(user)}`, { signal: ac.signal });
  const reader = res.body?.getReader();
  void (async () => {
    try {
      while (reader !== undefined && !(await reader.read()).done);
    } catch {
      // aborted
    }
  })();
  clients.push({ close: () => ac.abort() });
}

const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy', 'mallory', 'oscar'];
let seed = 42;
const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
/** Connects client `i`: mostly WebSocket, on the first node two times out of three. */
async function connect(i) {
  const user = users[i % users.length];
  const node = nodes[random() < 0.65 || nodes.length === 1 ? 0 : 1];
  if (i % 6 === 5) return sseClient(node, user, i % 12 === 5 ? 'ticker.btc' : 'ticker.eth');
  const channels = ['chat.lobby'];
  if (i % 3 === 0) channels.push('ticker.btc');
  if (i % 4 === 1) channels.push('ticker.eth', 'chat.support');
  if (i % 5 === 2) channels.push('game.42');
  if (i % 7 === 3) channels.push('ticker.sol', 'chat.random');
  return wsClient(node, user, channels);
}
// A few now, then more over the first seconds, so the connection charts show them arriving.
for (let i = 0; i < 12; i++) await connect(i);
let next = 12;
const arrivals = setInterval(() => {
  if (next >= 54) return clearInterval(arrivals);
  void connect(next++);
  void connect(next++);
}, 700);

// Traffic: a fast ticker and a chat, published on the first node (delivered by every node).
const hub = nodes[0].server.hub;
const lines = ['hello everyone', 'is the deploy done?', 'yes, 2.4 is out', '<img src=x onerror=alert(1)> (just text)'];
let n = 0;
const timers = [
  arrivals,
  setInterval(() => void hub.publish('ticker.btc', { price: 97000 + Math.round(Math.random() * 500) }), 40),
  setInterval(() => void hub.publish('ticker.eth', { price: 3400 + Math.round(Math.random() * 40) }), 90),
  setInterval(() => void hub.publish('ticker.sol', { price: 180 + Math.round(Math.random() * 4) }), 200),
  setInterval(() => {
    const user = users[n % users.length];
    void hub.publish('chat.lobby', { user, text: lines[n++ % lines.length] });
  }, 600),
];
// A burst in the middle, so the rate chart shows a change.
setTimeout(() => {
  const burst = setInterval(() => void hub.publish('ticker.btc', { price: 97300, burst: true }), 8);
  timers.push(burst);
  setTimeout(() => clearInterval(burst), 5000);
}, 9000);

mkdirSync(values.out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
/** @param {import('playwright-core').Page | import('playwright-core').Locator} what @param {string} name */
async function shot(what, name) {
  const file = path.join(values.out, `admin-${name}.png`);
  await what.screenshot({ path: file });
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  const base = nodes[0].url;

  await page.setViewportSize({ width: 900, height: 560 });
  await page.goto(`${base}/admin/login`);
  await page.fill('#password', 'not the password');
  await page.click('button[type=submit]');
  await page.waitForSelector('.login-error');
  await page.fill('#password', 'something');
  await shot(page, 'login');

  await page.fill('#password', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${base}/admin/`);
  await page.setViewportSize({ width: 1280, height: 900 });
  console.log(`building up ${values.seconds} s of figures...`);
  await page.waitForTimeout(Number(values.seconds) * 1000);
  await page.waitForFunction(() => (document.querySelector('#top-rate tbody')?.children.length ?? 0) > 2);
  await shot(page, 'overview');

  // Top channels, the inspector on the chat and the publish console.
  await page.click('#top-subscribers tbody button.link');
  await page.waitForSelector('#channel-view .title');
  await page.fill('#pub-channel', 'chat.lobby');
  await page.fill('#pub-data', JSON.stringify({ user: 'ops', text: 'Maintenance at 22:00 UTC' }, null, 2));
  await page.click('#publish-form button[type=submit]');
  await page.waitForSelector('#pub-result.ok');
  await page.waitForTimeout(300);
  await page.evaluate(() => document.querySelector('#top-subscribers')?.closest('.grid-2')?.scrollIntoView());
  await page.setViewportSize({ width: 1280, height: 1000 });
  await shot(page, 'channels');

  // Connections: search a user, arm a disconnect.
  await page.fill('#conn-q', 'alice');
  await page.click('#conn-form button[type=submit]');
  await page.waitForFunction(() => (document.querySelector('#conn-table tbody')?.children.length ?? 0) > 1);
  await page.click('#conn-table tbody tr:first-child button.danger');
  await shot(page.locator('#connections'), 'connections');
  await context.close();
} finally {
  for (const t of timers) clearInterval(t);
  await browser.close();
  for (const c of clients) c.close();
  await Promise.all(nodes.map((node) => node.server.close()));
  if (values.redis !== undefined) {
    const { Redis } = await import('ioredis');
    const r = new Redis(values.redis);
    const keys = await r.keys(`${prefix}:*`);
    if (keys.length > 0) await r.del(...keys);
    r.disconnect();
  }
}
