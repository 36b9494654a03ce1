import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@herald/test-support';
import { api, API_KEY, startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { FakeClock } from './support/fake-clock.js';

const MAX_API_BODY = 4096;

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    limits: { maxApiBodySize: MAX_API_BODY },
    namespaces: { small: { maxMessageSize: 64 }, nohist: { historySize: 0 } },
  });
});
afterAll(async () => {
  await srv.close();
});

/** A raw `fetch` to the server API, for the cases where headers or the body shape matter. */
async function post(
  base: string,
  path: string,
  init: { headers?: Record<string, string>; body?: RequestInit['body']; method?: string; duplex?: 'half' } = {},
): Promise<{ status: number; headers: Headers; body: Frame }> {
  const res = await fetch(`${base}${path}`, { method: init.method ?? 'POST', ...init } as RequestInit);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text === '' ? {} : JSON.parse(text)) as Frame };
}

const isPub = (data: unknown) => (f: Frame) =>
  f['push'] === 'pub' && JSON.stringify(f['data']) === JSON.stringify(data);

describe('server API: publish', () => {
  it('publishes to subscribers and returns the position', async () => {
    const c = await WsClient.subscribed(srv.wsUrl, 'pub.a');
    const r = await api(srv.url, 'publish', { channel: 'pub.a', data: { hello: 'world' } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ channel: 'pub.a', epoch: expect.any(String), offset: 1, duplicate: false });
    const f = await c.waitFor(isPub({ hello: 'world' }), 'publication');
    expect(f).toMatchObject({ stream: 'pub.a', channel: 'pub.a', offset: 1, epoch: r.body.epoch });
    const r2 = await api(srv.url, 'publish', { channel: 'pub.a', data: 'second' });
    expect(r2.body).toMatchObject({ offset: 2, epoch: r.body.epoch, duplicate: false });
    await c.close();
  });

  it('accepts application/json with a charset', async () => {
    const r = await api(
      srv.url,
      'publish',
      { channel: 'pub.charset', data: 1 },
      { headers: { 'Content-Type': 'application/json; charset=utf-8' } },
    );
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ channel: 'pub.charset', offset: 1 });
  });
});

describe('server API: broadcast', () => {
  it('publishes one data to many channels, with a per-channel error entry for a bad one', async () => {
    const c = await WsClient.subscribed(srv.wsUrl, 'bc.one', 'bc.two');
    const r = await api(srv.url, 'broadcast', {
      channels: ['bc.one', 'bad channel', 'bc.two', 'bc.**'],
      data: { n: 1 },
    });
    expect(r.status).toBe(200);
    expect(r.body.results).toHaveLength(4);
    expect(r.body.results[0]).toMatchObject({ channel: 'bc.one', offset: 1, duplicate: false });
    expect(r.body.results[1]).toEqual({
      channel: 'bad channel',
      error: { code: 'HERALD_ERR_CHANNEL_INVALID', message: expect.any(String) },
    });
    expect(r.body.results[2]).toMatchObject({ channel: 'bc.two', offset: 1, duplicate: false });
    expect(r.body.results[3].error.code).toBe('HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED');
    await c.waitFor((f) => f['push'] === 'pub' && f['channel'] === 'bc.one', 'bc.one publication');
    await c.waitFor((f) => f['push'] === 'pub' && f['channel'] === 'bc.two', 'bc.two publication');
    // Sentinel: each channel got the broadcast exactly once.
    await api(srv.url, 'publish', { channel: 'bc.two', data: 'sentinel' });
    await c.waitFor(isPub('sentinel'), 'sentinel');
    expect(c.pubs('bc.one').map((p) => p['data'])).toEqual([{ n: 1 }]);
    expect(c.pubs('bc.two').map((p) => p['data'])).toEqual([{ n: 1 }, 'sentinel']);
    await c.close();
  });

  it('applies an idempotency key per channel', async () => {
    const first = await api(srv.url, 'broadcast', { channels: ['bci.a', 'bci.b'], data: 1, idempotencyKey: 'bk' });
    expect(first.body.results.map((x: Frame) => [x['offset'], x['duplicate']])).toEqual([
      [1, false],
      [1, false],
    ]);
    const again = await api(srv.url, 'broadcast', {
      channels: ['bci.a', 'bci.b', 'bci.c'],
      data: 1,
      idempotencyKey: 'bk',
    });
    expect(again.body.results.map((x: Frame) => [x['channel'], x['offset'], x['duplicate']])).toEqual([
      ['bci.a', 1, true],
      ['bci.b', 1, true],
      ['bci.c', 1, false],
    ]);
  });

  it('refuses a missing, empty or non-array channel list', async () => {
    // 1001 one-letter names still fit in the body limit of this server.
    for (const channels of [undefined, [], 'bc.one', new Array<string>(1001).fill('a')]) {
      const r = await api(srv.url, 'broadcast', { channels, data: 1 });
      expect(r.status, JSON.stringify(channels)?.slice(0, 40)).toBe(400);
      expect(r.body.error.code).toBe('HERALD_ERR_API_BAD_REQUEST');
    }
  });
});

describe('server API: history', () => {
  let epoch: string;
  beforeAll(async () => {
    for (let i = 1; i <= 5; i++) {
      const r = await api(srv.url, 'publish', { channel: 'hist.x', data: i });
      epoch = r.body.epoch as string;
    }
  });

  const datas = (r: { body: Frame }): unknown[] => (r.body['publications'] as Frame[]).map((p) => p['data']);

  it('reads forward, with the stream position', async () => {
    const r = await api(srv.url, 'history', { channel: 'hist.x' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ stream: 'hist.x', epoch, offset: 5 });
    expect(r.body.publications[0]).toEqual({ channel: 'hist.x', offset: 1, data: 1 });
    expect(r.body.publications.map((p: Frame) => p['offset'])).toEqual([1, 2, 3, 4, 5]);
  });

  it('reads in reverse and with a limit', async () => {
    expect(datas(await api(srv.url, 'history', { channel: 'hist.x', reverse: true }))).toEqual([5, 4, 3, 2, 1]);
    expect(datas(await api(srv.url, 'history', { channel: 'hist.x', limit: 2 }))).toEqual([1, 2]);
    expect(datas(await api(srv.url, 'history', { channel: 'hist.x', limit: 2, reverse: true }))).toEqual([5, 4]);
    expect(datas(await api(srv.url, 'history', { channel: 'hist.x', limit: 0 }))).toEqual([]);
  });

  it('reads since a position given as an object or as "epoch:offset" text', async () => {
    const obj = await api(srv.url, 'history', { channel: 'hist.x', since: { epoch, offset: 3 } });
    expect(obj.status).toBe(200);
    expect(datas(obj)).toEqual([4, 5]);
    const text = await api(srv.url, 'history', { channel: 'hist.x', since: `${epoch}:3` });
    expect(text.status).toBe(200);
    expect(datas(text)).toEqual([4, 5]);
    const limited = await api(srv.url, 'history', { channel: 'hist.x', since: `${epoch}:1`, limit: 2 });
    expect(datas(limited)).toEqual([2, 3]);
    const atTop = await api(srv.url, 'history', { channel: 'hist.x', since: `${epoch}:5` });
    expect(datas(atTop)).toEqual([]);
    // Another epoch: nothing, and the position shows the current epoch.
    const other = await api(srv.url, 'history', { channel: 'hist.x', since: { epoch: 'someother', offset: 3 } });
    expect(other.body).toMatchObject({ epoch, offset: 5, publications: [] });
  });

  it('reads a subtree stream with its own offsets', async () => {
    await api(srv.url, 'publish', { channel: 'tree', data: 'a' });
    await api(srv.url, 'publish', { channel: 'tree.b', data: 'b' });
    await api(srv.url, 'publish', { channel: 'tree.b.c', data: 'c' });
    await api(srv.url, 'publish', { channel: 'treeish', data: 'no' });
    const all = await api(srv.url, 'history', { channel: 'tree.**' });
    expect(all.body).toMatchObject({ stream: 'tree.**', offset: 3 });
    expect(all.body.publications.map((p: Frame) => [p['channel'], p['offset'], p['data']])).toEqual([
      ['tree', 1, 'a'],
      ['tree.b', 2, 'b'],
      ['tree.b.c', 3, 'c'],
    ]);
    const sub = await api(srv.url, 'history', { channel: 'tree.b.**' });
    expect(sub.body.publications.map((p: Frame) => [p['channel'], p['offset']])).toEqual([
      ['tree.b', 1],
      ['tree.b.c', 2],
    ]);
    const exact = await api(srv.url, 'history', { channel: 'tree.b' });
    expect(exact.body.publications.map((p: Frame) => [p['channel'], p['offset']])).toEqual([['tree.b', 1]]);
  });

  it('refuses bad arguments with codes', async () => {
    const cases: [Record<string, unknown>, number, string][] = [
      [{ channel: 'hist.x', since: 'nope' }, 400, 'HERALD_ERR_CURSOR_INVALID'],
      [{ channel: 'hist.x', since: { epoch: 'e', offset: -1 } }, 400, 'HERALD_ERR_CURSOR_INVALID'],
      [{ channel: 'hist.x', limit: -1 }, 400, 'HERALD_ERR_API_BAD_REQUEST'],
      [{ channel: 'hist.x', limit: 1.5 }, 400, 'HERALD_ERR_API_BAD_REQUEST'],
      [{ channel: 'hist.x', reverse: 'yes' }, 400, 'HERALD_ERR_API_BAD_REQUEST'],
      [{ channel: 'a.**.b' }, 400, 'HERALD_ERR_CHANNEL_INVALID'],
      [{}, 400, 'HERALD_ERR_CHANNEL_INVALID'],
      [{ channel: 'nohist.x' }, 400, 'HERALD_ERR_HISTORY_DISABLED'],
    ];
    for (const [body, status, code] of cases) {
      const r = await api(srv.url, 'history', body);
      expect([r.status, r.body.error?.code], JSON.stringify(body)).toEqual([status, code]);
      expect(typeof r.body.error.message).toBe('string');
    }
  });
});

describe('server API: channels', () => {
  it('lists streams with subscriber counts, filtered exactly or by prefix', async () => {
    const a = await WsClient.subscribed(srv.wsUrl, 'chat.one', 'chat.two', 'chatter.x');
    const b = await WsClient.subscribed(srv.wsUrl, 'chat.one', 'chat.deep.**');
    const all = await api(srv.url, 'channels', {});
    expect(all.status).toBe(200);
    expect(all.body.channels).toEqual(
      expect.arrayContaining([
        { stream: 'chat.one', subscribers: 2 },
        { stream: 'chat.two', subscribers: 1 },
        { stream: 'chatter.x', subscribers: 1 },
        { stream: 'chat.deep.**', subscribers: 1 },
      ]),
    );
    const exact = await api(srv.url, 'channels', { pattern: 'chat.one' });
    expect(exact.body).toEqual({ channels: [{ stream: 'chat.one', subscribers: 2 }] });
    const prefix = await api(srv.url, 'channels', { pattern: 'chat.*' });
    const sorted = [...(prefix.body.channels as { stream: string }[])].sort((x, y) => x.stream.localeCompare(y.stream));
    expect(sorted).toEqual([
      { stream: 'chat.deep.**', subscribers: 1 },
      { stream: 'chat.one', subscribers: 2 },
      { stream: 'chat.two', subscribers: 1 },
    ]);
    const none = await api(srv.url, 'channels', { pattern: 'nobody.here' });
    expect(none.body).toEqual({ channels: [] });
    const badPattern = await api(srv.url, 'channels', { pattern: 3 });
    expect([badPattern.status, badPattern.body.error.code]).toEqual([400, 'HERALD_ERR_API_BAD_REQUEST']);
    // Unsubscribing one client lowers the count (the reply comes after the hub forgot it).
    await b.request({ cmd: 'unsubscribe', channel: 'chat.one' });
    expect((await api(srv.url, 'channels', { pattern: 'chat.one' })).body.channels).toEqual([
      { stream: 'chat.one', subscribers: 1 },
    ]);
    await a.close();
    await b.close();
  });
});

describe('server API: info', () => {
  it('reports this node, with a connection count that follows WebSocket clients', async () => {
    const own = await startServer();
    try {
      const count = async () => {
        const r = await api(own.url, 'info', {});
        expect(r.status).toBe(200);
        expect(r.body.nodes).toHaveLength(1);
        return r.body.nodes[0].connections as number;
      };
      const r0 = await api(own.url, 'info', {});
      expect(r0.body.nodes[0]).toMatchObject({
        id: expect.any(String),
        engine: 'memory',
        version: expect.any(String),
        connections: 0,
      });
      const a = await WsClient.connect(own.wsUrl);
      const b = await WsClient.connect(own.wsUrl);
      expect(await count()).toBe(2);
      await a.close();
      // The server sees the close on its own schedule: await the condition, bounded.
      await until(async () => (await count()) === 1, 'connections to drop to 1');
      await b.close();
      await until(async () => (await count()) === 0, 'connections to drop to 0');
    } finally {
      await own.close();
    }
  });
});

describe('server API: disconnect', () => {
  it('disconnects one client by id, with or without reconnect, leaving others connected', async () => {
    const gone = await WsClient.subscribed(srv.wsUrl, 'dc.x');
    const bounce = await WsClient.subscribed(srv.wsUrl, 'dc.x');
    const stay = await WsClient.subscribed(srv.wsUrl, 'dc.x');

    const r1 = await api(srv.url, 'disconnect', { client: gone.clientId });
    expect(r1).toEqual({ status: 200, body: { disconnected: 1 } });
    const push1 = await gone.waitFor((f) => f['push'] === 'disconnect', 'disconnect push');
    expect(push1).toMatchObject({ code: 3500, reconnect: false });
    expect((await gone.closed).code).toBe(3500);

    const r2 = await api(srv.url, 'disconnect', { client: bounce.clientId, reconnect: true });
    expect(r2.body).toEqual({ disconnected: 1 });
    const push2 = await bounce.waitFor((f) => f['push'] === 'disconnect', 'disconnect push');
    expect(push2).toMatchObject({ code: 3004, reconnect: true });
    expect((await bounce.closed).code).toBe(3004);

    // Unknown client: nothing happens.
    expect((await api(srv.url, 'disconnect', { client: 'no-such-client' })).body).toEqual({ disconnected: 0 });

    // Sentinel: the third client still receives publications and was never told to go.
    await api(srv.url, 'publish', { channel: 'dc.x', data: 'still here' });
    await stay.waitFor(isPub('still here'), 'publication to the unaffected client');
    expect(stay.frames.filter((f) => f['push'] === 'disconnect')).toEqual([]);
    expect(stay.closeCode).toBeUndefined();
    expect((await stay.request({ cmd: 'ping' }))['result']).toEqual({});
    await stay.close();
  });

  it('refuses a request without a target or with wrong types', async () => {
    const cases: Record<string, unknown>[] = [{}, { client: 5 }, { user: false }, { client: 'x', reconnect: 'yes' }];
    for (const body of cases) {
      const r = await api(srv.url, 'disconnect', body);
      expect([r.status, r.body.error.code], JSON.stringify(body)).toEqual([400, 'HERALD_ERR_API_BAD_REQUEST']);
    }
  });
});

describe('server API: authentication and routing', () => {
  it('answers 401 with a WWW-Authenticate header for a missing, wrong or malformed key', async () => {
    const headerCases: (string | undefined)[] = [
      undefined,
      'apikey wrong-key',
      `Bearer ${API_KEY}`,
      'apikey',
      `apikey ${API_KEY} extra`,
      `apikey ${API_KEY}x`,
      API_KEY,
    ];
    for (const auth of headerCases) {
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      if (auth !== undefined) headers['Authorization'] = auth;
      const r = await post(srv.url, '/api/publish', { headers, body: JSON.stringify({ channel: 'auth.x', data: 1 }) });
      expect(r.status, String(auth)).toBe(401);
      expect(r.body.error.code).toBe('HERALD_ERR_API_UNAUTHORIZED');
      expect(r.headers.get('www-authenticate')).toMatch(/^apikey/i);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    }
    // Nothing was published by the refused requests.
    const h = await api(srv.url, 'history', { channel: 'auth.x' });
    expect(h.body).toMatchObject({ offset: 0, publications: [] });
    // The scheme is case-insensitive.
    const ok = await post(srv.url, '/api/info', {
      headers: { Authorization: `APIKEY ${API_KEY}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(ok.status).toBe(200);
  });

  it('answers 404 for an unknown method, 405 for a GET', async () => {
    for (const name of ['nope', 'constructor', '__proto__', 'publish/extra', '']) {
      const r = await api(srv.url, name, {});
      expect([r.status, r.body.error.code], name).toEqual([404, 'HERALD_ERR_API_NOT_FOUND']);
    }
    const g = await post(srv.url, '/api/publish', { method: 'GET', headers: { Authorization: `apikey ${API_KEY}` } });
    expect(g.status).toBe(405);
    expect(g.body.error.code).toBe('HERALD_ERR_API_METHOD_NOT_ALLOWED');
    expect(g.headers.get('allow')).toBe('POST');
  });
});

describe('server API: bad bodies', () => {
  it('answers 400 with a code for bodies that are not a valid request', async () => {
    const raws: [string, string][] = [
      ['{not json', 'HERALD_ERR_API_BAD_REQUEST'],
      ['[1,2]', 'HERALD_ERR_API_BAD_REQUEST'],
      ['"text"', 'HERALD_ERR_API_BAD_REQUEST'],
      ['null', 'HERALD_ERR_API_BAD_REQUEST'],
      ['', 'HERALD_ERR_CHANNEL_INVALID'],
    ];
    for (const [raw, code] of raws) {
      const r = await api(srv.url, 'publish', undefined, { raw });
      expect([r.status, r.body.error.code], raw).toEqual([400, code]);
    }
    const bodies: [Record<string, unknown>, string][] = [
      [{ data: 1 }, 'HERALD_ERR_CHANNEL_INVALID'],
      [{ channel: 42, data: 1 }, 'HERALD_ERR_CHANNEL_INVALID'],
      [{ channel: 'bad channel', data: 1 }, 'HERALD_ERR_CHANNEL_INVALID'],
      [{ channel: 'chat.**', data: 1 }, 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED'],
      [{ channel: 'bodies.x' }, 'HERALD_ERR_PROTOCOL_BAD_FIELD'],
      [{ channel: 'bodies.x', data: 1, idempotencyKey: 5 }, 'HERALD_ERR_API_BAD_REQUEST'],
      [{ channel: 'bodies.x', data: 1, idempotencyKey: '' }, 'HERALD_ERR_API_BAD_REQUEST'],
      [{ channel: 'bodies.x', data: 1, idempotencyKey: 'k'.repeat(129) }, 'HERALD_ERR_API_BAD_REQUEST'],
    ];
    for (const [body, code] of bodies) {
      const r = await api(srv.url, 'publish', body);
      expect([r.status, r.body.error.code], JSON.stringify(body).slice(0, 60)).toEqual([400, code]);
      expect(typeof r.body.error.message).toBe('string');
    }
    // None of them published anything.
    expect((await api(srv.url, 'history', { channel: 'bodies.x' })).body).toMatchObject({
      offset: 0,
      publications: [],
    });
  });

  it('answers 413 for a body larger than limits.maxApiBodySize, declared or streamed', async () => {
    const big = JSON.stringify({ channel: 'big.x', data: 'x'.repeat(MAX_API_BODY) });
    const declared = await api(srv.url, 'publish', undefined, { raw: big });
    expect([declared.status, declared.body.error.code]).toEqual([413, 'HERALD_ERR_API_BODY_TOO_LARGE']);
    // Chunked, without a Content-Length: the limit is enforced while reading.
    const bytes = new TextEncoder().encode(big);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 1000) controller.enqueue(bytes.subarray(i, i + 1000));
        controller.close();
      },
    });
    const chunked = await post(srv.url, '/api/publish', {
      headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
      body: stream,
      duplex: 'half',
    });
    expect([chunked.status, chunked.body.error.code]).toEqual([413, 'HERALD_ERR_API_BODY_TOO_LARGE']);
    // Just under the limit is fine.
    const fits = JSON.stringify({ channel: 'big.x', data: 'x'.repeat(MAX_API_BODY - 100) });
    const ok = await api(srv.url, 'publish', undefined, { raw: fits });
    expect(ok.status).toBe(200);
    expect(ok.body.offset).toBe(1);
  });

  it('answers 415 for a non-JSON content type', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonp']) {
      const r = await api(srv.url, 'publish', { channel: 'type.x', data: 1 }, { headers: { 'Content-Type': type } });
      expect([r.status, r.body.error.code], type).toEqual([415, 'HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE']);
    }
  });

  it("answers 413 for data larger than the namespace's maxMessageSize", async () => {
    const r = await api(srv.url, 'publish', { channel: 'small.x', data: 'x'.repeat(100) });
    expect([r.status, r.body.error.code]).toEqual([413, 'HERALD_ERR_MESSAGE_TOO_LARGE']);
    const fits = await api(srv.url, 'publish', { channel: 'small.x', data: 'x'.repeat(20) });
    expect(fits.status).toBe(200);
    // The same data fits another namespace.
    expect((await api(srv.url, 'publish', { channel: 'roomy.x', data: 'x'.repeat(100) })).status).toBe(200);
  });
});

describe('server API: idempotency', () => {
  it('applies a publish at most once per key and channel', async () => {
    const c = await WsClient.subscribed(srv.wsUrl, 'idem.a');
    const first = await api(srv.url, 'publish', { channel: 'idem.a', data: 'once', idempotencyKey: 'k1' });
    expect(first.body).toMatchObject({ channel: 'idem.a', offset: 1, duplicate: false });
    const retry = await api(srv.url, 'publish', { channel: 'idem.a', data: 'once', idempotencyKey: 'k1' });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ ...first.body, duplicate: true });
    // The same key on another channel is independent.
    const other = await api(srv.url, 'publish', { channel: 'idem.b', data: 'once', idempotencyKey: 'k1' });
    expect(other.body).toMatchObject({ channel: 'idem.b', offset: 1, duplicate: false });
    // Sentinel: the next publication takes offset 2, and the subscriber saw "once" exactly once.
    const s = await api(srv.url, 'publish', { channel: 'idem.a', data: 'sentinel' });
    expect(s.body.offset).toBe(2);
    await c.waitFor(isPub('sentinel'), 'sentinel');
    expect(c.pubs('idem.a').map((p) => p['data'])).toEqual(['once', 'sentinel']);
    await c.close();
  });

  it('forgets a key after idempotencyWindow (on the engine clock, a fake one)', async () => {
    const clock = new FakeClock(Date.now());
    const own = await startServer({ idempotencyWindow: 1000 }, { engine: new MemoryEngine({ clock }) });
    try {
      const c = await WsClient.subscribed(own.wsUrl, 'win.a');
      const publish = async (): Promise<Frame> =>
        (await api(own.url, 'publish', { channel: 'win.a', data: 'w', idempotencyKey: 'kw' })).body;
      expect(await publish()).toMatchObject({ offset: 1, duplicate: false });
      // Within the window: a duplicate, up to its last millisecond.
      expect(await publish()).toMatchObject({ offset: 1, duplicate: true });
      clock.advance(999);
      expect(await publish()).toMatchObject({ offset: 1, duplicate: true });
      // At the end of the window the key is forgotten: the same key is applied again.
      clock.advance(1);
      expect(await publish()).toMatchObject({ offset: 2, duplicate: false });
      await api(own.url, 'publish', { channel: 'win.a', data: 'sentinel' });
      await c.waitFor(isPub('sentinel'), 'sentinel');
      expect(c.pubs('win.a').map((p) => [p['offset'], p['data']])).toEqual([
        [1, 'w'],
        [2, 'w'],
        [3, 'sentinel'],
      ]);
      await c.close();
    } finally {
      await own.close();
    }
  });
});
