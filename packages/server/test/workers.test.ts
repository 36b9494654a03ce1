/**
 * `herald serve --workers 2` (docs/scaling.md, "Workers"): a real supervisor and two workers on one
 * ephemeral port, reached over fresh TCP connections so that node:cluster's round-robin spreads
 * them over both workers. Each worker names itself in `/api/info` (`worker`, `pid`, node `id`), and
 * every client id starts with the node id of the worker holding it. A worker killed mid-stream,
 * with SDK clients on it: packages/client/test/workers-crash.test.ts.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { API_KEY, WsClient } from '@herald/test-support/server';
import { ConfigError, loadConfig, parseServeFlags, resolveConfig } from '../src/config/index.js';
import { CliProcess, assertBuilt } from './support/cli.js';
import { SseReader } from './support/http-clients.js';

interface Answer {
  status: number;
  body: any;
}

/** One request on a connection of its own (no keep-alive pool): the next worker in turn takes it. */
function fresh(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ms = 10_000,
): Promise<Answer> {
  return withTimeout(
    new Promise<Answer>((resolve, reject) => {
      const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          const type = res.headers['content-type'] ?? '';
          const body = type.includes('ndjson')
            ? text
                .split('\n')
                .filter((l) => l !== '')
                .map((l) => JSON.parse(l) as unknown)
            : type.includes('json')
              ? (JSON.parse(text) as unknown)
              : text;
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      req.on('error', reject);
      req.end(init.body);
    }),
    ms,
    `${init.method ?? 'GET'} ${url}`,
  );
}

function call(base: string, method: string, body: unknown, ms?: number): Promise<Answer> {
  return fresh(
    `${base}/api/${method}`,
    {
      method: 'POST',
      headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    },
    ms,
  );
}

interface WorkerInfo {
  id: string;
  worker: number;
  pid: number;
}

/** Both workers as `/api/info` names them, by slot. */
async function workers(base: string): Promise<Map<number, WorkerInfo>> {
  const seen = new Map<number, WorkerInfo>();
  for (let i = 0; i < 20 && seen.size < 2; i++) {
    const r = await call(base, 'info', {});
    const node = r.body?.nodes?.[0] as WorkerInfo | undefined;
    if (node !== undefined) seen.set(node.worker, node);
  }
  if (seen.size !== 2) throw new Error(`found ${seen.size} workers in 20 /api/info calls`);
  return seen;
}

const nodeOf = (client: string): string => client.replace(/[-~][^-~]*$/, '');

describe('the workers setting', () => {
  it('is auto by default, and takes a count from a file, HERALD_WORKERS or --workers', async () => {
    expect(resolveConfig({}).config.workers).toBe('auto');
    expect(resolveConfig({ workers: 4 }).config.workers).toBe(4);
    expect((await loadConfig({ env: { HERALD_WORKERS: 'auto' } })).config.workers).toBe('auto');
    const { flags } = parseServeFlags(['--workers', '3']);
    expect((await loadConfig({ env: { HERALD_WORKERS: '2' }, flags })).config.workers).toBe(3);
  });

  it('refuses what is not a count, saying what it takes', async () => {
    for (const bad of ['0', '-1', '1.5', 'many', '257']) {
      const err = await loadConfig({ env: { HERALD_WORKERS: bad } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).message).toMatch(/workers.*"auto" \(one per core\) or an integer from 1 to 256/);
    }
  });
});

let proc: CliProcess;
let base: string;
let wsUrl: string;

beforeAll(async () => {
  assertBuilt();
  proc = new CliProcess(
    ['serve', '--workers', '2', '--port', '0', '--host', '127.0.0.1', '--api-key', API_KEY, '--no-demos'],
    {
      env: {
        HERALD_LOG_LEVEL: 'info',
        HERALD_LOG_FORMAT: 'json',
        HERALD_NAMESPACES: JSON.stringify({ room: { presence: true, joinLeave: true } }),
        HERALD_PRESENCE_REFRESH_INTERVAL: '1s',
        HERALD_PRESENCE_TTL: '3s',
      },
    },
  );
  await proc.waitFor((p) => /ws:\/\/127\.0\.0\.1:\d+\/ws/.test(p.stdout), 'the banner', 20_000);
  const port = /ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(proc.stdout)?.[1];
  base = `http://127.0.0.1:${port}`;
  wsUrl = `ws://127.0.0.1:${port}/ws`;
}, 30_000);

afterAll(async () => {
  proc.kill();
  await proc.exited;
});

/** WebSocket clients until one is held by each worker (round-robin makes it the first two). */
async function onBothWorkers(): Promise<[WsClient, WsClient]> {
  const first = await WsClient.connect(wsUrl);
  for (let i = 0; i < 6; i++) {
    const c = await WsClient.connect(wsUrl);
    if (nodeOf(c.clientId) !== nodeOf(first.clientId)) return [first, c];
    await c.close();
  }
  throw new Error('every connection landed on the same worker');
}

describe('herald serve --workers 2', () => {
  it('prints one banner naming the workers, and spreads connections over both', async () => {
    expect(proc.stdout.match(/is running/g)).toHaveLength(1);
    expect(proc.stdout).toMatch(/2 workers, supervisor pid \d+/);
    const all = await workers(base);
    expect(new Set([...all.values()].map((w) => w.pid)).size).toBe(2);
    const clients = await Promise.all([1, 2, 3, 4].map(() => WsClient.connect(wsUrl)));
    const nodes = new Set(clients.map((c) => nodeOf(c.clientId)));
    expect(nodes).toEqual(new Set([...all.values()].map((w) => w.id)));
    await Promise.all(clients.map((c) => c.close()));
  });

  it('delivers each publication once, in offset order, to subscribers on both workers, from one history', async () => {
    const [a, b] = await onBothWorkers();
    for (const c of [a, b]) await c.request({ cmd: 'subscribe', channel: 'fan.**' });
    const N = 30;
    // Publishes reach either worker; offsets come from the one owner of the streams.
    for (let n = 1; n <= N; n++) {
      const r = await call(base, 'publish', { channel: `fan.${n % 3}`, data: { n } });
      expect(r.status).toBe(200);
    }
    for (const c of [a, b]) {
      const pubs = await c.waitForCount((f) => f['push'] === 'pub' && f['stream'] === 'fan.**', N, 'publications');
      expect(pubs.map((p) => p['offset'])).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      expect(pubs.map((p) => p['data'].n)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    }
    // The same history, whichever worker answers.
    const h1 = await call(base, 'history', { channel: 'fan.1', limit: 100 });
    const h2 = await call(base, 'history', { channel: 'fan.1', limit: 100 });
    expect(h1.body).toEqual(h2.body);
    expect(h1.body.publications).toHaveLength(10);
    await Promise.all([a.close(), b.close()]);
  });

  it('recovers by cursor on the other worker', async () => {
    const [a, b] = await onBothWorkers();
    const r1 = await a.request({ cmd: 'subscribe', channel: 'rec.x' });
    await call(base, 'publish', { channel: 'rec.x', data: 1 });
    await a.waitFor((f) => f['push'] === 'pub', 'the first publication');
    await a.close();
    await call(base, 'publish', { channel: 'rec.x', data: 2 });
    await call(base, 'publish', { channel: 'rec.x', data: 3 });
    const r2 = await b.request({ cmd: 'subscribe', channel: 'rec.x', since: { epoch: r1['result'].epoch, offset: 1 } });
    expect(r2['result']).toMatchObject({ recovered: true, offset: 3, epoch: r1['result'].epoch });
    expect(r2['result'].publications.map((p: any) => p.data)).toEqual([2, 3]);
    await b.close();
  });

  it('runs POST /send for an SSE session on whichever worker takes it', async () => {
    const es = new SseReader(`${base}/sse?channel=sse.a`);
    try {
      await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'subscribed');
      const session = es.of('connected')[0]!['session'] as string;
      // Two fresh connections: one lands on the worker streaming the session, one on the other.
      for (const channel of ['sse.b', 'sse.c']) {
        const r = await fresh(`${base}/send`, {
          method: 'POST',
          headers: { 'X-Herald-Session': session },
          body: JSON.stringify({ id: 1, cmd: 'subscribe', channel }),
        });
        expect(r.status).toBe(200);
        expect(r.body[0]).toMatchObject({ id: 1, result: {} });
      }
      for (const channel of ['sse.a', 'sse.b', 'sse.c']) await call(base, 'publish', { channel, data: channel });
      await es.waitFor((e) => e.filter((x) => x.event === 'message').length >= 3, 'three publications');
      expect(es.pubs().map((p) => p['data'])).toEqual(['sse.a', 'sse.b', 'sse.c']);
      const metrics = await fresh(`${base}/metrics`);
      // /metrics sums the workers: the forwarded /send counts, wherever the scrape lands.
      expect(metrics.body).toMatch(/^herald_send_forwarded_total [1-9]/m);
      expect(metrics.body).toMatch(/^herald_send_served_total [1-9]/m);
    } finally {
      es.close();
    }
  });

  it('answers a long-poll and its /send on either worker', async () => {
    const first = await fresh(`${base}/poll?channel=lp.a`);
    const { client, session, cursor } = first.body;
    const other = await fresh(
      `${base}/poll?channel=lp.a&cursor=${encodeURIComponent(cursor)}&session=${session}&timeout=0`,
    );
    expect(other.status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const r = await fresh(`${base}/send`, {
        method: 'POST',
        headers: { 'X-Herald-Session': session },
        body: JSON.stringify({ id: 1, cmd: 'history', channel: 'lp.a', limit: 1 }),
      });
      expect(r.status).toBe(200);
      expect(r.body[0]).toMatchObject({ id: 1, result: { publications: [] } });
    }
    expect(nodeOf(client)).toMatch(/./);
    await call(base, 'publish', { channel: 'lp.a', data: 'x' });
    const next = await fresh(`${base}/poll?channel=lp.a&cursor=${encodeURIComponent(cursor)}&session=${session}`);
    expect(next.body.publications.map((p: any) => p.data)).toEqual(['x']);
  });

  it('keeps one presence per channel across workers, with join events from the other worker', async () => {
    const [a, b] = await onBothWorkers();
    await a.request({ cmd: 'subscribe', channel: 'room.1' });
    await b.request({ cmd: 'subscribe', channel: 'room.1' });
    const join = await a.waitFor((f) => f['push'] === 'join' && f['client'] === b.clientId, "the other worker's join");
    expect(join['channel']).toBe('room.1');
    for (let i = 0; i < 2; i++) {
      const r = await call(base, 'presence', { channel: 'room.1' });
      const clients = (r.body.presence as Array<{ client: string }>).map((e) => e.client);
      expect(new Set(clients)).toEqual(new Set([a.clientId, b.clientId]));
    }
    await Promise.all([a.close(), b.close()]);
  });

  it('disconnects a client through the server API whichever worker takes the request', async () => {
    const [a, b] = await onBothWorkers();
    // Requests are spread over the workers: of these four, some land on the other client's worker.
    const done = new Set<WsClient>();
    for (const c of [a, b, a, b]) {
      const r = await call(base, 'disconnect', { client: c.clientId, reconnect: true });
      expect(r.body).toEqual({ disconnected: done.has(c) ? 0 : 1 });
      done.add(c);
      expect((await c.closed).code).toBe(3004);
    }
  });

  it('serves the demos, run once by the supervisor, through every worker', async () => {
    const demo = new CliProcess(['serve', '--workers', '2', '--port', '0', '--host', '127.0.0.1'], {
      env: { HERALD_LOG_LEVEL: 'warn' },
    });
    try {
      await demo.waitFor(
        (p) => /progress +http:\/\/127\.0\.0\.1:\d+\/demo\/progress\//.test(p.stdout),
        'the demo URLs',
        20_000,
      );
      const port = /ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(demo.stdout)?.[1];
      const url = `http://127.0.0.1:${port}`;
      // Two fresh connections: both workers pass /demo on to the supervisor.
      for (let i = 0; i < 2; i++) {
        expect((await fresh(`${url}/demo/progress/`)).status).toBe(200);
        // The demo's backend sees the request's own Host, so it tells the page the public URL.
        const config = await fresh(`${url}/demo/progress/api/config`);
        expect(config.body).toMatchObject({ heraldUrl: url });
      }
    } finally {
      demo.kill('SIGTERM');
      expect((await demo.finished(20_000)).code).toBe(0);
    }
  }, 40_000);

  it('drains both workers at a Ctrl-C (SIGINT to the whole process group) and exits 0', async () => {
    const [a, b] = await onBothWorkers();
    const pids = [...(await workers(base)).values()].map((w) => w.pid);
    proc.kill('SIGINT');
    for (const pid of pids) process.kill(pid, 'SIGINT');
    const closes = await Promise.all([a.closed, b.closed].map((c) => withTimeout(c, 10_000, 'the shutdown close')));
    for (const c of closes) expect(c.code).toBe(3001);
    const run = await proc.finished(20_000);
    expect(run.code).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    expect(run.stdout.match(/"shutting down"/g) ?? []).toHaveLength(1);
    expect(run.stdout).not.toContain('second signal');
    expect(run.stdout.match(/"msg":"stopped"/g) ?? []).toHaveLength(3);
  }, 30_000);
});
