import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { SseReader, send } from './support/http-clients.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    http: { heartbeatInterval: 200, maxChannelsPerRequest: 4 },
    limits: { maxQueueBytes: 128 * 1024 },
    namespaces: { chat: { clientPublish: true }, big: { maxMessageSize: 65_536 } },
  });
});
afterAll(async () => {
  await srv.close();
});

describe('GET /sse', () => {
  it('streams publications as events whose id resumes every stream of the connection', async () => {
    const es = new SseReader(`${srv.url}/sse?channel=news&channel=radio.**`);
    await es.waitFor((e) => e.filter((x) => x.event === 'subscribed').length === 2, 'two subscribed events');
    expect(es.status).toBe(200);
    expect(es.headers?.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(es.headers?.get('cache-control')).toBe('no-cache, no-transform');
    expect(es.headers?.get('x-accel-buffering')).toBe('no');
    expect(es.retry).toBe(2000);
    const connected = es.of('connected')[0]!;
    expect(connected).toMatchObject({ push: 'connected', version: 1 });
    expect(connected['session']).toMatch(/\./);
    await api(srv.url, 'publish', { channel: 'news', data: { n: 1 } });
    await api(srv.url, 'publish', { channel: 'radio.a', data: { n: 2 } });
    await es.waitFor((e) => e.filter((x) => x.event === 'message').length === 2, 'two publications');
    const [p1, p2] = es.pubs();
    expect(p1).toMatchObject({ stream: 'news', channel: 'news', offset: 1, data: { n: 1 } });
    expect(p2).toMatchObject({ stream: 'radio.**', channel: 'radio.a', offset: 1, data: { n: 2 } });
    const id = es.lastEventId;
    expect(id).toBe(`news;${p1!['epoch']};1,radio.**;${p2!['epoch']};1`);
    es.close();
    await until(() => srv.server.hub.sessions.size === 0, 'the server to end the session');

    // Away: three more publications. Coming back with Last-Event-ID gives exactly those, in order.
    await api(srv.url, 'publish', { channel: 'radio.b', data: { n: 3 } });
    await api(srv.url, 'publish', { channel: 'news', data: { n: 4 } });
    await api(srv.url, 'publish', { channel: 'radio', data: { n: 5 } });
    const back = new SseReader(`${srv.url}/sse?channel=news&channel=radio.**`, { headers: { 'Last-Event-ID': id } });
    await back.waitFor((e) => e.filter((x) => x.event === 'message').length === 3, 'missed publications');
    expect(back.of('subscribed').map((s) => [s['stream'], s['recovered']])).toEqual(
      expect.arrayContaining([
        ['news', true],
        ['radio.**', true],
      ]),
    );
    expect(back.pubs().map((p) => [p['stream'], p['offset'], p['data'].n])).toEqual(
      expect.arrayContaining([
        ['news', 2, 4],
        ['radio.**', 2, 3],
        ['radio.**', 3, 5],
      ]),
    );
    expect(back.pubs()).toHaveLength(3);
    // Live after recovery, with no duplicate.
    await api(srv.url, 'publish', { channel: 'news', data: { n: 6 } });
    await back.waitFor((e) => e.filter((x) => x.event === 'message').length === 4, 'live publication');
    expect(back.pubs()[3]).toMatchObject({ stream: 'news', offset: 3 });
    back.close();
  });

  it('takes a first cursor in the query, and a backlog', async () => {
    for (let i = 1; i <= 4; i++) await api(srv.url, 'publish', { channel: 'feed.q', data: i });
    const h = await api(srv.url, 'history', { channel: 'feed.q', limit: 0 });
    const es = new SseReader(`${srv.url}/sse?channel=feed.q&cursor=${h.body.epoch}:2`);
    await es.waitFor((e) => e.filter((x) => x.event === 'message').length === 2, 'recovered');
    expect(es.pubs().map((p) => p['data'])).toEqual([3, 4]);
    es.close();
    const bl = new SseReader(`${srv.url}/sse?channel=feed.q&backlog=1`);
    await bl.waitFor((e) => e.some((x) => x.event === 'message'), 'backlog');
    expect(bl.pubs().map((p) => p['data'])).toEqual([4]);
    bl.close();
  });

  it('sends heartbeats, and padding when configured', async () => {
    const es = new SseReader(`${srv.url}/sse?channel=quiet.x`);
    await es.waitForComment('a heartbeat comment');
    es.close();
    const padded = await startServer({ http: { padding: 2048 } });
    try {
      const p = new SseReader(`${padded.url}/sse?channel=x`);
      await p.waitFor((e) => e.some((x) => x.event === 'connected'), 'connected');
      expect(p.firstChunk?.startsWith(`:${' '.repeat(2048)}\n`)).toBe(true);
      p.close();
    } finally {
      await padded.close();
    }
  });

  it('answers bad requests with an HTTP error and a code before streaming', async () => {
    const cases: [string, Record<string, string>, number, string][] = [
      ['channel=bad%20name', {}, 400, 'HERALD_ERR_CHANNEL_INVALID'],
      ['channel=a.**.b', {}, 400, 'HERALD_ERR_CHANNEL_INVALID'],
      ['channel=a&channel=b&channel=c&channel=d&channel=e', {}, 429, 'HERALD_ERR_SUBSCRIBE_LIMIT'],
      ['channel=a&cursor=garbage', {}, 400, 'HERALD_ERR_CURSOR_INVALID'],
      ['channel=a', { 'Last-Event-ID': 'x;y;z;w' }, 400, 'HERALD_ERR_CURSOR_INVALID'],
      ['channel=a', { 'Last-Event-ID': 'bad channel;e;1' }, 400, 'HERALD_ERR_CURSOR_INVALID'],
      ['channel=a&backlog=-1', {}, 400, 'HERALD_ERR_PROTOCOL_BAD_FIELD'],
      [`channel=${'a'.repeat(9000)}`, {}, 400, 'HERALD_ERR_PROTOCOL_BAD_FIELD'],
    ];
    for (const [q, headers, status, code] of cases) {
      const res = await fetch(`${srv.url}/sse?${q}`, { headers });
      expect([q, res.status]).toEqual([q, status]);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect(srv.server.hub.sessions.size).toBe(0);
  });

  it('frees the session when the client vanishes', async () => {
    const readers = [1, 2, 3].map(() => new SseReader(`${srv.url}/sse?channel=gone.x`));
    await Promise.all(readers.map((r) => r.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'subscribed')));
    expect(srv.server.connectionsByTransport()['sse']).toBe(3);
    for (const r of readers) r.close();
    await until(() => srv.server.hub.sessions.size === 0, 'the server to end the session');
    expect(srv.server.hub.channels().find((c) => c.stream === 'gone.x')).toBeUndefined();
  });

  it('adds and removes streams and publishes through POST /send', async () => {
    const es = new SseReader(`${srv.url}/sse`);
    await es.waitFor((e) => e.some((x) => x.event === 'connected'), 'connected');
    const session = es.of('connected')[0]!['session'] as string;
    const r = await send(srv.url, session, '{"id":1,"cmd":"subscribe","channel":"chat.r"}\n{"id":2,"cmd":"ping"}');
    expect(r.status).toBe(200);
    expect(r.lines.map((l) => l.id).sort()).toEqual([1, 2]);
    const sub = r.lines.find((l) => l.id === 1);
    expect(sub.result).toMatchObject({ stream: 'chat.r', offset: 0 });
    await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'subscribed event for the added stream');
    expect(es.lastEventId).toBe(`chat.r;${sub.result.epoch};0`);
    const pub = await send(srv.url, session, JSON.stringify({ id: 3, cmd: 'publish', channel: 'chat.r', data: 'hi' }));
    expect(pub.lines[0].result).toMatchObject({ offset: 1 });
    await es.waitFor((e) => e.some((x) => x.event === 'message'), 'own publication');
    const un = await send(srv.url, session, '{"id":4,"cmd":"unsubscribe","channel":"chat.r"}');
    expect(un.lines[0]).toEqual({ id: 4, result: {} });
    await es.waitFor((e) => e.some((x) => x.event === 'unsubscribed'), 'unsubscribed event');
    expect(es.lastEventId).toBe('');
    es.close();
  });

  it('disconnects a reader that stops reading, others keep everything', async () => {
    const good = new SseReader(`${srv.url}/sse?channel=big.s`);
    await good.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'subscribed');
    // A raw socket that never reads: its session must be dropped once the queue passes 128 KiB.
    const net = await import('node:net');
    const port = Number(new URL(srv.url).port);
    const sock = net.connect(port, '127.0.0.1');
    await withTimeout(new Promise((r) => sock.once('connect', r)), 5000, 'connect');
    sock.write('GET /sse?channel=big.s HTTP/1.1\r\nHost: x\r\n\r\n');
    sock.pause();
    const before = srv.server.metrics.value('herald_slow_disconnects_total');
    await until(() => srv.server.connectionsByTransport()['sse'] === 2, 'the raw reader to connect');
    const payload = 'z'.repeat(16_384);
    let n = 0;
    while (srv.server.metrics.value('herald_slow_disconnects_total') === before && n < 2000) {
      await api(srv.url, 'publish', { channel: 'big.s', data: { n, payload } });
      n += 1;
    }
    expect(srv.server.metrics.value('herald_slow_disconnects_total')).toBe(before + 1);
    await api(srv.url, 'publish', { channel: 'big.s', data: { n: 'end' } });
    await good.waitFor((e) => e.filter((x) => x.event === 'message').length === n + 1, 'every publication', 20_000);
    expect(good.pubs().map((p) => p['data'].n)).toEqual([...[...Array(n).keys()], 'end']);
    sock.destroy();
    good.close();
  }, 60_000);
});
