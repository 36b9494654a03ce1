/**
 * Start on long-polling, upgrade to WebSocket in the background, with a publisher that never
 * stops: every publication arrives exactly once, in order, across the switch.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { Herald, type ConnectedEvent, type Publication } from '@herald/client';
import { Proxy } from './support/proxy.js';
import { startServer, type TestServer } from '@herald/test-support/server';
import { collect, count, gapless, next, publisher, reach } from './support/helpers.js';

let srv: TestServer;
const clients: Herald[] = [];
beforeAll(async () => {
  srv = await startServer({ namespaces: { up: { historySize: 1000 } } });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(() => srv.close());

it('upgrades from long-polling to WebSocket mid-stream: no gap, no duplicate', async () => {
  // The proxy holds the upgrade for 500 ms, so that long-polling delivers for a while first.
  const proxy = await Proxy.start(srv.url, 'slow');
  const pub = publisher(srv.url, 'up.live', 1);
  const h = new Herald(proxy.url, { upgrade: true });
  clients.push(h);
  const connects: ConnectedEvent[] = [];
  h.on('connected', (e) => connects.push(e));
  const states: string[] = [];
  h.on('state', (s) => states.push(s.state));
  const exact = h.subscribe<{ n: number }>('up.live');
  const tree = h.subscribe<{ n: number }>('up.**');
  const got: Publication<{ n: number }>[] = collect(exact);
  const gotTree = collect(tree);
  await next(h, 'connected', (e) => e.transport === 'websocket', 5000);
  const atSwitch = got.length;
  await count(exact, got, atSwitch + 50);
  const sent = await pub.stop();
  await reach(exact, sent);
  await reach(tree, sent);
  expect(connects.map((c) => c.transport)).toEqual(['long-poll', 'websocket']);
  expect(states).toEqual(['connected']);
  expect(h.transport).toBe('websocket');
  expect(atSwitch).toBeGreaterThan(0);
  // Each stream: every offset from the first one delivered to the last published, once, in order.
  for (const list of [got, gotTree]) {
    expect(
      gapless(
        list.map((p) => p.offset),
        list[0]!.offset,
      ),
    ).toBeUndefined();
    expect(list.at(-1)?.offset).toBe(sent);
    expect(list.map((p) => p.data.n)).toEqual(list.map((p) => p.offset));
  }
  await proxy.close();
  console.log(`upgrade: ${got.length} publications delivered, ${atSwitch} of them over long-polling before the switch`);
});

it('stays on long-polling when the upgrade fails, and loses nothing', async () => {
  const proxy = await Proxy.start(srv.url, 'refuse');
  try {
    const h = new Herald(proxy.url, { upgrade: true, connectTimeout: 300 });
    clients.push(h);
    const sub = h.subscribe<{ n: number }>('up.stay');
    const got = collect(sub);
    await sub.ready();
    const pub = publisher(srv.url, 'up.stay', 2);
    await count(sub, got, 30);
    const sent = await pub.stop();
    await count(sub, got, sent);
    expect(proxy.upgrades).toBe(1);
    expect(h.transport).toBe('long-poll');
    expect(gapless(got.map((p) => p.offset))).toBeUndefined();
  } finally {
    await proxy.close();
  }
});
