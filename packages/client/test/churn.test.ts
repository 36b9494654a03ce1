/**
 * Subscribe → unsubscribe → subscribe of one channel, in every rhythm (React StrictMode mounts,
 * unmounts and mounts again in one tick): per stream the client keeps one subscribe or unsubscribe
 * in flight, takes back a subscribe not sent yet, and reconciles a `SUBSCRIBE_ALREADY` answer. On
 * every transport against a real server, with `POST /send` requests that may overtake each other,
 * while a publisher never stops: the last subscription works and gets every publication after its
 * `ready()`, once, in order. Also: a subscription's `signal` keeps no listener once it has ended.
 */
import { getEventListeners } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Herald, type HeraldOptions, type Publication, type Subscription, type TransportName } from '@herald/client';
import { until, withTimeout } from '@herald/test-support';
import { startServer, type TestServer } from '@herald/test-support/server';
import { FakeServer } from './support/fake-server.js';
import { collect, count, gapless, next, publisher } from './support/helpers.js';

const clients: Herald[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function fake(server: FakeServer, opts: HeraldOptions = {}): Herald {
  const h = new Herald('http://fake.test', { transports: ['websocket'], WebSocket: server.WebSocket, ...opts });
  clients.push(h);
  return h;
}

/** A small deterministic random generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Lets `n` turns of the event loop pass (replies, publications and sends run in between). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
}

/**
 * StrictMode-style churn: `cycles` times, unsubscribe the current subscription and subscribe again,
 * in one of five rhythms (same tick; after a microtask; after some turns of the event loop; after
 * its `ready()`; unsubscribe, then subscribe some turns later). Returns the last subscription and
 * the codes of every `error` event the subscriptions emitted.
 */
async function churn(
  h: Herald,
  channel: string,
  cycles: number,
  rnd: () => number,
): Promise<{ sub: Subscription<{ n: number }>; errors: string[] }> {
  const errors: string[] = [];
  const make = (): Subscription<{ n: number }> => {
    const s = h.subscribe<{ n: number }>(channel);
    s.on('error', (e) => errors.push(e.code));
    return s;
  };
  let sub = make();
  for (let i = 0; i < cycles; i++) {
    const rhythm = Math.floor(rnd() * 5);
    if (rhythm === 1) await Promise.resolve();
    else if (rhythm === 2) await turns(1 + Math.floor(rnd() * 4));
    else if (rhythm === 3) await withTimeout(sub.ready(), 5000, `subscription ${i} ready`);
    sub.unsubscribe();
    // An effect's cleanup and the next mount can also be turns of the event loop apart.
    if (rhythm === 4) await turns(1 + Math.floor(rnd() * 3));
    sub = make();
  }
  return { sub, errors };
}

describe('one operation per stream at a time (scripted server)', () => {
  it('sends one subscribe for subscribe → unsubscribe → subscribe in one tick, before and after connecting', async () => {
    const server = new FakeServer();
    const h = fake(server);
    h.subscribe('a').unsubscribe(); // before the connection: nothing to send
    const a = h.subscribe('a');
    await a.ready();
    h.subscribe('b').unsubscribe(); // connected: the subscribe is still in the outbox, and taken back
    const b = h.subscribe('b');
    await b.ready();
    expect(server.commands.map((c) => `${c.frame['cmd']} ${c.frame['channel']}`)).toEqual([
      'subscribe a',
      'subscribe b',
    ]);
    expect([a.state, b.state]).toEqual(['subscribed', 'subscribed']);
  });

  it('waits for the unsubscribe reply before subscribing again', async () => {
    const server = new FakeServer();
    const h = fake(server);
    const first = h.subscribe('a');
    await first.ready();
    first.unsubscribe();
    const again = h.subscribe('a');
    await again.ready();
    expect(server.commands.map((c) => c.frame['cmd'])).toEqual(['subscribe', 'unsubscribe', 'subscribe']);
    const got = collect(again);
    server.publish('a', 'live');
    await count(again, got, 1);
    expect(got.map((p) => p.data)).toEqual(['live']);
  });

  it('reconciles HERALD_ERR_SUBSCRIBE_ALREADY: unsubscribes, then subscribes again from the cursor', async () => {
    const server = new FakeServer();
    const h = fake(server);
    server.overrides.set('subscribe', (f) => ({
      id: f['id'],
      error: { code: 'HERALD_ERR_SUBSCRIBE_ALREADY', message: `already subscribed to "${f['channel']}"` },
    }));
    const sub = h.subscribe('a');
    const errors: string[] = [];
    sub.on('error', (e) => errors.push(e.code));
    await sub.ready({ timeout: 2000 });
    expect(server.commands.map((c) => c.frame['cmd'])).toEqual(['subscribe', 'unsubscribe', 'subscribe']);
    expect(errors).toEqual([]);
    expect(sub.state).toBe('subscribed');
  });
});

describe('a long-lived AbortSignal', () => {
  it('keeps no abort listener after 200 subscribe/unsubscribe cycles, nor after close()', async () => {
    const server = new FakeServer();
    const h = fake(server);
    const ac = new AbortController();
    for (let i = 0; i < 200; i++) {
      const sub = h.subscribe(`sig.${i % 7}`, { signal: ac.signal });
      if (i % 3 === 0) await sub.ready();
      sub.unsubscribe();
    }
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    const live = [h.subscribe('sig.x', { signal: ac.signal }), h.subscribe('sig.y', { signal: ac.signal })];
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(2);
    h.close();
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    expect(live.map((s) => s.state)).toEqual(['unsubscribed', 'unsubscribed']);
  });

  it('still unsubscribes every live subscription when it aborts', async () => {
    const server = new FakeServer();
    const h = fake(server);
    const ac = new AbortController();
    const subs = ['x', 'y'].map((ch) => h.subscribe(ch, { signal: ac.signal }));
    await Promise.all(subs.map((s) => s.ready()));
    ac.abort();
    expect(subs.map((s) => s.state)).toEqual(['unsubscribed', 'unsubscribed']);
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
  });
});

describe.each(['websocket', 'http-stream', 'sse', 'long-poll'] as TransportName[])('churn over %s', (transport) => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({ http: { heartbeatInterval: 1000 }, namespaces: { churn: { historySize: 5000 } } });
  });
  afterAll(() => srv?.close());

  it('leaves one working subscription after 80 StrictMode-style cycles while a publisher never stops', async () => {
    const channel = `churn.${transport}`;
    const rnd = random(transport.length * 7919);
    // Two POST /send may overtake each other (a browser sends them over several connections): some
    // wait up to 15 ms before they leave.
    const jittery: typeof fetch = (input, init) =>
      String(input).includes('/send') && rnd() < 0.5
        ? new Promise((r) => setTimeout(r, rnd() * 15)).then(() => fetch(input, init))
        : fetch(input, init);
    const h = new Herald(srv.url, { transports: [transport], timeout: 5000, fetch: jittery });
    clients.push(h);
    const clientErrors: unknown[] = [];
    h.on('error', (e) => clientErrors.push(e));
    const pub = publisher(srv.url, channel, 3);
    let sent = 0;
    let from = 0;
    let got: Publication<{ n: number }>[] = [];
    let errors: string[] = [];
    try {
      await until(() => pub.sent() >= 5, 'the publisher to start');
      const churned = await churn(h, channel, 80, rnd);
      errors = churned.errors;
      const sub = churned.sub;
      const subscribed = next(sub, 'subscribed', () => true, 5000);
      got = collect(sub);
      await withTimeout(sub.ready(), 5000, 'the last subscription ready');
      // Delivery starts right after the position of the subscribe reply.
      from = (await subscribed).offset;
      await until(() => pub.sent() >= from + 30, 'more publications after ready()', 10_000);
      sent = await pub.stop();
      await count(sub, got, sent - from, 10_000);
    } finally {
      await pub.stop().catch(() => undefined);
    }
    const offsets = got.map((p) => p.offset);
    expect(gapless(offsets, from + 1)).toBeUndefined();
    expect(offsets.at(-1)).toBe(sent);
    expect(got.map((p) => p.data.n)).toEqual(offsets);
    expect(errors).toEqual([]);
    expect(clientErrors).toEqual([]);
    expect(h.state).toBe('connected');
    // The server holds exactly the one subscription (a long-poll session lives only while a poll is held).
    if (transport !== 'long-poll') {
      const held = srv.server.hub.sessions.get(h.client ?? '')?.subscriptions;
      expect([held?.size, held?.has(channel)]).toEqual([1, true]);
    }
  }, 30_000);
});
