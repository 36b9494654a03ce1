/**
 * Every transport against a real server: subscribe (exact, subtree, backlog), live publications,
 * commands (publish, history, ping), refusals with codes, unsubscribe, async iteration, and a
 * server-side drop in the middle of a continuous publisher: no gap, no duplicate.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Herald, HeraldError, type Publication, type TransportName } from '@herald/client';
import { until } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { collect, count, gapless, next, publisher } from './support/helpers.js';

let srv: TestServer;
const clients: Herald[] = [];
beforeAll(async () => {
  srv = await startServer({
    http: { heartbeatInterval: 1000 },
    // History covers every publication of a test (the drop test's publisher never stops while the
    // client reconnects: a slow reconnect must not push its cursor out of history).
    namespaces: { pub: { clientPublish: true, historySize: 5000 }, closed: { anonymousSubscribe: false } },
  });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(() => srv.close());

function client(transport: TransportName): Herald {
  const h = new Herald(srv.url, { transports: [transport], timeout: 3000 });
  clients.push(h);
  return h;
}

/** Disconnects the client from the server side; retries until the server finds its session (long-poll). */
async function dropFromServer(h: Herald, reconnect: boolean): Promise<void> {
  const dropped = async (): Promise<boolean> =>
    (await api(srv.url, 'disconnect', { client: h.client, reconnect })).body.disconnected > 0;
  await until(dropped, `the server to find client ${h.client}`, 5000, 5);
}

describe.each(['websocket', 'http-stream', 'sse', 'long-poll'] as const)('over %s', (transport) => {
  const ch = (name: string): string => `pub.${transport}.${name}`;

  it('connects, takes a backlog, then live publications in order', async () => {
    for (let i = 1; i <= 3; i++) await api(srv.url, 'publish', { channel: ch('backlog'), data: { i } });
    const h = client(transport);
    const states: string[] = [];
    h.on('state', (s) => states.push(s.state));
    const sub = h.subscribe<{ i: number }>(ch('backlog'), { backlog: 2 });
    const got = collect(sub);
    const subscribed = next(sub, 'subscribed');
    await sub.ready();
    expect((await subscribed).recovered).toBeUndefined();
    expect(h.state).toBe('connected');
    expect(h.transport).toBe(transport);
    expect(states).toEqual(['connected']);
    await api(srv.url, 'publish', { channel: ch('backlog'), data: { i: 4 } });
    await count(sub, got, 3);
    expect(got.map((p) => [p.offset, p.data.i])).toEqual([
      [2, 2],
      [3, 3],
      [4, 4],
    ]);
    expect(got[2]).toMatchObject({ stream: ch('backlog'), channel: ch('backlog'), epoch: sub.cursor?.epoch });
    expect(sub.cursor?.offset).toBe(4);
  });

  it('multiplexes exact and subtree subscriptions on one connection', async () => {
    const h = client(transport);
    const exact = h.subscribe(ch('tree.a'));
    const tree = h.subscribe(`pub.${transport}.tree.**`);
    const [ge, gt] = [collect(exact), collect(tree)];
    await Promise.all([exact.ready(), tree.ready()]);
    await api(srv.url, 'publish', { channel: ch('tree.b'), data: 'b' });
    await api(srv.url, 'publish', { channel: ch('tree.a'), data: 'a' });
    await count(tree, gt, 2);
    await count(exact, ge, 1);
    expect(gt.map((p) => [p.channel, p.offset])).toEqual([
      [ch('tree.b'), 1],
      [ch('tree.a'), 2],
    ]);
    expect(ge.map((p) => [p.stream, p.offset, p.data])).toEqual([[ch('tree.a'), 1, 'a']]);
    // One connection holds both (a long-poll session exists only while a poll is open).
    if (transport !== 'long-poll') expect(srv.server.hub.sessions.get(h.client ?? '')?.subscriptions.size).toBe(2);
  });

  it('publishes, reads history and pings as promises; refusals reject with codes', async () => {
    const h = client(transport);
    const sub = h.subscribe<string>(ch('cmd'));
    const got = collect(sub);
    await sub.ready();
    const r = await sub.publish('one', { idempotencyKey: 'k1' });
    expect(r).toMatchObject({ channel: ch('cmd'), offset: 1, duplicate: false });
    expect((await h.publish(ch('cmd'), 'again', { idempotencyKey: 'k1' })).duplicate).toBe(true);
    await h.publish(ch('cmd'), 'two');
    const hist = await sub.history({ limit: 10 });
    expect(hist.publications.map((p) => p.data)).toEqual(['one', 'two']);
    expect(await h.ping()).toBeGreaterThanOrEqual(0);
    const denied = await h.publish('news.x', 1).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(HeraldError);
    expect((denied as HeraldError).code).toBe('HERALD_ERR_PERMISSION_DENIED');
    const bad = await h.history('a..b').catch((e: unknown) => e);
    expect((bad as HeraldError).code).toBe('HERALD_ERR_CHANNEL_INVALID');
    await count(sub, got, 2);
    expect(got.map((p) => p.data)).toEqual(['one', 'two']);
  });

  it('ends a refused subscription with its error; the iterator throws it', async () => {
    const h = client(transport);
    const sub = h.subscribe(ch('x').replace('pub.', 'closed.'));
    const ended = next(sub, 'state', (s) => s.state === 'unsubscribed');
    // An anonymous client in a namespace without anonymousSubscribe: refused (the code says why).
    const refusal = (await sub.ready().catch((e: unknown) => e)) as HeraldError;
    expect(refusal).toBeInstanceOf(HeraldError);
    expect(refusal.code).toMatch(/^HERALD_ERR_(PERMISSION_DENIED|AUTH_TOKEN_REQUIRED)$/);
    expect((await ended).error?.code).toBe(refusal.code);
    expect(h.getSubscription(sub.channel)).toBeUndefined();
    const it2 = h.subscribe('closed.y');
    await expect(
      (async () => {
        for await (const _ of it2) {
          /* nothing arrives */
        }
      })(),
    ).rejects.toMatchObject({ code: refusal.code });
    expect(() => h.subscribe('a..b')).toThrow(HeraldError);
    h.subscribe(ch('dup'));
    expect(() => h.subscribe(ch('dup'))).toThrow(/already subscribed/);
  });

  it('iterates publications with for await; breaking out unsubscribes', async () => {
    const h = client(transport);
    const seen: number[] = [];
    const sub = h.subscribe<number>(ch('iter'));
    await sub.ready();
    const loop = (async () => {
      for await (const p of sub) {
        seen.push(p.data);
        if (p.data === 3) break;
      }
    })();
    for (let i = 1; i <= 3; i++) await api(srv.url, 'publish', { channel: ch('iter'), data: i });
    await loop;
    expect(seen).toEqual([1, 2, 3]);
    expect(sub.state).toBe('unsubscribed');
    expect(h.getSubscription(ch('iter'))).toBeUndefined();
  });

  it('stops delivering after unsubscribe (sentinel: a second subscription sees the later publication)', async () => {
    const h = client(transport);
    const a = h.subscribe(ch('unsub'));
    const b = h.subscribe(`pub.${transport}.unsub.**`);
    const [ga, gb] = [collect(a), collect(b)];
    await Promise.all([a.ready(), b.ready()]);
    await api(srv.url, 'publish', { channel: ch('unsub'), data: 1 });
    await count(a, ga, 1);
    a.unsubscribe();
    expect(a.state).toBe('unsubscribed');
    await api(srv.url, 'publish', { channel: ch('unsub'), data: 2 });
    await count(b, gb, 2);
    expect(ga.map((p) => p.data)).toEqual([1]);
  });

  it('recovers a server-side drop while a publisher never stops: no gap, no duplicate', async () => {
    const h = client(transport);
    const sub = h.subscribe<{ n: number }>(ch('drop'));
    const got: Publication<{ n: number }>[] = collect(sub);
    const subscribedEvents: (boolean | undefined)[] = [];
    sub.on('subscribed', (e) => subscribedEvents.push(e.recovered));
    await sub.ready();
    const pub = publisher(srv.url, ch('drop'));
    await count(sub, got, 20);
    const firstClient = h.client;
    const back = next(h, 'state', (s) => s.state === 'connected', 8000);
    await dropFromServer(h, true);
    await back;
    expect(h.client).not.toBe(firstClient);
    await count(sub, got, got.length + 20);
    const sent = await pub.stop();
    await count(sub, got, sent);
    expect(gapless(got.map((p) => p.offset))).toBeUndefined();
    expect(got.map((p) => p.data.n)).toEqual(got.map((p) => p.offset));
    expect(subscribedEvents).toEqual([undefined, true]);
  });

  it('applies publishes in call order, even when a request is slow to reach the server', async () => {
    // The first POST /send takes 150 ms to leave; the publishes made meanwhile, each in its own turn,
    // must not overtake it (they go together in the next request).
    let delayed = 0;
    const slowFirst: typeof fetch = async (input, init) => {
      if (String(input).includes('/send') && delayed++ === 0) await new Promise((r) => setTimeout(r, 150));
      return fetch(input, init);
    };
    const h = new Herald(srv.url, { transports: [transport], timeout: 5000, fetch: slowFirst });
    clients.push(h);
    await h.subscribe(ch('order-ready')).ready();
    delayed = 0;
    const sent: Promise<unknown>[] = [];
    for (let n = 1; n <= 4; n++) {
      sent.push(h.publish(ch('order'), { n }));
      await new Promise((r) => setImmediate(r)); // the next one in another turn: another request
    }
    const results = (await Promise.all(sent)) as { offset: number }[];
    expect(results.map((r) => r.offset)).toEqual([1, 2, 3, 4]);
    const hist = await h.history(ch('order'), { limit: 10 });
    expect(hist.publications.map((p) => (p.data as { n: number }).n)).toEqual([1, 2, 3, 4]);
  });

  it('does not reconnect after a 35xx disconnect; commands reject; connect() comes back', async () => {
    const h = client(transport);
    const sub = h.subscribe(ch('final'));
    await sub.ready();
    const down = next(h, 'state', (s) => s.state === 'disconnected');
    await dropFromServer(h, false);
    expect(await down).toMatchObject({ state: 'disconnected', code: 3500 });
    expect(sub.state).toBe('subscribing');
    await expect(h.ping()).rejects.toMatchObject({ code: 'HERALD_ERR_CLIENT_DISCONNECTED' });
    h.connect();
    await sub.ready();
    expect(h.state).toBe('connected');
  });
});
