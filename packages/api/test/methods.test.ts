/**
 * Every server API method through the client, against a real server with WebSocket subscribers:
 * the answers have the documented shapes (docs/protocol.md, "Server API") and the typed results
 * carry them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { HeraldApi, type BatchReply, type HistoryResult, type PublishResult } from '@herald/api';

let ts: TestServer;
let herald: HeraldApi;
beforeAll(async () => {
  ts = await startServer({ namespaces: { game: { presence: true } } });
  herald = new HeraldApi({ url: ts.url, apiKey: API_KEY });
});
afterAll(async () => {
  await herald.close();
  await ts.close();
});

describe('publish and history', () => {
  it('publishes to subscribers and returns the position', async () => {
    const ws = await WsClient.subscribed(ts.wsUrl, 'news.**');
    const r: PublishResult = await herald.publish('news.sport', { score: '15-0' });
    expect(r).toEqual({ channel: 'news.sport', epoch: expect.any(String), offset: 1, duplicate: false });
    const pub = await ws.waitFor((f) => f['push'] === 'pub', 'the publication');
    expect(pub).toMatchObject({ stream: 'news.**', channel: 'news.sport', data: { score: '15-0' } });
    await ws.close();
  });

  it('reads history: limit, reverse, since as a position or a text cursor, subtrees', async () => {
    for (let i = 1; i <= 5; i++) await herald.publish('hist.a', i);
    const all: HistoryResult<number> = await herald.history<number>('hist.a');
    expect(all.stream).toBe('hist.a');
    expect(all.offset).toBe(5);
    expect(all.publications.map((p) => p.data)).toEqual([1, 2, 3, 4, 5]);
    expect((await herald.history('hist.a', { limit: 2, reverse: true })).publications.map((p) => p.data)).toEqual([
      5, 4,
    ]);
    const since = { epoch: all.epoch, offset: 3 };
    expect((await herald.history('hist.a', { since })).publications.map((p) => p.offset)).toEqual([4, 5]);
    expect((await herald.history('hist.a', { since: `${all.epoch}:4` })).publications.map((p) => p.offset)).toEqual([
      5,
    ]);
    expect((await herald.history('hist.a', { limit: 0 })).publications).toEqual([]);
    expect((await herald.history('hist.a', { limit: 2, latest: true })).publications.map((p) => p.data)).toEqual([
      4, 5,
    ]);
    await herald.publish('hist.b', 'b');
    const tree = await herald.history('hist.**');
    expect(tree.publications.map((p) => [p.channel, p.data])).toEqual([
      ['hist.a', 1],
      ['hist.a', 2],
      ['hist.a', 3],
      ['hist.a', 4],
      ['hist.a', 5],
      ['hist.b', 'b'],
    ]);
  });

  it('publishMany keeps array order per channel and reports each item', async () => {
    const items = Array.from({ length: 2500 }, (_, i) => ({
      channel: i % 2 === 0 ? 'many.even' : 'many.odd',
      data: i,
    }));
    const out = await herald.publishMany(items);
    expect(out).toHaveLength(2500);
    expect(out.filter((o) => o.ok && o.channel === 'many.even').map((o) => o.ok && o.offset)).toEqual(
      Array.from({ length: 1250 }, (_, i) => i + 1),
    );
    const h = await herald.history<number>('many.odd', { limit: 100, reverse: true });
    expect(h.publications[0]?.data).toBe(2499);
  });

  it('broadcast publishes the same data to each channel', async () => {
    const out = await herald.broadcast(['cast.a', 'cast.b'], { hello: true });
    expect(out.map((o) => o.ok && [o.channel, o.offset, o.duplicate])).toEqual([
      ['cast.a', 1, false],
      ['cast.b', 1, false],
    ]);
    // The same key again (a caller's): nothing new anywhere.
    const key = 'cast-1';
    await herald.broadcast(['cast.a', 'cast.b'], 'x', { idempotencyKey: key });
    const again = await herald.broadcast(['cast.a', 'cast.b'], 'x', { idempotencyKey: key });
    expect(again.map((o) => o.ok && o.duplicate)).toEqual([true, true]);
  });
});

describe('presence, channels, info, disconnect', () => {
  it('presence and presenceStats list the subscribers on every node', async () => {
    const a = await WsClient.subscribed(ts.wsUrl, 'game.7');
    const b = await WsClient.subscribed(ts.wsUrl, 'game.7');
    const p = await herald.presence('game.7');
    expect(p.channel).toBe('game.7');
    expect(p.presence.map((e) => e.client).sort()).toEqual([a.clientId, b.clientId].sort());
    expect(p.presence.every((e) => e.user === '')).toBe(true);
    expect(await herald.presenceStats('game.7')).toEqual({ channel: 'game.7', clients: 2, users: 1 });
    await a.close();
    await b.close();
  });

  it('channels lists the streams with subscribers, with presence counts', async () => {
    const a = await WsClient.subscribed(ts.wsUrl, 'game.9', 'room.x');
    const { channels } = await herald.channels({ pattern: 'game.*' });
    expect(channels).toEqual([{ stream: 'game.9', subscribers: 1, presence: { clients: 1, users: 1 } }]);
    expect((await herald.channels({ pattern: 'room.x' })).channels).toEqual([{ stream: 'room.x', subscribers: 1 }]);
    expect((await herald.channels()).channels.map((c) => c.stream)).toEqual(
      expect.arrayContaining(['game.9', 'room.x']),
    );
    await a.close();
  });

  it('info gives the node counters', async () => {
    const { nodes } = await herald.info();
    expect(nodes).toHaveLength(1);
    expect(nodes[0]).toMatchObject({ engine: 'memory', version: expect.any(String), id: expect.any(String) });
    expect(nodes[0]?.published).toBeGreaterThan(0);
  });

  it('disconnect closes a client by id, with or without reconnect', async () => {
    const a = await WsClient.connect(ts.wsUrl);
    expect(await herald.disconnect({ client: a.clientId })).toEqual({ disconnected: 1 });
    expect((await a.closed).code).toBe(3500);
    const b = await WsClient.connect(ts.wsUrl);
    expect(await herald.disconnect({ client: b.clientId, reconnect: true })).toEqual({ disconnected: 1 });
    expect((await b.closed).code).toBe(3004);
    expect(await herald.disconnect({ user: 'nobody' })).toEqual({ disconnected: 0 });
  });
});

describe('batch', () => {
  it('runs commands of any method, with typed replies in order', async () => {
    const replies: BatchReply[] = await herald.batch([
      { publish: { channel: 'mix.a', data: 1 } },
      { publish: { channel: 'bad..x', data: 1 } },
      { history: { channel: 'mix.a', limit: 0 } },
      { info: {} },
    ]);
    expect(replies).toHaveLength(4);
    const [pub, bad, , info] = replies;
    expect(pub).toEqual({ publish: { channel: 'mix.a', epoch: expect.any(String), offset: 1, duplicate: false } });
    expect(bad).toMatchObject({ error: { code: 'HERALD_ERR_CHANNEL_INVALID' } });
    expect(info && 'info' in info && info.info.nodes).toHaveLength(1);
  });
});
