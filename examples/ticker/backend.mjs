// @ts-check
/**
 * Ticker backend: ten made-up symbols whose prices move at random, 20 publications a second in all,
 * each to the symbol's channel (`ticker.HRLD`, ...) through Herald's server API. Pages subscribe to
 * the subtree `ticker.**`, so one subscription gets every symbol, however many pages watch: the
 * backend publishes once and Herald fans out. Every second it also asks Herald how many subscribers
 * `ticker.**` has, and sends that number along ("viewers"); with none, it publishes nothing.
 */
import { heraldApi } from '../shared/herald-api.mjs';
import { pageHeraldUrl, sendJson } from '../shared/http.mjs';

export const meta = {
  title: 'Ticker',
  description:
    'Prices of ten symbols ticking 20 times a second to any number of viewers; each page counts the messages it receives per second.',
  namespaces: {
    // A short history: a page that reconnects gets what it missed within the last second or so.
    ticker: { historySize: 20, historyTtl: '1m', clientPublish: false, anonymousSubscribe: true },
  },
};

/** Publications per second, over all symbols. */
export const RATE = 20;
/** Publications that may wait for Herald's answer at once; a tick is skipped beyond (Herald slow or down). */
const MAX_IN_FLIGHT = 8;

/** @type {Array<[string, string, number]>} symbol, company, opening price */
const SYMBOLS = [
  ['HRLD', 'Herald Systems', 142.5],
  ['ACME', 'Acme Corporation', 58.2],
  ['GLBX', 'Globex', 233.1],
  ['INIT', 'Initech', 17.85],
  ['UMBR', 'Umbrella Holdings', 96.4],
  ['STRK', 'Stark Industries', 312.75],
  ['WAYN', 'Wayne Enterprises', 188.3],
  ['TYRL', 'Tyrell Corporation', 74.05],
  ['CYBD', 'Cyberdyne Systems', 121.6],
  ['SOYL', 'Soylent', 9.42],
];

/** @typedef {{ symbol: string, name: string, open: number, price: number }} Quote */

/** A normal random number (Box-Muller). */
function gaussian() {
  const u = 1 - Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}

/**
 * Moves a price by a small random step, pulled gently back toward its opening price.
 * @param {Quote} q
 */
function move(q) {
  const drift = ((q.open - q.price) / q.open) * 0.02;
  const next = q.price * (1 + drift + gaussian() * 0.0015);
  return Math.max(0.01, Math.round(next * 100) / 100);
}

/**
 * @param {{ heraldUrl: string, publicUrl?: string, apiKey: string }} options
 */
export function createBackend({ heraldUrl, publicUrl = '', apiKey }) {
  const api = heraldApi(heraldUrl, apiKey);
  /** @type {Quote[]} */
  const quotes = SYMBOLS.map(([symbol, name, open]) => ({ symbol, name, open, price: open }));
  let inFlight = 0;
  let viewers = 0;
  let failing = false;
  let closed = false;

  function tick() {
    // Nobody watching (as of the last count): nothing to publish; an idle server stays idle.
    if (viewers === 0 || inFlight >= MAX_IN_FLIGHT) return;
    const q = /** @type {Quote} */ (quotes[Math.floor(Math.random() * quotes.length)]);
    q.price = move(q);
    const data = { symbol: q.symbol, price: q.price, open: q.open, viewers, time: Date.now() };
    inFlight += 1;
    api('publish', { channel: `ticker.${q.symbol}`, data })
      .then(() => {
        if (failing && !closed) console.log('ticker: publishing again');
        failing = false;
      })
      .catch((/** @type {Error} */ err) => {
        if (!failing && !closed) console.error(`ticker: publish failed (${err.message}); will keep trying`);
        failing = true;
      })
      .finally(() => (inFlight -= 1));
  }

  function countViewers() {
    api('channels', { pattern: 'ticker.*' })
      .then((/** @type {{ channels: Array<{ stream: string, subscribers: number }> }} */ r) => {
        viewers = r.channels.find((c) => c.stream === 'ticker.**')?.subscribers ?? 0;
      })
      .catch(() => undefined); // publish reports Herald being unreachable
  }

  const ticker = setInterval(tick, 1000 / RATE);
  const counter = setInterval(countViewers, 1000);

  return {
    /**
     * @param {import('node:http').IncomingMessage} req
     * @param {import('node:http').ServerResponse} res
     * @param {string} path
     */
    handle(req, res, path) {
      if (path !== '/api/config' || req.method !== 'GET') return false;
      sendJson(res, 200, {
        heraldUrl: pageHeraldUrl(req, publicUrl),
        channel: 'ticker.**',
        rate: RATE,
        viewers,
        quotes: quotes.map(({ symbol, name, open, price }) => ({ symbol, name, open, price })),
      });
      return true;
    },
    close() {
      closed = true;
      clearInterval(ticker);
      clearInterval(counter);
    },
  };
}
