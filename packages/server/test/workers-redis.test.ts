/**
 * `herald serve --workers 2 --engine redis` (docs/scaling.md, "Workers"): each worker is an
 * ordinary Redis node with its own node id, so publications, `/send` forwarding and ingestion work
 * across workers as they do across machines.
 */
import http from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { API_KEY, WsClient } from '@herald/test-support/server';
import { CliProcess, assertBuilt } from './support/cli.js';
import { SseReader } from './support/http-clients.js';
import { REDIS_URL, dropPrefix, skipRedis, testPrefix } from './support/redis.js';

const prefix = testPrefix();
const INGEST = `${prefix}-ingest`;
let proc: CliProcess;
let base: string;
let wsUrl: string;

/** A request on a connection of its own, so that node:cluster's round-robin picks the next worker. */
function fresh(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return withTimeout(
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(url, { method: init.method ?? 'GET', headers: init.headers, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(init.body);
    }),
    10_000,
    url,
  );
}

const nodeOf = (client: string): string => client.replace(/-[^-]*$/, '');

describe.skipIf(skipRedis)('herald serve --workers 2 --engine redis', () => {
  beforeAll(async () => {
    assertBuilt();
    proc = new CliProcess(
      ['serve', '--workers', '2', '--engine', 'redis', '--redis', REDIS_URL, '--port', '0', '--host', '127.0.0.1'],
      {
        env: {
          HERALD_API_KEYS: API_KEY,
          HERALD_LOG_LEVEL: 'warn',
          HERALD_DEMOS: 'false',
          HERALD_REDIS_PREFIX: prefix,
          HERALD_REDIS_INGEST_CHANNEL: INGEST,
        },
      },
    );
    await proc.waitFor((p) => /ws:\/\/127\.0\.0\.1:\d+\/ws/.test(p.stdout), 'the banner', 20_000);
    const port = /ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(proc.stdout)?.[1];
    base = `http://127.0.0.1:${port}`;
    wsUrl = `ws://127.0.0.1:${port}/ws`;
  }, 30_000);

  afterAll(async () => {
    proc?.kill('SIGTERM');
    if (proc !== undefined) expect((await proc.finished(20_000)).code).toBe(0);
    await dropPrefix(prefix);
  }, 30_000);

  it('serves subscribers on both workers, and an ingested message once', async () => {
    const a = await WsClient.connect(wsUrl);
    let b = await WsClient.connect(wsUrl);
    for (let i = 0; i < 6 && nodeOf(b.clientId) === nodeOf(a.clientId); i++) {
      await b.close();
      b = await WsClient.connect(wsUrl);
    }
    expect(nodeOf(b.clientId)).not.toBe(nodeOf(a.clientId));
    for (const c of [a, b]) await c.request({ cmd: 'subscribe', channel: 'rw.x' });
    const r = await fresh(`${base}/api/publish`, {
      method: 'POST',
      headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'rw.x', data: 1 }),
    });
    expect(r.status).toBe(200);
    // Ingestion: one worker leads it, so the message is published once.
    const redis = new Redis(REDIS_URL);
    try {
      const deadline = Date.now() + 10_000;
      while ((await redis.publish(INGEST, JSON.stringify({ channel: 'rw.x', data: 2 }))) === 0) {
        if (Date.now() > deadline) throw new Error('no worker took the ingestion channel');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Sentinel: once 3 arrives, 2 has come exactly once.
      await redis.publish(INGEST, JSON.stringify({ channel: 'rw.x', data: 3 }));
    } finally {
      redis.disconnect();
    }
    for (const c of [a, b]) {
      await c.waitFor((f) => f['push'] === 'pub' && f['data'] === 3, 'the sentinel');
      expect(c.pubs('rw.x').map((p) => p['data'])).toEqual([1, 2, 3]);
    }
    await Promise.all([a.close(), b.close()]);
  });

  it('forwards POST /send to the worker streaming the SSE session', async () => {
    const es = new SseReader(`${base}/sse?channel=rw.a`);
    try {
      await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'subscribed');
      const session = es.of('connected')[0]!['session'] as string;
      for (const channel of ['rw.b', 'rw.c']) {
        const r = await fresh(`${base}/send`, {
          method: 'POST',
          headers: { 'X-Herald-Session': session },
          body: JSON.stringify({ id: 1, cmd: 'subscribe', channel }),
        });
        expect(r.status).toBe(200);
        expect(JSON.parse(r.text.split('\n')[0]!)).toMatchObject({ id: 1, result: {} });
      }
      const metrics = await fresh(`${base}/metrics`);
      expect(metrics.text).toMatch(/^herald_send_forwarded_total [1-9]/m);
    } finally {
      es.close();
    }
  });
});
