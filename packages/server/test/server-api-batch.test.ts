/**
 * `POST /api/batch` on the memory engine: replies in command order, per-command errors, envelope
 * errors that apply nothing, publication order within one channel, auth and the body limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LogFn, Logger } from '../src/core/logger.js';
import { api, API_KEY, startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';

const MAX_API_BODY = 200_000;

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    limits: { maxApiBodySize: MAX_API_BODY },
    namespaces: { nohist: { historySize: 0 }, order: { historySize: 1000 } },
  });
});
afterAll(async () => {
  await srv.close();
});

const batch = (base: string, commands: unknown, init: { key?: string | null } = {}) =>
  api(base, 'batch', { commands }, init);

const publishes = (channel: string, n: number): Frame[] =>
  Array.from({ length: n }, (_, i) => ({ publish: { channel, data: i + 1 } }));

async function offsetOf(channel: string): Promise<number> {
  const h = await api(srv.url, 'history', { channel, limit: 0 });
  expect(h.status).toBe(200);
  return h.body.offset as number;
}

describe('server API: batch', () => {
  it('publishes in command order: offsets and deliveries follow the commands', async () => {
    const c = await WsClient.subscribed(srv.wsUrl, 'bat.a', 'bat.b');
    const commands = [
      { publish: { channel: 'bat.a', data: 'a1' } },
      { publish: { channel: 'bat.b', data: 'b1' } },
      { publish: { channel: 'bat.a', data: 'a2' } },
      { publish: { channel: 'bat.a', data: 'a3' } },
      { publish: { channel: 'bat.b', data: 'b2' } },
    ];
    const r = await batch(srv.url, commands);
    expect(r.status).toBe(200);
    const replies = r.body.replies as Frame[];
    expect(replies.map((x) => [x['publish'].channel, x['publish'].offset, x['publish'].duplicate])).toEqual([
      ['bat.a', 1, false],
      ['bat.b', 1, false],
      ['bat.a', 2, false],
      ['bat.a', 3, false],
      ['bat.b', 2, false],
    ]);
    const pubs = await c.waitForCount((f) => f['push'] === 'pub', 5, 'the five publications');
    const byStream = (s: string) => pubs.filter((p) => p['stream'] === s).map((p) => [p['offset'], p['data']]);
    expect(byStream('bat.a')).toEqual([
      [1, 'a1'],
      [2, 'a2'],
      [3, 'a3'],
    ]);
    expect(byStream('bat.b')).toEqual([
      [1, 'b1'],
      [2, 'b2'],
    ]);
    // Sentinel: nothing was delivered twice.
    await api(srv.url, 'publish', { channel: 'bat.a', data: 'sentinel' });
    await c.waitFor((f) => f['push'] === 'pub' && f['data'] === 'sentinel', 'sentinel');
    expect(c.pubs().map((p) => p['data'])).toEqual(['a1', 'b1', 'a2', 'a3', 'b2', 'sentinel']);
    await c.close();
  });

  it('answers each command of a mixed batch, an error for the one that fails', async () => {
    await api(srv.url, 'publish', { channel: 'mix.hist', data: 'before' });
    const c = await WsClient.subscribed(srv.wsUrl, 'mix.live');
    const res = await fetch(`${srv.url}/api/batch`, {
      method: 'POST',
      headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        commands: [
          { publish: { channel: 'mix.live', data: { n: 1 } } },
          { history: { channel: 'mix.hist' } },
          { channels: { pattern: 'mix.*' } },
          { publish: { channel: 'bad channel', data: 1 } },
          { history: { channel: 'nohist.x' } },
          { broadcast: { channels: ['mix.live', 'mix.other'], data: 'b' } },
          { disconnect: {} },
          { publish: { channel: 'mix.live', data: { n: 2 } } },
        ],
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const text = await res.text();
    expect(res.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    const { replies } = JSON.parse(text) as { replies: Frame[] };
    expect(replies).toHaveLength(8);
    expect(replies[0]).toEqual({
      publish: { channel: 'mix.live', epoch: expect.any(String), offset: 1, duplicate: false },
    });
    expect(replies[1]).toEqual({
      history: {
        stream: 'mix.hist',
        epoch: expect.any(String),
        offset: 1,
        publications: [{ channel: 'mix.hist', offset: 1, data: 'before' }],
      },
    });
    expect(replies[2]).toEqual({ channels: { channels: [{ stream: 'mix.live', subscribers: 1 }] } });
    expect(replies[3]).toEqual({ error: { code: 'HERALD_ERR_CHANNEL_INVALID', message: expect.any(String) } });
    expect(replies[4]).toEqual({ error: { code: 'HERALD_ERR_HISTORY_DISABLED', message: expect.any(String) } });
    expect(replies[5]?.['broadcast'].results.map((x: Frame) => [x['channel'], x['offset']])).toEqual([
      ['mix.live', 2],
      ['mix.other', 1],
    ]);
    expect(replies[6]).toEqual({ error: { code: 'HERALD_ERR_API_BAD_REQUEST', message: 'give "client" or "user"' } });
    expect(replies[7]).toMatchObject({ publish: { channel: 'mix.live', offset: 3 } });
    const pubs = await c.waitForCount((f) => f['push'] === 'pub', 3, 'the three publications');
    expect(pubs.map((p) => [p['offset'], p['data']])).toEqual([
      [1, { n: 1 }],
      [2, 'b'],
      [3, { n: 2 }],
    ]);
    await c.close();
  });

  it('applies an idempotency key across the commands of one batch', async () => {
    const r = await batch(srv.url, [
      { publish: { channel: 'idem.batch', data: 1, idempotencyKey: 'k' } },
      { publish: { channel: 'idem.batch', data: 1, idempotencyKey: 'k' } },
      { publish: { channel: 'idem.batch', data: 2 } },
    ]);
    expect(r.body.replies.map((x: Frame) => [x['publish'].offset, x['publish'].duplicate])).toEqual([
      [1, false],
      [1, true],
      [2, false],
    ]);
  });

  it('publishes 1000 commands to one channel in order', async () => {
    const c = await WsClient.subscribed(srv.wsUrl, 'order.x');
    const r = await batch(srv.url, publishes('order.x', 1000));
    expect(r.status).toBe(200);
    const offsets = (r.body.replies as Frame[]).map((x) => x['publish'].offset as number);
    expect(offsets).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    const pubs = await c.waitForCount((f) => f['push'] === 'pub', 1000, 'the 1000 publications');
    expect(pubs.map((p) => [p['offset'], p['data']])).toEqual(offsets.map((o) => [o, o]));
    const h = await api(srv.url, 'history', { channel: 'order.x', limit: 1000 });
    expect(h.body.publications.map((p: Frame) => p['data'])).toEqual(offsets);
    await c.close();
  });

  it('refuses an invalid envelope with 400, naming the command, and applies none of it', async () => {
    const ok = { publish: { channel: 'env.x', data: 1 } };
    const cases: [unknown, RegExp][] = [
      [undefined, /"commands" must be an array/],
      ['publish', /"commands" must be an array/],
      [{ publish: {} }, /"commands" must be an array/],
      [[], /"commands" has 0 commands/],
      [publishes('env.x', 1001), /"commands" has 1001 commands; give 1 to 1000/],
      [[ok, ok, 5], /^commands\[2\] must be an object/],
      [[ok, null], /^commands\[1\] must be an object/],
      [[ok, [ok]], /^commands\[1\] must be an object/],
      [[ok, {}], /^commands\[1\] must have exactly one key/],
      [[ok, { publish: ok.publish, history: { channel: 'env.x' } }], /^commands\[1\] must have exactly one key/],
      [[ok, ok, ok, { nope: {} }], /^commands\[3\]: no API method "nope"/],
      [[ok, { subscribe: { channel: 'env.x' } }], /^commands\[1\]: no API method "subscribe"/],
      [[ok, { constructor: {} }], /^commands\[1\]: no API method "constructor"/],
      [[ok, { batch: { commands: [ok] } }], /^commands\[1\]: a batch cannot contain a batch/],
      [[ok, { publish: 'env.x' }], /^commands\[1\]\.publish must be a JSON object/],
      [[ok, { history: null }], /^commands\[1\]\.history must be a JSON object/],
      [[ok, { info: [] }], /^commands\[1\]\.info must be a JSON object/],
    ];
    for (const [commands, message] of cases) {
      const r = await batch(srv.url, commands);
      const what = JSON.stringify(commands)?.slice(0, 80) ?? 'undefined';
      expect([r.status, r.body.error.code], what).toEqual([400, 'HERALD_ERR_API_BAD_REQUEST']);
      expect(r.body.error.message, what).toMatch(message);
    }
    // "__proto__" as a key (JSON.parse makes it an own key) is refused like any unknown method.
    const proto = await api(srv.url, 'batch', undefined, { raw: '{"commands":[{"__proto__":{}}]}' });
    expect([proto.status, proto.body.error.message]).toEqual([400, 'commands[0]: no API method "__proto__"']);
    for (const raw of ['[]', '"x"', '{"commands":']) {
      const r = await api(srv.url, 'batch', undefined, { raw });
      expect([r.status, r.body.error.code], raw).toEqual([400, 'HERALD_ERR_API_BAD_REQUEST']);
    }
    expect(await offsetOf('env.x')).toBe(0);
  });

  it('requires the API key', async () => {
    for (const key of [null, 'wrong-key-0123456789']) {
      const r = await batch(srv.url, publishes('auth.batch', 2), { key });
      expect([r.status, r.body.error.code], String(key)).toEqual([401, 'HERALD_ERR_API_UNAUTHORIZED']);
    }
    expect(await offsetOf('auth.batch')).toBe(0);
  });

  it('applies the body limit to the whole batch', async () => {
    const commands = Array.from({ length: 100 }, () => ({ publish: { channel: 'big.batch', data: 'x'.repeat(2000) } }));
    expect(JSON.stringify({ commands }).length).toBeGreaterThan(MAX_API_BODY);
    const r = await batch(srv.url, commands);
    expect([r.status, r.body.error.code]).toEqual([413, 'HERALD_ERR_API_BODY_TOO_LARGE']);
    expect(await offsetOf('big.batch')).toBe(0);
  });
});

describe('server API: batch logging', () => {
  interface Entry {
    level: string;
    obj: unknown;
    msg: unknown;
  }
  const entries: Entry[] = [];
  const at =
    (level: string): LogFn =>
    (obj: unknown, msg?: unknown) =>
      void entries.push({ level, obj, msg });
  const logger: Logger = {
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: () => logger,
  };

  it('logs a refused batch once, and nothing per failing command', async () => {
    const own = await startServer({}, { logger });
    try {
      entries.length = 0;
      const unauthorized = await batch(own.url, publishes('log.x', 1000), { key: null });
      expect(unauthorized.status).toBe(401);
      expect(entries).toEqual([
        { level: 'info', obj: expect.objectContaining({ method: 'batch' }), msg: 'api: unauthorized' },
      ]);
      entries.length = 0;
      // 1000 commands that each fail with a reply error: no log line per command.
      const failing = Array.from({ length: 1000 }, () => ({ publish: { channel: 'bad channel', data: 1 } }));
      const r = await batch(own.url, failing);
      expect(r.status).toBe(200);
      expect(r.body.replies).toHaveLength(1000);
      expect(new Set(r.body.replies.map((x: Frame) => x['error'].code))).toEqual(
        new Set(['HERALD_ERR_CHANNEL_INVALID']),
      );
      // An invalid envelope fails once, as any other 400 of the API (which are not logged).
      const invalid = await batch(own.url, [...failing.slice(1), { nope: {} }]);
      expect(invalid.status).toBe(400);
      expect(entries).toEqual([]);
    } finally {
      await own.close();
    }
  });
});
