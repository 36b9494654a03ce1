/**
 * Reconnect storm: 2,000 clients (HERALD_STORM_CLIENTS to change) on one `herald serve` process.
 * 1. The server crashes (SIGKILL) and restarts on the same port: the clients come back spread over
 *    their full-jitter backoff window, not all at once.
 * 2. The server shuts down gracefully (SIGTERM) and restarts: each client waits its `retryAfterMs`
 *    hint, so they come back spread over `shutdown.reconnectJitter`.
 * Both times every client resubscribes and is told `recovered: false` (memory engine: new epochs).
 * The arrival spread is printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Herald } from '@herald/client';
import { freePort, until } from '@herald/test-support';
import { API_KEY, CLI } from '@herald/test-support/server';

const N = Number(process.env['HERALD_STORM_CLIENTS'] ?? 2000);
const MIN_DELAY = 500;
const MAX_DELAY = 4000;
const JITTER = 5000;

let port = 0;
let server: ChildProcess | undefined;
const clients: Herald[] = [];
/** Per client: when it came back (ms since the server went away), and whether it resubscribed. */
let back: number[] = [];
let resubscribed = 0;
let lostAt = 0;

async function startHerald(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--workers', '1', '--port', String(port), '--host', '127.0.0.1', '--api-key', API_KEY],
    {
      env: {
        ...process.env,
        HERALD_LOG_LEVEL: 'warn',
        HERALD_SHUTDOWN_RECONNECT_JITTER: String(JITTER),
        HERALD_SHUTDOWN_TIMEOUT: '20s',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  server = child;
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`herald did not start: ${out}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('/ws')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`herald exited (${code}): ${out}`)));
  });
}

function stopHerald(signal: NodeJS.Signals): Promise<void> {
  const child = server;
  if (child === undefined || child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function report(what: string, times: number[]): { p10: number; p90: number; max: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const stats = {
    min: sorted[0] ?? NaN,
    p10: percentile(sorted, 10),
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    max: sorted.at(-1) ?? NaN,
  };
  const buckets = new Map<number, number>();
  for (const t of sorted) buckets.set(Math.floor(t / 500) * 500, (buckets.get(Math.floor(t / 500) * 500) ?? 0) + 1);
  const histogram = [...buckets].map(([b, n]) => `${b}-${b + 500}ms:${n}`).join(' ');
  console.log(
    `${what}: ${times.length} clients back; arrival after the loss (ms) min ${stats.min} p10 ${stats.p10} p50 ${stats.p50} p90 ${stats.p90} max ${stats.max}\n  ${histogram}`,
  );
  return stats;
}

beforeAll(async () => {
  port = await freePort();
  await startHerald();
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < N; i++) {
    const h = new Herald(url, {
      transports: ['websocket'],
      minReconnectDelay: MIN_DELAY,
      maxReconnectDelay: MAX_DELAY,
      timeout: 20_000,
    });
    clients.push(h);
    const index = i;
    h.on('connected', () => {
      if (lostAt > 0 && back[index] === undefined) back[index] = Date.now() - lostAt;
    });
    const sub = h.subscribe(`storm.${i % 50}`);
    sub.on('subscribed', (e) => {
      if (lostAt > 0 && e.recovered === false) resubscribed += 1;
    });
  }
  await until(
    () => clients.every((c) => [...c.subscriptions.values()].every((s) => s.state === 'subscribed')),
    `${N} subscribed`,
    30_000,
  );
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await stopHerald('SIGKILL');
});

async function storm(signal: NodeJS.Signals): Promise<{ times: number[]; up: number }> {
  back = [];
  resubscribed = 0;
  lostAt = Date.now();
  await stopHerald(signal);
  const down = Date.now() - lostAt;
  await startHerald();
  const up = Date.now() - lostAt;
  await until(() => resubscribed === N, `${N} resubscribed`, 40_000).catch((err: unknown) => {
    throw new Error(`${String(err)}: ${resubscribed} did`);
  });
  console.log(`${signal}: the server was gone after ${down} ms and listening again after ${up} ms`);
  expect(back.filter((t) => t !== undefined)).toHaveLength(N);
  return { times: back, up };
}

it(`${N} clients come back spread over the backoff window after a crash, and all resubscribe`, async () => {
  const { times, up } = await storm('SIGKILL');
  const s = report(`crash (full-jitter backoff ${MIN_DELAY}..${MAX_DELAY} ms)`, times);
  // Not a thundering herd (that would be everyone within a few ms): the middle 80% arrive over at
  // least half of the first backoff window.
  expect(s.p90 - s.p10).toBeGreaterThan(MIN_DELAY / 2);
  // And none waits much longer than a full window once the server is back (plus the time a busy
  // server takes to accept everyone).
  expect(s.max - up).toBeLessThan(2 * MAX_DELAY);
}, 90_000);

it(`${N} clients come back spread over the server's retryAfterMs hints after a graceful restart`, async () => {
  // Start from every subscription live again after the first storm.
  await until(
    () => clients.every((c) => [...c.subscriptions.values()].every((s) => s.state === 'subscribed')),
    `${N} subscribed again`,
    30_000,
  );
  const { times } = await storm('SIGTERM');
  const s = report(`graceful shutdown (hints over 0..${JITTER} ms)`, times);
  // The hints that fall while the server restarts turn into backoff, so the spread is narrower
  // than the hint window; it is still nowhere near everyone at once.
  expect(s.p90 - s.p10).toBeGreaterThan(JITTER / 4);
}, 90_000);
