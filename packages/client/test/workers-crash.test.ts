/**
 * A worker of `herald serve --workers 2` (docs/scaling.md, "Workers") killed mid-stream: the
 * supervisor starts a new one in its slot, and the SDK clients it held reconnect (to either worker)
 * and resume by cursor from the supervisor's history, with nothing lost or repeated.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Herald } from '@herald/client';
import { until, withTimeout } from '@herald/test-support';
import { API_KEY, CLI } from '@herald/test-support/server';

let server: ChildProcess;
let base = '';

/** A server API call on a connection of its own, so that node:cluster's round-robin picks the worker. */
function call(method: string, body: unknown, ms: number): Promise<{ status: number; body: any }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = http.request(
        `${base}/api/${method}`,
        {
          method: 'POST',
          agent: false,
          headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    }),
    ms,
    `POST /api/${method}`,
  );
}

interface WorkerInfo {
  id: string;
  worker: number;
  pid: number;
}

async function workers(): Promise<Map<number, WorkerInfo>> {
  const seen = new Map<number, WorkerInfo>();
  for (let i = 0; i < 20 && seen.size < 2; i++) {
    const node = (await call('info', {}, 5_000)).body?.nodes?.[0] as WorkerInfo | undefined;
    if (node !== undefined) seen.set(node.worker, node);
  }
  return seen;
}

beforeAll(async () => {
  server = spawn(
    process.execPath,
    [CLI, 'serve', '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--api-key', API_KEY, '--no-demos'],
    { env: { ...process.env, HERALD_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  const port = await withTimeout(
    new Promise<string>((resolve) =>
      server.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(out);
        if (m) resolve(m[1] as string);
      }),
    ),
    20_000,
    'herald serve --workers 2 to listen',
  );
  base = `http://127.0.0.1:${port}`;
}, 30_000);

afterAll(async () => {
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGKILL');
  await exited;
});

it('restarts a worker killed mid-stream; SDK clients on it resume by cursor with nothing lost or repeated', async () => {
  const all = await workers();
  expect(all.size).toBe(2);
  const clients = [0, 1, 2, 3].map(() => new Herald(base, { transports: ['websocket'], timeout: 5000 }));
  const got = clients.map(() => [] as number[]);
  const nodes: string[] = [];
  try {
    await Promise.all(
      clients.map(async (h, i) => {
        h.on('connected', (e) => (nodes[i] ??= e.client.replace(/-[^-]*$/, '')));
        const sub = h.subscribe<{ n: number }>('crash.x');
        sub.on('publication', (p) => got[i]!.push(p.data.n));
        await sub.ready();
      }),
    );
    const victim = [...all.values()].find((w) => w.id === nodes[0])!;
    // Round-robin put clients on both workers: the victim's and the other one's.
    expect(nodes.some((n) => n !== victim.id)).toBe(true);
    const N = 60;
    for (let n = 1; n <= N; n++) {
      if (n === 20) process.kill(victim.pid, 'SIGKILL');
      // A publish on the dying worker may fail, or hang when node:cluster handed its connection to
      // the worker as it died: retried under its idempotency key, it counts once.
      for (let attempt = 0; ; attempt++) {
        const body = { channel: 'crash.x', data: { n }, idempotencyKey: `k${n}` };
        const r = await call('publish', body, 2_000).catch(() => undefined);
        if (r?.status === 200) break;
        if (attempt === 20) throw new Error(`publish ${n} failed 20 times`);
      }
    }
    const want = Array.from({ length: N }, (_, i) => i + 1);
    await until(() => got.every((g) => g.length >= N), 'every client to have every publication', 20_000);
    for (const g of got) expect(g).toEqual(want);
    // The supervisor started a new worker in the slot.
    await until(
      async () => (await workers()).get(victim.worker)?.pid !== victim.pid,
      'a new worker in the slot',
      10_000,
    );
  } finally {
    for (const h of clients) h.close();
  }
}, 40_000);
