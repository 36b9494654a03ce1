/**
 * Retries with idempotency keys, each failure injected on purpose: a request cut before the server
 * saw it, an answer lost after the server applied the publication, an answer that never comes
 * (timeout), a 503 from a load balancer, an engine that fails a publication (before or after
 * applying it). Every time the caller sees one success and the channel holds the publication once.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@herald/test-support';
import { API_KEY, startServer, type TestServer } from '@herald/test-support/server';
import { MemoryEngine, type PublishOutcome as EngineOutcome, type PublishRequest } from '@herald/server';
import { HeraldApi, HeraldApiError, type HeraldApiOptions, type RetryEvent } from '@herald/api';
import { startFaultProxy, type Fault, type FaultProxy, type FaultProxyOptions } from './support/fault-proxy.js';
import { countConnections, type ConnectionCounter } from './support/servers.js';

/** Fails the first attempt of each publication whose data says `{"flaky": "before" | "after"}` (applying it first for "after"). */
class FlakyEngine extends MemoryEngine {
  private readonly failed = new Set<string>();
  override async publish(req: PublishRequest): Promise<EngineOutcome> {
    const m = /"flaky":"(before|after)"/.exec(req.data);
    const id = `${req.channel} ${req.idempotencyKey ?? req.data}`;
    if (m === null || this.failed.has(id)) return super.publish(req);
    this.failed.add(id);
    if (m[1] === 'after') await super.publish(req);
    throw new Error(`flaky engine: failing ${m[1]} applying`);
  }
}

let ts: TestServer;
let conns: ConnectionCounter;
beforeAll(async () => {
  ts = await startServer({}, { engine: new FlakyEngine() });
  conns = countConnections(ts.server.httpServer);
});
afterAll(() => ts.close());

/** A client through a fault proxy; `faults[n-1]` is the fault of request n (forward after the list). */
async function through(
  faults: Fault[],
  options: Partial<HeraldApiOptions> = {},
  proxyOptions: FaultProxyOptions = {},
): Promise<{ client: HeraldApi; proxy: FaultProxy; retries: RetryEvent[]; close(): Promise<void> }> {
  const proxy = await startFaultProxy(ts.server.address?.port ?? 0, {
    plan: (n) => faults[n - 1] ?? 'forward',
    ...proxyOptions,
  });
  const retries: RetryEvent[] = [];
  const client = new HeraldApi({
    url: proxy.url,
    apiKey: API_KEY,
    // The fault proxy acts on HTTP requests (socket.test.ts covers the WebSocket path's retries).
    publishOver: 'http',
    backoff: { initial: 10, max: 50 },
    onRetry: (e) => retries.push(e),
    ...options,
  });
  return {
    client,
    proxy,
    retries,
    close: async () => {
      await client.close();
      await proxy.close();
    },
  };
}

/** The data of every publication in a channel's history. */
async function stored(channel: string): Promise<unknown[]> {
  const direct = new HeraldApi({ url: ts.url, apiKey: API_KEY });
  try {
    return (await direct.history(channel)).publications.map((p) => p.data);
  } finally {
    await direct.close();
  }
}

function unique(prefix: string): string {
  return `${prefix}.${randomUUID().slice(0, 8)}`;
}

describe('publish retries with the same idempotency key', () => {
  it('a request cut before the server saw it: sent again, applied once', async () => {
    const t = await through(['cut']);
    const channel = unique('r');
    const r = await t.client.publish(channel, 'x');
    expect(r).toMatchObject({ offset: 1, duplicate: false });
    expect(t.retries.map((e) => e.error.code)).toEqual(['HERALD_ERR_CLIENT_DISCONNECTED']);
    expect(t.proxy.requests.map((q) => q.fault)).toEqual(['cut', 'forward']);
    expect(await stored(channel)).toEqual(['x']);
    await t.close();
  });

  it('an answer lost after the server applied it: the retry gets the first result (duplicate), applied once', async () => {
    const t = await through(['lose-reply']);
    const channel = unique('r');
    const r = await t.client.publish(channel, 'x');
    expect(r).toMatchObject({ offset: 1, duplicate: true });
    expect(t.retries).toHaveLength(1);
    expect(await stored(channel)).toEqual(['x']);
    await t.close();
  });

  it('an answer that never comes: timeout, then the retry, applied once', async () => {
    const t = await through(['stall'], { timeout: 300 });
    const channel = unique('r');
    const r = await t.client.publish(channel, 'x');
    expect(r).toMatchObject({ offset: 1, duplicate: true });
    expect(t.retries.map((e) => e.error.code)).toEqual(['HERALD_ERR_TIMEOUT']);
    expect(await stored(channel)).toEqual(['x']);
    await t.close();
  });

  it("a load balancer's 503 (HTML or Herald's body) is retried; so is a 5xx from the engine", async () => {
    const html = await through(['503', '503']);
    const channel = unique('r');
    expect(await html.client.publish(channel, 'a')).toMatchObject({ offset: 1, duplicate: false });
    expect(html.retries.map((e) => [e.error.code, e.error.status])).toEqual([
      ['HERALD_ERR_CLIENT_DISCONNECTED', 503],
      ['HERALD_ERR_CLIENT_DISCONNECTED', 503],
    ]);
    await html.close();

    const json = await through(['503'], {}, { heraldBody: true });
    expect(await json.client.publish(channel, 'b')).toMatchObject({ offset: 2 });
    expect(json.retries.map((e) => e.error.code)).toEqual(['HERALD_ERR_ENGINE_UNAVAILABLE']);
    await json.close();

    // The engine fails after applying (as a Redis reply that timed out): the retry finds the key.
    const engine = await through([]);
    expect(await engine.client.publish(channel, { flaky: 'after' })).toMatchObject({ offset: 3, duplicate: true });
    expect(await engine.client.publish(channel, { flaky: 'before' })).toMatchObject({ offset: 4, duplicate: false });
    expect(engine.retries.map((e) => [e.error.code, e.error.status])).toEqual([
      ['HERALD_ERR_ENGINE_UNAVAILABLE', 503],
      ['HERALD_ERR_ENGINE_UNAVAILABLE', 503],
    ]);
    expect(await stored(channel)).toEqual(['a', 'b', { flaky: 'after' }, { flaky: 'before' }]);
    await engine.close();
  });

  it("keeps the caller's own idempotency key: a second call with it publishes nothing", async () => {
    const t = await through(['lose-reply']);
    const channel = unique('r');
    const key = `order-${randomUUID()}`;
    expect(await t.client.publish(channel, 'once', { idempotencyKey: key })).toMatchObject({ duplicate: true });
    expect(await t.client.publish(channel, 'once', { idempotencyKey: key })).toMatchObject({
      offset: 1,
      duplicate: true,
    });
    expect(await stored(channel)).toEqual(['once']);
    await t.close();
  });

  it('gives up after `retries`, with the last error and the number of attempts', async () => {
    const t = await through(['cut', 'cut', 'cut', 'cut'], { retries: 2 });
    const err = await t.client.publish(unique('r'), 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeraldApiError);
    expect(err).toMatchObject({ code: 'HERALD_ERR_CLIENT_DISCONNECTED', attempts: 3, retriable: true, status: 0 });
    expect(t.proxy.requests).toHaveLength(3);
    await t.close();
  });
});

describe('publish without an idempotency key (idempotencyKey: null)', () => {
  it('is not sent again once it may have reached the server', async () => {
    const t = await through(['lose-reply']);
    const channel = unique('r');
    const err = await t.client.publish(channel, 'x', { idempotencyKey: null }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'HERALD_ERR_CLIENT_DISCONNECTED', attempts: 1 });
    expect(t.retries).toEqual([]);
    // It was applied: a retry would have published it twice.
    expect(await stored(channel)).toEqual(['x']);
    await t.close();
  });

  it('is sent again when no connection could be made', async () => {
    const port = await freePort();
    let late: TestServer | undefined;
    const retries: RetryEvent[] = [];
    const client = new HeraldApi({
      url: `http://127.0.0.1:${port}`,
      apiKey: API_KEY,
      backoff: { initial: 20, max: 100 },
      retries: 50,
      onRetry: (e) => {
        retries.push(e);
        // The server comes up after the first refusal.
        if (retries.length === 1) void startServer({ port }).then((s) => (late = s));
      },
    });
    const r = await client.publish('late.a', 'x', { idempotencyKey: null });
    expect(r).toMatchObject({ offset: 1, duplicate: false });
    expect(retries[0]?.error.message).toMatch(/ECONNREFUSED/);
    await client.close();
    await late?.close();
  });
});

describe('publishMany and broadcast', () => {
  it('sends a batch whose answer was lost again whole: every item once, in order', async () => {
    const t = await through(['forward', 'lose-reply'], { batchSize: 10 });
    const channel = unique('m');
    const items = Array.from({ length: 30 }, (_, i) => ({ channel, data: i }));
    const out = await t.client.publishMany(items);
    expect(out.map((o) => o.ok && o.offset)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // The second batch was applied, then its answer lost: its items come back as duplicates.
    expect(out.map((o) => o.ok && o.duplicate)).toEqual(Array.from({ length: 30 }, (_, i) => i >= 10 && i < 20));
    expect(out.every((o) => typeof o.idempotencyKey === 'string')).toBe(true);
    expect(t.proxy.requests).toHaveLength(4);
    expect(await stored(channel)).toEqual(items.map((i) => i.data));
    await t.close();
  });

  it('sends again the items the engine failed (same keys), alone, and reports 4xx items without retrying them', async () => {
    const t = await through([]);
    const channel = unique('m');
    const out = await t.client.publishMany<unknown>([
      { channel, data: 0 },
      { channel, data: { flaky: 'after' } },
      { channel: 'bad..channel', data: 2 },
      { channel, data: { flaky: 'before' } },
      { channel, data: 4 },
    ]);
    expect(out.map((o) => (o.ok ? [o.offset, o.duplicate] : o.error.code))).toEqual([
      [1, false],
      [2, true],
      'HERALD_ERR_CHANNEL_INVALID',
      [4, false],
      [3, false],
    ]);
    expect(out[2]).toMatchObject({ ok: false, channel: 'bad..channel', error: { status: 400, retriable: false } });
    expect(t.retries.map((e) => [e.method, e.error.code])).toEqual([['batch', 'HERALD_ERR_ENGINE_UNAVAILABLE']]);
    // The retried item landed after item 4 (offsets follow the order of application).
    expect(await stored(channel)).toEqual([0, { flaky: 'after' }, 4, { flaky: 'before' }]);
    await t.close();
  });

  it('halves a batch the server finds too large (its maxApiBodySize below maxBatchBytes)', async () => {
    const small = await startServer({ limits: { maxApiBodySize: 4096 } });
    const seen = countConnections(small.server.httpServer);
    const client = new HeraldApi({ url: small.url, apiKey: API_KEY });
    const items = Array.from({ length: 100 }, (_, i) => ({ channel: 'big.a', data: { i, pad: 'x'.repeat(100) } }));
    const out = await client.publishMany(items);
    expect(out.every((o) => o.ok)).toBe(true);
    expect(out.map((o) => o.ok && o.offset)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    // 100 items of ~170 bytes: refused at 100, 50 and 25 items, then sent 13 or 12 at a time.
    expect(seen.requests).toBe(1 + 2 + 4 + 8);
    await client.close();
    await small.close();
  });

  it('broadcast: one key for every channel, failed channels sent again, bad ones reported', async () => {
    const t = await through([]);
    const [a, b] = [unique('b'), unique('b')];
    const out = await t.client.broadcast([a, 'x.**', b], { flaky: 'before' });
    expect(out.map((o) => (o.ok ? [o.channel, o.offset, o.duplicate] : [o.channel, o.error.code]))).toEqual([
      [a, 1, false],
      ['x.**', 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED'],
      [b, 1, false],
    ]);
    expect(new Set(out.map((o) => o.idempotencyKey)).size).toBe(1);
    expect(t.retries.map((e) => [e.method, e.error.code])).toEqual([['broadcast', 'HERALD_ERR_ENGINE_UNAVAILABLE']]);
    await t.close();

    // Its answer lost: sent again whole, and each channel reports the first result.
    const lost = await through(['lose-reply']);
    const again = await lost.client.broadcast([a, b], 'second');
    expect(again.map((o) => o.ok && [o.offset, o.duplicate])).toEqual([
      [2, true],
      [2, true],
    ]);
    expect(await stored(a)).toEqual([{ flaky: 'before' }, 'second']);
    expect(await stored(b)).toEqual([{ flaky: 'before' }, 'second']);
    await lost.close();
  });
});

describe('other methods', () => {
  it('retries reads after a cut connection and a 503', async () => {
    const before = conns.requests;
    const t = await through(['cut', '503']);
    const info = await t.client.info();
    expect(info.nodes).toHaveLength(1);
    expect(t.retries.map((e) => e.attempt)).toEqual([1, 2]);
    // Only the third attempt reached the server.
    expect(conns.requests - before).toBe(1);
    await t.close();
  });
});
