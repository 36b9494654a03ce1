/**
 * Per-namespace slow-consumer policies (`slowConsumer`): a subscriber that stops reading while a
 * publisher floods is not disconnected under `drop-oldest` or `latest-only`; the server holds at
 * most `keep` publications for it, its output stays within maxQueueBytes, and when it reads again it
 * gets a `skip` push naming what was dropped (exactly what `history` from that cursor returns), then
 * the kept publications in order. A fast subscriber of the same stream meanwhile gets everything, in
 * order. On WebSocket and on SSE. (`disconnect`, the default, is slow-consumer.test.ts.)
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LineSplitter, SseParser, withTimeout, type SseEvent } from '@herald/test-support';
import { api, startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';
import { systemClock, type Clock } from '../src/core/clock.js';

const MAX_QUEUE = 256 * 1024;
const KEEP = 5;
const PAYLOAD = 'x'.repeat(16 * 1024);
/** At most this many publications per flood (far more than socket buffers plus maxQueueBytes). */
const MAX_FLOOD = 1500;

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    limits: { maxQueueBytes: MAX_QUEUE },
    namespaces: {
      drop: { historySize: 2000, slowConsumer: { policy: 'drop-oldest', keep: KEEP } },
      latest: { historySize: 2000, slowConsumer: { policy: 'latest-only', keep: 10 } },
    },
  });
});
afterAll(async () => {
  await srv.close();
});

const skipped = (): number => srv.server.metrics.value('herald_slow_skipped_total') ?? 0;

/**
 * Publishes to `channels` in turn until `enough` more publications were dropped for slow subscribers
 * (or MAX_FLOOD), checking after each that `clientId` is still connected within its bound. Returns
 * the data published, by channel.
 */
async function flood(channels: string[], clientId: string, enough: number): Promise<Map<string, number[]>> {
  const hub = srv.server.hub;
  const sent = new Map<string, number[]>(channels.map((c) => [c, []]));
  const before = skipped();
  for (let n = 0; n < MAX_FLOOD && skipped() - before < enough; n++) {
    const channel = channels[n % channels.length] as string;
    const r = await api(srv.url, 'publish', { channel, data: { n, payload: PAYLOAD } });
    expect(r.status).toBe(200);
    sent.get(channel)?.push(n);
    const session = hub.sessions.get(clientId);
    expect(session, 'the slow client is still connected').toBeDefined();
    expect(session?.outputBytes()).toBeLessThanOrEqual(MAX_QUEUE);
    // What the server holds for it is bounded by the connection's own bound, whatever `keep` allows.
    expect(session?.heldBytes()).toBeLessThanOrEqual(MAX_QUEUE / 2);
  }
  expect(skipped() - before).toBeGreaterThanOrEqual(enough);
  return sent;
}

/** Checks that pubs and skips of one stream cover offsets first..last, each exactly once, in order. */
function coverage(frames: Frame[], stream: string): { offsets: number[]; skips: Frame[] } {
  const offsets: number[] = [];
  const skips: Frame[] = [];
  let last: number | undefined;
  for (const f of frames) {
    if (f['stream'] !== stream) continue;
    if (f['push'] === 'pub') {
      if (last !== undefined) expect(f['offset'], `offset after ${last}`).toBe(last + 1);
      last = f['offset'] as number;
      offsets.push(last);
    } else if (f['push'] === 'skip') {
      expect(f['since'].offset).toBe(last);
      expect(f['count']).toBeGreaterThan(0);
      last = (f['since'].offset as number) + (f['count'] as number);
      skips.push(f);
    }
  }
  return { offsets, skips };
}

describe('drop-oldest over WebSocket', () => {
  it('keeps the newest K, tells what it skipped, and history from the told cursor has exactly those', async () => {
    const fast = await WsClient.subscribed(srv.wsUrl, 'drop.feed');
    const slow = await WsClient.subscribed(srv.wsUrl, 'drop.feed');
    slow.ws.pause(); // stop reading: the kernel buffers fill, then the server's output
    const sent = await flood(['drop.feed'], slow.clientId, 40);
    const top = (sent.get('drop.feed') as number[]).length;
    expect(srv.server.metrics.value('herald_slow_disconnects_total') ?? 0).toBe(0);

    // The fast subscriber got everything, in order, meanwhile.
    const fastPubs = await fast.waitForCount((f) => f['push'] === 'pub', top, 'every publication', 20_000);
    expect(fastPubs.map((p) => p['offset'])).toEqual(Array.from({ length: top }, (_, i) => i + 1));
    expect(fast.frames.some((f) => f['push'] === 'skip')).toBe(false);

    slow.ws.resume();
    await slow.waitFor((f) => f['push'] === 'pub' && f['offset'] === top, 'the newest publication', 20_000);
    const { offsets, skips } = coverage(slow.frames, 'drop.feed');
    expect(skips).toHaveLength(1);
    const skip = skips[0] as Frame;
    // What came before the skip was queued before holding began; after it, exactly the newest K.
    expect(offsets.slice(-KEEP)).toEqual(Array.from({ length: KEEP }, (_, i) => top - KEEP + 1 + i));
    expect(skip['since'].offset + skip['count']).toBe(top - KEEP);
    expect(offsets[0]).toBe(1);

    const h = await slow.request({ cmd: 'history', channel: 'drop.feed', since: skip['since'], limit: skip['count'] });
    const missed = (h['result'].publications as Frame[]).map((p) => p['offset']);
    expect(missed).toEqual(Array.from({ length: skip['count'] }, (_, i) => skip['since'].offset + 1 + i));

    // Live again: the next publication goes straight through.
    await api(srv.url, 'publish', { channel: 'drop.feed', data: { n: 'after' } });
    await slow.waitFor((f) => f['push'] === 'pub' && f['data'].n === 'after', 'the publication after');
    expect(coverage(slow.frames, 'drop.feed').skips).toHaveLength(1);
    await Promise.all([fast.close(), slow.close()]);
  }, 90_000);
});

describe('drop-oldest after the connection fell behind', () => {
  // For a second after it was last behind, a connection's publications go out in batches (when its
  // output drains, or every 50 ms), not one write each: small writes to a slow reader's socket filled
  // its receive queue with small segments, which the kernel compacts, in the server's thread. The
  // server's clock stands still during the test, so a slow machine cannot outlast that second.
  it('writes what comes meanwhile in batches, then one write per publication again', async () => {
    let frozen: number | undefined;
    const clock: Clock = { ...systemClock, now: () => frozen ?? Date.now() };
    const own = await startServer(
      {
        limits: { maxQueueBytes: MAX_QUEUE },
        namespaces: { drop: { historySize: 2000, slowConsumer: { policy: 'drop-oldest', keep: KEEP } } },
      },
      { clock },
    );
    try {
      const writes = (): number => own.server.metrics.value('herald_writes_total', { transport: 'websocket' }) ?? 0;
      const slow = await WsClient.subscribed(own.wsUrl, 'drop.batch');
      frozen = Date.now();
      slow.ws.pause();
      const skippedBefore = own.server.metrics.value('herald_slow_skipped_total') ?? 0;
      let n = 0;
      while ((own.server.metrics.value('herald_slow_skipped_total') ?? 0) - skippedBefore < 10 && n < MAX_FLOOD) {
        const r = await api(own.url, 'publish', { channel: 'drop.batch', data: { n: n++, payload: PAYLOAD } });
        expect(r.status).toBe(200);
      }
      slow.ws.resume();
      await slow.waitFor((f) => f['push'] === 'pub' && f['data'].n === n - 1, 'the end of the flood', 20_000);

      // Caught up, within the second: 20 publications, each awaited, go out in a few batches.
      let w0 = writes();
      for (let i = 0; i < 20; i++) await api(own.url, 'publish', { channel: 'drop.batch', data: { batch: i } });
      await slow.waitFor((f) => f['push'] === 'pub' && f['data'].batch === 19, 'the last of the batch');
      expect(writes() - w0).toBeLessThanOrEqual(6);

      // A second later (by the server's clock), each publication is written as it comes again.
      frozen = Date.now() + 2000;
      w0 = writes();
      for (let i = 0; i < 10; i++) await api(own.url, 'publish', { channel: 'drop.batch', data: { after: i } });
      await slow.waitFor((f) => f['push'] === 'pub' && f['data'].after === 9, 'the last one after');
      expect(writes() - w0).toBe(10);
      // Every offset is written or announced skipped, exactly once, in order.
      const { offsets, skips } = coverage(slow.frames, 'drop.batch');
      const skipped = skips.reduce((k, f) => k + (f['count'] as number), 0);
      expect(offsets.length + skipped).toBe(n + 30);
      await slow.close();
    } finally {
      await own.close();
    }
  }, 90_000);
});

describe('a disconnect namespace on the same connection', () => {
  it('still closes the client with 3002 once that subscription overflows the queue', async () => {
    const hub = srv.server.hub;
    const slow = await WsClient.subscribed(srv.wsUrl, 'drop.mixed', 'plain.mixed');
    const id = slow.clientId;
    slow.ws.pause();
    for (let n = 0; n < MAX_FLOOD && hub.sessions.has(id); n++) {
      const channel = n % 2 === 0 ? 'drop.mixed' : 'plain.mixed';
      expect((await api(srv.url, 'publish', { channel, data: { n, payload: PAYLOAD } })).status).toBe(200);
    }
    expect(hub.sessions.has(id)).toBe(false);
    slow.ws.resume();
    const closed = await withTimeout(slow.closed, 15_000, 'slow client socket to close');
    expect([3002, 1006]).toContain(closed.code);
  }, 90_000);
});

describe('drop-oldest, many subscriptions on one connection', () => {
  it('holds at most half of maxQueueBytes across subscriptions, never overflowing the queue', async () => {
    // 12 × KEEP × 16 KiB would be more than maxQueueBytes: the connection's own bound wins, so the
    // newest of a channel may be dropped too, announced by a trailing skip.
    const channels = Array.from({ length: 12 }, (_, i) => `drop.m${i}`);
    const slow = await WsClient.subscribed(srv.wsUrl, ...channels);
    slow.ws.pause();
    const session = srv.server.hub.sessions.get(slow.clientId);
    const sent = await flood(channels, slow.clientId, 12 * 10);
    expect(session?.heldBytes()).toBeGreaterThan(0);
    slow.ws.resume();
    for (const c of channels) {
      const total = sent.get(c)?.length as number;
      await slow.waitFor(
        (f) =>
          f['stream'] === c &&
          ((f['push'] === 'pub' && f['offset'] === total) ||
            (f['push'] === 'skip' && f['since'].offset + f['count'] === total)),
        `the end of ${c}`,
        20_000,
      );
      // Every offset is either written or announced skipped, exactly once, in order.
      const { offsets, skips } = coverage(slow.frames, c);
      const skippedCount = skips.reduce((n, f) => n + (f['count'] as number), 0);
      expect(offsets.length + skippedCount).toBe(total);
      expect(skips.length).toBeGreaterThan(0);
    }
    expect(srv.server.hub.sessions.has(slow.clientId)).toBe(true);
    expect(session?.heldBytes()).toBe(0);
    await slow.close();
  }, 90_000);
});

describe('latest-only over WebSocket', () => {
  it('gives a slow subtree subscriber the latest value of each channel, skips announced', async () => {
    const channels = ['latest.a', 'latest.b', 'latest.c'];
    const fast = await WsClient.subscribed(srv.wsUrl, 'latest.**');
    const slow = await WsClient.subscribed(srv.wsUrl, 'latest.**');
    slow.ws.pause();
    const sent = await flood(channels, slow.clientId, 40);
    const total = channels.reduce((n, c) => n + (sent.get(c) as number[]).length, 0);

    slow.ws.resume();
    await slow.waitFor((f) => f['push'] === 'pub' && f['offset'] === total, 'the newest publication', 20_000);
    const { skips } = coverage(slow.frames, 'latest.**');
    expect(skips.length).toBeGreaterThan(0);
    // The last value each channel got is the last one published to it.
    for (const c of channels) {
      const got = slow.pubs('latest.**').filter((p) => p['channel'] === c);
      expect(got.at(-1)?.['data'].n).toBe(sent.get(c)?.at(-1));
    }
    const fastPubs = await fast.waitForCount((f) => f['push'] === 'pub', total, 'every publication', 20_000);
    expect(fastPubs.map((p) => p['offset'])).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    await Promise.all([fast.close(), slow.close()]);
  }, 90_000);
});

/**
 * A raw reader of `/sse` or `/stream` on node:http, whose reading can be paused (the kernel buffers
 * then fill). NDJSON lines come out as SSE-like events named after their push (`message` for `pub`).
 */
async function reader(path: string): Promise<{ events: SseEvent[]; res: http.IncomingMessage; wait: Waiter }> {
  const events: SseEvent[] = [];
  const waiters: Array<() => void> = [];
  const got = (e: SseEvent): void => {
    events.push(e);
    for (const w of waiters.splice(0)) w();
  };
  const parser = path.startsWith('/sse')
    ? new SseParser(got)
    : new LineSplitter((line) => {
        const push = (JSON.parse(line) as Frame)['push'] as string | undefined;
        got({ event: push === 'pub' ? 'message' : (push ?? 'reply'), data: line, id: undefined });
      });
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get(`${srv.url}${path}`, resolve).on('error', reject);
  });
  res.setEncoding('utf8');
  res.on('data', (t: string) => parser.feed(t));
  const wait: Waiter = async (pred, what, ms = 5000) => {
    const deadline = Date.now() + ms;
    while (!events.some(pred)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await withTimeout(new Promise<void>((r) => waiters.push(r)), left, what);
    }
  };
  return { events, res, wait };
}
type Waiter = (pred: (e: SseEvent) => boolean, what: string, ms?: number) => Promise<void>;

describe.each(['sse', 'stream'])('drop-oldest over /%s', (transport) => {
  it('holds the newest K for a paused reader and announces the skip', async () => {
    const channel = `drop.${transport}`;
    const fast = await WsClient.subscribed(srv.wsUrl, channel);
    const slow = await reader(`/${transport}?channel=${channel}`);
    await slow.wait((e) => e.event === 'subscribed', 'subscribed');
    const connected = JSON.parse(slow.events.find((e) => e.event === 'connected')?.data ?? '{}') as Frame;
    slow.res.pause();
    const sent = await flood([channel], connected['client'] as string, 40);
    const top = (sent.get(channel) as number[]).length;
    slow.res.resume();
    const isTop = (e: SseEvent): boolean => e.event === 'message' && (JSON.parse(e.data) as Frame)['offset'] === top;
    await slow.wait(isTop, 'the newest publication', 20_000);
    const frames = slow.events
      .filter((e) => e.event === 'message' || e.event === 'skip')
      .map((e) => ({ push: e.event === 'skip' ? 'skip' : 'pub', ...(JSON.parse(e.data) as Frame) }));
    const { offsets, skips } = coverage(frames, channel);
    expect(skips).toHaveLength(1);
    expect(offsets.slice(-KEEP)).toEqual(Array.from({ length: KEEP }, (_, i) => top - KEEP + 1 + i));
    if (transport === 'sse') {
      // The last event's id names the newest position, so a reconnect resumes after the kept ones.
      expect(slow.events.filter((e) => e.event === 'message').at(-1)?.id).toMatch(new RegExp(`;${top}$`));
    }
    const fastPubs = await fast.waitForCount((f) => f['push'] === 'pub', top, 'every publication', 20_000);
    expect(fastPubs.map((p) => p['offset'])).toEqual(Array.from({ length: top }, (_, i) => i + 1));
    slow.res.destroy();
    await fast.close();
  }, 90_000);
});

describe('configuration', () => {
  it('is disconnect by default; a policy name alone keeps 100', async () => {
    const { resolveConfig } = await import('@herald/server');
    const { config } = resolveConfig({
      namespaces: { t: { slowConsumer: 'latest-only' }, d: { slowConsumer: { keep: 7 } } },
    });
    expect(config.namespaces['default']?.slowConsumer).toEqual({ policy: 'disconnect', keep: 100 });
    expect(config.namespaces['t']?.slowConsumer).toEqual({ policy: 'latest-only', keep: 100 });
    expect(config.namespaces['d']?.slowConsumer).toEqual({ policy: 'disconnect', keep: 7 });
    expect(() => resolveConfig({ namespaces: { t: { slowConsumer: { policy: 'drop', keep: 0 } } } })).toThrow(
      /namespaces\.t\.slowConsumer\.policy: must be one of disconnect, drop-oldest, latest-only, got "drop"[\s\S]*namespaces\.t\.slowConsumer\.keep: must be an integer from 1 to 10000/,
    );
  });
});
