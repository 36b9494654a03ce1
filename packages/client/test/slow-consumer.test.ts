/**
 * The SDK under a namespace whose `slowConsumer` policy drops publications for slow readers: a Node
 * client whose socket stops reading while a publisher floods is told what was skipped (`skip`
 * event, with the cursor to read them from history), and takes it as that, not as a loss: it does
 * not reconnect nor resubscribe, and delivers the kept publications in order after the ones before.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Herald, type SkipEvent, type WebSocketLike } from '@herald/client';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { collect, next, reach } from './support/helpers.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    limits: { maxQueueBytes: 256 * 1024 },
    namespaces: { tick: { historySize: 2000, slowConsumer: { policy: 'drop-oldest', keep: 3 } } },
  });
});
afterAll(async () => {
  await srv.close();
});

/** The sockets the client opens, so that the test can stop one reading. */
const sockets: WebSocket[] = [];
class TrackedWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols);
    sockets.push(this);
  }
}

it('emits skip with the cursor of what was dropped, and neither reconnects nor resubscribes', async () => {
  const h = new Herald(srv.url, {
    transports: ['websocket'],
    WebSocket: TrackedWebSocket as unknown as WebSocketLike,
  });
  const sub = h.subscribe('tick.btc');
  await sub.ready();
  const got = collect(sub);
  const skips: SkipEvent[] = [];
  sub.on('skip', (e) => skips.push(e));
  const states: string[] = [];
  sub.on('state', (e) => states.push(e.state));
  h.on('state', (e) => states.push(`herald:${e.state}`));
  const ws = sockets.at(-1) as WebSocket;
  const clientId = h.client as string;

  ws.pause();
  const skippedBefore = srv.server.metrics.value('herald_slow_skipped_total') ?? 0;
  const payload = 'p'.repeat(16 * 1024);
  let top = 0;
  // Bounded: far more than socket buffers plus the queue bound, stopped once 20 were dropped.
  while (top < 1500 && (srv.server.metrics.value('herald_slow_skipped_total') ?? 0) - skippedBefore < 20) {
    const r = await api(srv.url, 'publish', { channel: 'tick.btc', data: { n: top + 1, payload } });
    top = r.body.offset as number;
    expect(srv.server.hub.sessions.has(clientId)).toBe(true);
  }
  const skip = next(sub, 'skip', () => true, 20_000);
  ws.resume();
  const e = await skip;
  await reach(sub, top, 20_000);

  expect(skips).toHaveLength(1);
  expect(e.count).toBeGreaterThanOrEqual(20);
  const offsets = got.map((p) => p.offset);
  // Everything before the skip, then the newest 3: nothing twice, nothing out of order.
  const before = offsets.filter((o) => o <= e.since.offset);
  expect(before).toEqual(Array.from({ length: e.since.offset }, (_, i) => i + 1));
  expect(offsets.slice(before.length)).toEqual([top - 2, top - 1, top]);
  expect(e.since.offset + e.count).toBe(top - 3);
  expect(sub.cursor?.offset).toBe(top);
  // No reconnect, no resubscribe.
  expect(states).toEqual([]);
  expect(h.client).toBe(clientId);

  const missed = await sub.history({ since: e.since, limit: e.count });
  expect(missed.publications.map((p) => p.offset)).toEqual(
    Array.from({ length: e.count }, (_, i) => e.since.offset + 1 + i),
  );
  h.close();
}, 90_000);
