import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    limits: { maxSubscriptionsPerConnection: 3, maxFrameSize: 4096 },
    namespaces: {
      chat: { clientPublish: true },
      locked: { anonymousSubscribe: false },
      nohist: { historySize: 0 },
      small: { maxMessageSize: 64, clientPublish: true },
    },
  });
});
afterAll(async () => {
  await srv.close();
});

describe('WebSocket protocol', () => {
  it('sends a connected push with a client id', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    const f = c.frames[0]!;
    expect(f).toMatchObject({ push: 'connected', version: 1 });
    expect(typeof f['client']).toBe('string');
    // A plain TCP socket: frames go to its descriptor while nothing is queued (transports/socket-write.ts).
    const conn = srv.server.hub.sessions.get(f['client'] as string)?.transport as { fd?: number } | undefined;
    expect(conn?.fd).toBeGreaterThan(2);
    await c.close();
  });

  it('subscribes, receives API publications in order, unsubscribes', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    const r = await c.request({ cmd: 'subscribe', channel: 'news.sport' });
    expect(r['result']).toMatchObject({ stream: 'news.sport', offset: 0, publications: [] });
    expect(typeof r['result'].epoch).toBe('string');
    for (let i = 1; i <= 3; i++) {
      const p = await api(srv.url, 'publish', { channel: 'news.sport', data: { n: i } });
      expect(p.status).toBe(200);
      expect(p.body).toMatchObject({ channel: 'news.sport', offset: i, duplicate: false });
    }
    const pubs = await c.waitForCount((f) => f['push'] === 'pub', 3, 'pubs');
    expect(pubs.map((p) => p['data'].n)).toEqual([1, 2, 3]);
    expect(pubs.map((p) => p['offset'])).toEqual([1, 2, 3]);
    expect(pubs[0]).toMatchObject({ stream: 'news.sport', channel: 'news.sport', epoch: r['result'].epoch });
    const u = await c.request({ cmd: 'unsubscribe', channel: 'news.sport' });
    expect(u).toEqual({ id: u['id'], result: {} });
    // Sentinel: after unsubscribing, a publication to another subscribed stream arrives but not this one.
    await c.request({ cmd: 'subscribe', channel: 'news.weather' });
    await api(srv.url, 'publish', { channel: 'news.sport', data: { n: 4 } });
    await api(srv.url, 'publish', { channel: 'news.weather', data: { sentinel: true } });
    await c.waitFor((f) => f['push'] === 'pub' && f['channel'] === 'news.weather', 'sentinel');
    expect(c.pubs('news.sport')).toHaveLength(3);
    await c.close();
  });

  it('delivers to subtree subscribers with per-stream offsets', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    await c.request({ cmd: 'subscribe', channel: 'radio.**' });
    await c.request({ cmd: 'subscribe', channel: 'radio.event.**' });
    await api(srv.url, 'publish', { channel: 'radio', data: 'a' });
    await api(srv.url, 'publish', { channel: 'radio.event.tweet', data: 'b' });
    await api(srv.url, 'publish', { channel: 'radio.other', data: 'c' });
    const all = await c.waitForCount((f) => f['push'] === 'pub' && f['stream'] === 'radio.**', 3, 'radio.** pubs');
    expect(all.map((p) => [p['channel'], p['offset'], p['data']])).toEqual([
      ['radio', 1, 'a'],
      ['radio.event.tweet', 2, 'b'],
      ['radio.other', 3, 'c'],
    ]);
    const ev = c.pubs('radio.event.**');
    expect(ev.map((p) => [p['channel'], p['offset']])).toEqual([['radio.event.tweet', 1]]);
    await c.close();
  });

  it('gives a backlog of the last N publications', async () => {
    for (let i = 1; i <= 5; i++) await api(srv.url, 'publish', { channel: 'feed.a', data: i });
    const c = await WsClient.connect(srv.wsUrl);
    const r = await c.request({ cmd: 'subscribe', channel: 'feed.a', backlog: 2 });
    expect(r['result'].publications).toEqual([
      { channel: 'feed.a', offset: 4, data: 4 },
      { channel: 'feed.a', offset: 5, data: 5 },
    ]);
    expect(r['result'].offset).toBe(5);
    await c.close();
  });

  it('publishes from a client where the namespace allows it, and refuses elsewhere', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    await c.request({ cmd: 'subscribe', channel: 'chat.room1' });
    const ok = await c.request({ cmd: 'publish', channel: 'chat.room1', data: { text: 'hi' } });
    expect(ok['result']).toMatchObject({ channel: 'chat.room1', offset: 1, duplicate: false });
    await c.waitFor((f) => f['push'] === 'pub' && f['data']?.text === 'hi', 'own publication');
    const no = await c.request({ cmd: 'publish', channel: 'news.x', data: 1 });
    expect(no['error'].code).toBe('HERALD_ERR_PERMISSION_DENIED');
    await c.close();
  });

  it('reads history, forward, reverse and since a position', async () => {
    for (let i = 1; i <= 4; i++) await api(srv.url, 'publish', { channel: 'hist.x', data: i });
    const c = await WsClient.connect(srv.wsUrl);
    const all = await c.request({ cmd: 'history', channel: 'hist.x' });
    expect(all['result'].publications.map((p: any) => p.data)).toEqual([1, 2, 3, 4]);
    expect(all['result']).toMatchObject({ stream: 'hist.x', offset: 4 });
    const rev = await c.request({ cmd: 'history', channel: 'hist.x', limit: 2, reverse: true });
    expect(rev['result'].publications.map((p: any) => p.data)).toEqual([4, 3]);
    const since = await c.request({
      cmd: 'history',
      channel: 'hist.x',
      since: { epoch: all['result'].epoch, offset: 2 },
    });
    expect(since['result'].publications.map((p: any) => p.offset)).toEqual([3, 4]);
    const none = await c.request({ cmd: 'history', channel: 'nohist.x' });
    expect(none['error'].code).toBe('HERALD_ERR_HISTORY_DISABLED');
    await c.close();
  });

  it('answers ping', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    const r = await c.request({ cmd: 'ping' });
    expect(r['result']).toEqual({});
    await c.close();
  });

  it('answers WebSocket ping frames with a pong carrying the same data', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    for (const data of ['a', 'second ping', '']) {
      const pong = withTimeout(
        new Promise<string>((resolve) => c.ws.once('pong', (d: Buffer) => resolve(d.toString()))),
        5000,
        `pong for "${data}"`,
      );
      c.ws.ping(data);
      expect(await pong).toBe(data);
    }
    // The connection still works after control frames.
    expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
    await c.close();
  });

  it('closes a connection that pings faster than it reads the pongs; others are unaffected', async () => {
    const other = await WsClient.connect(srv.wsUrl);
    await other.request({ cmd: 'subscribe', channel: 'flood.x' });
    const flooder = await WsClient.connect(srv.wsUrl);
    const id = (flooder.frames[0] as { client: string }).client;
    // The raw socket under the client: stop reading, then send 100,000 masked ping frames of 125
    // bytes (a zero mask leaves the payload as is) in one write.
    const socket = (flooder.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    const frame = Buffer.concat([Buffer.from([0x89, 0x80 | 125, 0, 0, 0, 0]), Buffer.alloc(125, 0x61)]);
    socket.write(Buffer.concat(Array.from({ length: 100_000 }, () => frame)));
    await until(() => !srv.server.hub.sessions.has(id), 'the flooding connection is closed', 20_000);
    await api(srv.url, 'publish', { channel: 'flood.x', data: 'after' });
    await other.waitFor((f) => f['push'] === 'pub' && f['data'] === 'after', 'a publication on the other client');
    await other.close();
  }, 30_000);

  it('rejects bad input with codes and keeps the connection', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    c.sendRaw('{not json');
    await c.waitFor((f) => f['error']?.code === 'HERALD_ERR_PROTOCOL_MALFORMED', 'malformed error');
    c.sendRaw('[1,2]');
    await c.waitForCount((f) => f['error']?.code === 'HERALD_ERR_PROTOCOL_MALFORMED', 2, 'non-object error');
    expect((await c.request({ cmd: 'explode' }))['error'].code).toBe('HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND');
    expect((await c.request({ cmd: 'subscribe', channel: 'bad channel' }))['error'].code).toBe(
      'HERALD_ERR_CHANNEL_INVALID',
    );
    expect((await c.request({ cmd: 'subscribe', channel: 'a.**.b' }))['error'].code).toBe('HERALD_ERR_CHANNEL_INVALID');
    expect((await c.request({ cmd: 'subscribe', channel: 42 }))['error'].code).toBe('HERALD_ERR_PROTOCOL_BAD_FIELD');
    expect((await c.request({ cmd: 'subscribe', channel: 'a', chanel: 'x' }))['error'].code).toBe(
      'HERALD_ERR_PROTOCOL_BAD_FIELD',
    );
    expect((await c.request({ cmd: 'subscribe', channel: 'a', since: { epoch: 1 } }))['error'].code).toBe(
      'HERALD_ERR_CURSOR_INVALID',
    );
    expect((await c.request({ cmd: 'publish', channel: 'chat.**', data: 1 }))['error'].code).toBe(
      'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED',
    );
    expect((await c.request({ cmd: 'publish', channel: 'small.x', data: 'x'.repeat(100) }))['error'].code).toBe(
      'HERALD_ERR_MESSAGE_TOO_LARGE',
    );
    expect((await c.request({ cmd: 'subscribe', channel: 'locked.x' }))['error'].code).toBe(
      'HERALD_ERR_AUTH_TOKEN_REQUIRED',
    );
    expect((await c.request({ cmd: 'unsubscribe', channel: 'never.x' }))['error'].code).toBe(
      'HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED',
    );
    c.sendRaw(JSON.stringify({ cmd: 'ping' }));
    await c.waitFor(
      (f) => f['error']?.code === 'HERALD_ERR_PROTOCOL_BAD_FIELD' && f['id'] === undefined,
      'missing id error',
    );
    // Still usable.
    expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
    await c.close();
  });

  it('limits subscriptions per connection and refuses duplicates', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    expect((await c.request({ cmd: 'subscribe', channel: 'l.a' }))['result']).toBeDefined();
    expect((await c.request({ cmd: 'subscribe', channel: 'l.a' }))['error'].code).toBe('HERALD_ERR_SUBSCRIBE_ALREADY');
    await c.request({ cmd: 'subscribe', channel: 'l.b' });
    await c.request({ cmd: 'subscribe', channel: 'l.c' });
    expect((await c.request({ cmd: 'subscribe', channel: 'l.d' }))['error'].code).toBe('HERALD_ERR_SUBSCRIBE_LIMIT');
    await c.close();
  });

  it('handles several commands in one message', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    c.sendRaw('{"id":101,"cmd":"ping"}\n{"id":102,"cmd":"ping"}');
    await c.waitFor((f) => f['id'] === 102, 'second reply');
    expect(c.frames.some((f) => f['id'] === 101)).toBe(true);
    await c.close();
  });

  it('closes with 1009 on an oversize frame, and 3501 on a binary frame; others are unaffected', async () => {
    const other = await WsClient.connect(srv.wsUrl);
    await other.request({ cmd: 'subscribe', channel: 'calm.x' });
    const big = await WsClient.connect(srv.wsUrl);
    big.sendRaw(JSON.stringify({ id: 1, cmd: 'publish', channel: 'chat.a', data: 'x'.repeat(10_000) }));
    expect((await big.closed).code).toBe(1009);
    const bin = await WsClient.connect(srv.wsUrl);
    bin.sendRaw(Buffer.from([1, 2, 3]), true);
    await bin.waitFor((f) => f['push'] === 'disconnect' && f['code'] === 3501, 'disconnect push');
    expect((await bin.closed).code).toBe(3501);
    await api(srv.url, 'publish', { channel: 'calm.x', data: 'still here' });
    await other.waitFor((f) => f['push'] === 'pub' && f['data'] === 'still here', 'publication to unaffected client');
    await other.close();
  });

  it('answers a plain GET /ws with 426 and unknown paths with 404', async () => {
    const r = await fetch(`${srv.url}/ws`);
    expect(r.status).toBe(426);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe('HERALD_ERR_PROTOCOL_BAD_FIELD');
    const n = await fetch(`${srv.url}/nope`);
    expect(n.status).toBe(404);
    const h = await fetch(`${srv.url}/health`);
    expect(h.status).toBe(200);
    expect(await h.json()).toMatchObject({ status: 'ok' });
  });
});
