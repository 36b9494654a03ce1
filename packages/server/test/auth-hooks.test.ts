/**
 * Backend hooks against a real HTTP backend on an ephemeral port: the request/answer contract, each
 * failure's code, per-call timeouts (on a fake clock), a slow call not holding up the others, and
 * persistent connections counted on the server side.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendHooks, HOOK_EVENTS, type BackendHooksOptions, type HookOutcome } from '../src/auth/hooks.js';
import { MetricsTally } from '../src/core/metrics.js';
import { FakeClock } from './support/fake-clock.js';
import { until, withTimeout } from '@herald/test-support';
import { rejectsWith } from './support/tokens.js';

interface HookRequestSeen {
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  res: ServerResponse;
}

interface Backend {
  url: string;
  seen: HookRequestSeen[];
  connections: number;
  server: Server;
}

type Handler = (req: HookRequestSeen) => void;

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backend(handler: Handler): Promise<Backend> {
  const state: Backend = { url: '', seen: [], connections: 0, server: createServer() };
  const server = state.server;
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => (state.connections += 1));
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = {
        path: req.url ?? '',
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>,
        res,
      };
      state.seen.push(seen);
      handler(seen);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/herald`;
  cleanup.push(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  return state;
}

function answer(res: ServerResponse, body: unknown, status = 200): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/** Calls of a BackendHooks made by `hooks`, by outcome (every event). */
const tallies = new WeakMap<BackendHooks, MetricsTally>();
function calls(h: BackendHooks, outcome: HookOutcome): number {
  const tally = tallies.get(h);
  if (tally === undefined) throw new Error('not made by hooks()');
  return HOOK_EVENTS.reduce((n, event) => n + tally.value('herald_hook_calls_total', { event, outcome }), 0);
}

function hooks(url: string, opts: Partial<BackendHooksOptions> = {}): BackendHooks {
  const metrics = new MetricsTally();
  const h = new BackendHooks({ url, timeout: 5_000, metrics, ...opts });
  tallies.set(h, metrics);
  cleanup.push(() => h.close());
  return h;
}

describe('backend hooks: the contract', () => {
  it('POSTs {event, client, user, ...} as JSON to <url>/<event>, with the API key; allow and data come back', async () => {
    const b = await backend(({ body, res }) => {
      if (body['event'] === 'publish') answer(res, { allow: true, data: { text: 'cleaned' } });
      else if (body['event'] === 'rpc') answer(res, { allow: true, data: null });
      else answer(res, { allow: true });
    });
    const h = hooks(b.url, { apiKey: 'hook-key-0123456789abcdef' });
    expect(await h.connect({ client: 'c1', user: '42', transport: 'websocket', remoteAddress: '127.0.0.1' })).toEqual({
      hasData: false,
      data: undefined,
    });
    expect(await h.subscribe({ client: 'c1', user: '42', channel: 'game.7' })).toEqual({
      hasData: false,
      data: undefined,
    });
    expect(await h.publish({ client: 'c1', user: '42', channel: 'game.7', data: { text: 'raw' } })).toEqual({
      hasData: true,
      data: { text: 'cleaned' },
    });
    expect(await h.rpc({ client: 'c1', user: '', method: 'move', data: { x: 1 } })).toEqual({
      hasData: true,
      data: null,
    });

    expect(b.seen.map((s) => s.path)).toEqual([
      '/herald/connect',
      '/herald/subscribe',
      '/herald/publish',
      '/herald/rpc',
    ]);
    expect(b.seen.map((s) => s.body)).toEqual([
      { event: 'connect', client: 'c1', user: '42', transport: 'websocket', remoteAddress: '127.0.0.1' },
      { event: 'subscribe', client: 'c1', user: '42', channel: 'game.7' },
      { event: 'publish', client: 'c1', user: '42', channel: 'game.7', data: { text: 'raw' } },
      { event: 'rpc', client: 'c1', user: '', method: 'move', data: { x: 1 } },
    ]);
    for (const s of b.seen) {
      expect(s.headers['content-type']).toBe('application/json');
      expect(s.headers['authorization']).toBe('apikey hook-key-0123456789abcdef');
    }
    expect(['allowed', 'denied', 'failure', 'timeout'].map((o) => calls(h, o as HookOutcome))).toEqual([4, 0, 0, 0]);
  });

  it('a base URL with a query string keeps it; no API key sends no Authorization', async () => {
    const b = await backend(({ res }) => answer(res, { allow: true }));
    await hooks(`${b.url}/?tenant=t1`).subscribe({ client: 'c', user: 'u', channel: 'x' });
    expect(b.seen[0]?.path).toBe('/herald/subscribe?tenant=t1');
    expect(b.seen[0]?.headers['authorization']).toBeUndefined();
  });

  it('a refusal carries the reason to the client, as one short printable line', async () => {
    const reasons: unknown[] = ['not your turn', 'line1\nline2\u0000', 'r'.repeat(1000), undefined, 42];
    let i = 0;
    const b = await backend(({ res }) => answer(res, { allow: false, reason: reasons[i++] }));
    const h = hooks(b.url);
    const messages: string[] = [];
    for (let k = 0; k < reasons.length; k++) {
      const e = await rejectsWith(
        h.publish({ client: 'c', user: 'u', channel: 'g.1', data: 1 }),
        'HERALD_ERR_HOOK_DENIED',
      );
      messages.push(e.message);
    }
    expect(messages[0]).toBe('not your turn');
    expect(messages[1]).toBe('line1 line2');
    expect(messages[2]?.length).toBe(256);
    expect(messages[3]).toBe('the application refused this publish');
    expect(messages[4]).toBe('the application refused this publish');
    expect(calls(h, 'denied')).toBe(5);
  });

  it('answers outside the contract are failures, never "allow"', async () => {
    const bodies: Array<[string, number]> = [
      ['not json', 200],
      ['[true]', 200],
      ['{"allowed": true}', 200],
      ['{"allow": "yes"}', 200],
      ['{"allow": 1}', 200],
      ['null', 200],
      [JSON.stringify({ allow: true, data: 'x'.repeat(2000) }), 200],
    ];
    let i = 0;
    const b = await backend(({ res }) => {
      const [body, status] = bodies[i++] ?? ['', 200];
      answer(res, body, status);
    });
    const h = hooks(b.url, { maxResponseSize: 1024 });
    for (let k = 0; k < bodies.length; k++) {
      await rejectsWith(h.subscribe({ client: 'c', user: 'u', channel: 'x' }), 'HERALD_ERR_HOOK_BAD_RESPONSE');
    }
    expect(calls(h, 'failure')).toBe(bodies.length);
  });

  it('HTTP errors and an unreachable backend: HOOK_UNAVAILABLE', async () => {
    const statuses = [500, 404, 302, 403, 401];
    let i = 0;
    const b = await backend(({ res }) => answer(res, { allow: true }, statuses[i++]));
    const h = hooks(b.url);
    for (let k = 0; k < statuses.length; k++) {
      const e = await rejectsWith(h.connect({ client: 'c', user: 'u' }), 'HERALD_ERR_HOOK_UNAVAILABLE');
      expect(e.message).toContain(String(statuses[k]));
    }
    // Error answers do not cost a connection each: their bodies are read and the sockets reused
    // (undici may open a second one while the first finishes its response).
    expect(b.connections).toBeLessThanOrEqual(2);

    const gone = await backend(() => undefined);
    const closed = new Promise((r) => gone.server.close(r));
    gone.server.closeAllConnections();
    await closed; // nothing listens on its port any more
    await rejectsWith(hooks(gone.url).connect({ client: 'c', user: 'u' }), 'HERALD_ERR_HOOK_UNAVAILABLE');
  });
});

describe('backend hooks: timeouts and concurrency', () => {
  it('a call that gets no answer within the timeout fails with HOOK_TIMEOUT (fake clock); the pool goes on working', async () => {
    const held: ServerResponse[] = [];
    const b = await backend(({ body, res }) => {
      if (body['client'] === 'slow') held.push(res);
      else answer(res, { allow: true });
    });
    const clock = new FakeClock();
    const h = hooks(b.url, { timeout: 1_000, clock });
    const slow = h.subscribe({ client: 'slow', user: 'u', channel: 'x' });
    await until(() => held.length === 1, 'the backend to receive the slow call');
    clock.advance(999);
    expect(calls(h, 'timeout')).toBe(0);
    clock.advance(1);
    const e = await rejectsWith(slow, 'HERALD_ERR_HOOK_TIMEOUT');
    expect(e.message).toContain('1000 ms');
    expect(calls(h, 'timeout')).toBe(1);
    // Answering late changes nothing; later calls work.
    answer(held[0] as ServerResponse, { allow: true });
    expect(await h.subscribe({ client: 'fast', user: 'u', channel: 'x' })).toEqual({ hasData: false, data: undefined });
  });

  it('one slow call does not hold up 49 others: they are all answered while it is still pending', async () => {
    const order: string[] = [];
    let answered = 0;
    let slowRes: ServerResponse | undefined;
    const b = await backend(({ body, res }) => {
      if (body['client'] === 'slow') {
        slowRes = res;
        return;
      }
      answer(res, { allow: true, data: body['client'] });
      answered += 1;
    });
    const h = hooks(b.url, { maxConnections: 8 });
    const slow = h.rpc({ client: 'slow', user: 'u', method: 'think', data: null }).then(() => order.push('slow'));
    await until(() => slowRes !== undefined, 'the slow call to reach the backend');
    const others = Array.from({ length: 49 }, (_, i) =>
      h.rpc({ client: `c${i}`, user: 'u', method: 'm', data: i }).then((a) => {
        order.push(String(a.data));
        return a;
      }),
    );
    const results = await withTimeout(Promise.all(others), 10_000, '49 fast hook calls while one is slow');
    expect(results.map((a) => a.data)).toEqual(Array.from({ length: 49 }, (_, i) => `c${i}`));
    expect(order).not.toContain('slow');
    expect(answered).toBe(49);
    answer(slowRes as ServerResponse, { allow: true });
    await slow;
    expect(order.at(-1)).toBe('slow');
    expect(order).toHaveLength(50);
  });

  it('persistent connections: 100 calls use no more TCP connections than the pool size', async () => {
    const b = await backend(({ res }) => answer(res, { allow: true }));
    const h = hooks(b.url, { maxConnections: 4 });
    await Promise.all(
      Array.from({ length: 100 }, (_, i) => h.subscribe({ client: `c${i}`, user: 'u', channel: `ch.${i}` })),
    );
    expect(b.seen).toHaveLength(100);
    expect(b.connections).toBeGreaterThan(0);
    expect(b.connections).toBeLessThanOrEqual(4);
    // One after another, they reuse what is open.
    const before = b.connections;
    for (let i = 0; i < 100; i++) await h.publish({ client: 'c', user: 'u', channel: 'ch.x', data: i });
    expect(b.connections).toBe(before);
  });
});
