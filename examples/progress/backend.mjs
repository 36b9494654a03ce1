// @ts-check
/**
 * Progress backend: `POST api/start` starts a job of random length (50-100 steps, 3-8 s) and answers
 * with its id at once; the job publishes its progress to `progress.<id>` through Herald's server API
 * after every step — `{ state: 'running', step, total, pct, stage }` — and ends with
 * `{ state: 'done', pct: 100, result }`. The backend keeps nothing a page needs: Herald's history of
 * the channel is the job's state, so a page that reloads subscribes with `backlog: 1` and shows the
 * latest state at once. Each publish carries an idempotency key (`<id>:<step>`), so a retry after a
 * dropped connection never publishes a step twice.
 */
import { randomBytes } from 'node:crypto';
import { heraldApi } from '../shared/herald-api.mjs';
import { pageHeraldUrl, sendError, sendJson } from '../shared/http.mjs';

export const meta = {
  title: 'Progress',
  description:
    'Start a server-side job and watch its progress stream in over HTTP streaming, to the result. Reload mid-job: the bar carries on from where it is.',
  namespaces: {
    // The last few states of each job, for ten minutes: enough for a reload to pick up where it was.
    progress: { historySize: 5, historyTtl: '10m', clientPublish: false, anonymousSubscribe: true },
  },
};

/** Jobs running at once, for the whole backend; more are refused with 429. */
const MAX_JOBS = 50;
const STAGES = ['Fetching records', 'Checking records', 'Transforming', 'Writing results'];

/** @param {number} min @param {number} max */
const between = (min, max) => min + Math.random() * (max - min);
/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * @param {{ heraldUrl: string, publicUrl?: string, apiKey: string }} options
 */
export function createBackend({ heraldUrl, publicUrl = '', apiKey }) {
  const api = heraldApi(heraldUrl, apiKey);
  /** @type {Map<string, { timer?: NodeJS.Timeout }>} jobs running now (only to stop them at close) */
  const jobs = new Map();
  let closed = false;

  /**
   * Publishes a job's state, retrying a few times; the idempotency key makes a retry safe.
   * @param {string} id
   * @param {object} data
   * @param {string} key
   */
  async function publish(id, data, key) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await api('publish', { channel: `progress.${id}`, data, idempotencyKey: `${id}:${key}` });
      } catch (err) {
        if (attempt >= 4 || closed) throw err;
        await sleep(200 * attempt);
      }
    }
  }

  /**
   * Runs a job: `total` steps of about `stepMs` each, a publication after each.
   * @param {string} id
   * @param {number} total
   * @param {number} stepMs
   */
  async function run(id, total, stepMs) {
    const job = /** @type {{ timer?: NodeJS.Timeout }} */ (jobs.get(id));
    const started = Date.now();
    let records = 0;
    for (let step = 1; step <= total && !closed; step++) {
      await new Promise((resolve) => (job.timer = setTimeout(resolve, stepMs * between(0.4, 1.6))));
      if (closed) break;
      records += Math.floor(between(80, 180));
      const pct = Math.floor((step / total) * 100);
      if (step < total) {
        const stage = STAGES[Math.min(STAGES.length - 1, Math.floor((step / total) * STAGES.length))];
        await publish(id, { state: 'running', step, total, pct, stage }, String(step));
      } else {
        const seconds = Math.round((Date.now() - started) / 100) / 10;
        const result = { records, seconds, checksum: randomBytes(4).toString('hex') };
        await publish(id, { state: 'done', step, total, pct: 100, stage: 'Done', result }, 'done');
      }
    }
  }

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   */
  async function start(req, res) {
    req.resume();
    if (jobs.size >= MAX_JOBS) {
      sendError(res, 429, 'TOO_MANY_JOBS', `${MAX_JOBS} jobs are running; try again in a few seconds`);
      return;
    }
    const id = randomBytes(6).toString('base64url');
    const total = Math.floor(between(50, 101));
    const stepMs = between(3000, 8000) / total;
    jobs.set(id, {});
    try {
      // The first state is in Herald before the page hears of the job, so a subscriber with a
      // backlog always finds one.
      await publish(id, { state: 'running', step: 0, total, pct: 0, stage: 'Queued' }, '0');
    } catch (err) {
      jobs.delete(id);
      sendError(res, 502, 'HERALD_UNAVAILABLE', `cannot publish to Herald: ${/** @type {Error} */ (err).message}`);
      return;
    }
    sendJson(res, 202, { job: id, channel: `progress.${id}`, total });
    run(id, total, stepMs)
      .catch((/** @type {Error} */ err) => {
        if (!closed) console.error(`progress: job ${id} failed: ${err.message}`);
        return publish(id, { state: 'failed', error: err.message }, 'failed').catch(() => undefined);
      })
      .finally(() => jobs.delete(id));
  }

  return {
    /**
     * @param {import('node:http').IncomingMessage} req
     * @param {import('node:http').ServerResponse} res
     * @param {string} path
     */
    async handle(req, res, path) {
      if (path === '/api/config' && req.method === 'GET') {
        sendJson(res, 200, { heraldUrl: pageHeraldUrl(req, publicUrl), transport: 'stream' });
        return true;
      }
      if (path === '/api/start') {
        if (req.method !== 'POST') sendError(res, 405, 'METHOD_NOT_ALLOWED', 'POST to start a job');
        else await start(req, res);
        return true;
      }
      return false;
    },
    close() {
      closed = true;
      for (const job of jobs.values()) clearTimeout(job.timer);
      jobs.clear();
    },
  };
}
