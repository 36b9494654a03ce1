/**
 * Recovery under fire: a publisher that never stops while clients on exact and subtree streams
 * drop (abruptly or cleanly) and come back with their cursors at random moments. Every client must
 * end with exactly its stream's sequence — compared offset by offset and payload by payload with
 * the stream's history, which holds every publication (history size > publications).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { ChurningClient, prng, type Received } from './support/churning-client.js';
import { FakeClock } from './support/fake-clock.js';
import { LatencyEngine } from './support/latency-engine.js';
import { withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';

let srv: TestServer;
let latent: TestServer;
const config = {
  namespaces: { race: { historySize: 5000 }, tiny: { historySize: 3 }, ttl: { historySize: 100, historyTtl: 150 } },
};
beforeAll(async () => {
  srv = await startServer(config);
  latent = await startServer(config, { engine: new LatencyEngine(new MemoryEngine(), 5, prng(7)) });
});
afterAll(async () => {
  await srv.close();
  await latent.close();
});

describe('recovery', () => {
  it.each([
    ['memory engine', () => srv],
    ['memory engine behind 0-5 ms of latency', () => latent],
  ])(
    'no gap and no duplicate for exact and subtree streams while a publisher never stops (%s)',
    async (_name, pick) => {
      const srv = pick();
      const rand = prng(12345);
      const streams = ['race.a', 'race.**', 'race.b.**', 'race.b.c', 'race.a', 'race.**', 'race.b.**', 'race.**'];
      const clients = streams.map((s, i) => new ChurningClient(srv.wsUrl, s, prng(1000 + i)));
      // Every client starts from the beginning of its stream: cursor (epoch, 0).
      for (const c of clients) c.epoch = (await api(srv.url, 'history', { channel: c.stream, limit: 0 })).body.epoch;
      const channels = ['race.a', 'race.b', 'race.b.c', 'race.b.c.d'];
      const total = 600;
      let published = 0;
      const publisher = (async () => {
        for (let i = 0; i < total; i++) {
          const channel = channels[Math.floor(rand() * channels.length)]!;
          const r = await api(srv.url, 'publish', { channel, data: { i, channel } });
          if (r.status !== 200) throw new Error(`publish failed ${JSON.stringify(r.body)}`);
          published += 1;
        }
      })();
      const churners = clients.map((c) => c.churn(() => published >= total));
      await withTimeout(publisher, 60_000, 'publisher');
      for (const c of clients) c.interrupt();
      await withTimeout(Promise.all(churners), 30_000, 'churning clients');

      for (const c of clients) {
        const h = await api(srv.url, 'history', { channel: c.stream, limit: 5000 });
        expect(h.status).toBe(200);
        await c.settle(h.body.offset);
        expect(c.errors).toEqual([]);
        const expected = (h.body.publications as Received[]).map((p) => ({
          offset: p.offset,
          channel: p.channel,
          data: p.data,
        }));
        expect(expected.length).toBe(h.body.offset); // history holds the whole stream
        expect(c.got).toEqual(expected);
        expect(c.reconnects).toBeGreaterThan(3);
      }
      // Every publication is in the subtree stream of its namespace, exactly once.
      const all = await api(srv.url, 'history', { channel: 'race.**', limit: 5000 });
      expect(all.body.publications.map((p: Received) => (p.data as { i: number }).i)).toEqual([...Array(total).keys()]);
    },
    120_000,
  );

  it('recovers exactly what was missed, then goes live', async () => {
    const a = await WsClient.connect(srv.wsUrl);
    const r1 = await a.request({ cmd: 'subscribe', channel: 'rec.x.**' });
    await api(srv.url, 'publish', { channel: 'rec.x', data: 1 });
    await a.waitFor((f) => f['push'] === 'pub', 'first pub');
    a.terminate();
    await api(srv.url, 'publish', { channel: 'rec.x.y', data: 2 });
    await api(srv.url, 'publish', { channel: 'rec.x', data: 3 });
    const b = await WsClient.connect(srv.wsUrl);
    const r2 = await b.request({
      cmd: 'subscribe',
      channel: 'rec.x.**',
      since: { epoch: r1['result'].epoch, offset: 1 },
    });
    expect(r2['result']).toMatchObject({ recovered: true, offset: 3, epoch: r1['result'].epoch });
    expect(r2['result'].publications).toEqual([
      { channel: 'rec.x.y', offset: 2, data: 2 },
      { channel: 'rec.x', offset: 3, data: 3 },
    ]);
    await api(srv.url, 'publish', { channel: 'rec.x', data: 4 });
    const live = await b.waitFor((f) => f['push'] === 'pub', 'live pub');
    expect(live).toMatchObject({ offset: 4, data: 4 });
    await b.close();
  });

  it('says recovered: false when the cursor fell out of history, and gives the backlog asked for', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    const r = await c.request({ cmd: 'subscribe', channel: 'tiny.x' });
    const epoch = r['result'].epoch;
    for (let i = 1; i <= 6; i++) await api(srv.url, 'publish', { channel: 'tiny.x', data: i });
    await c.waitForCount((f) => f['push'] === 'pub', 6, 'six pubs');
    await c.close();
    const d = await WsClient.connect(srv.wsUrl);
    const r2 = await d.request({ cmd: 'subscribe', channel: 'tiny.x', since: { epoch, offset: 1 }, backlog: 2 });
    expect(r2['result']).toMatchObject({ recovered: false, offset: 6 });
    expect(r2['result'].publications.map((p: Received) => p.data)).toEqual([5, 6]);
    // Within history it still recovers.
    const r3 = await d.request({ cmd: 'subscribe', channel: 'tiny.**', since: { epoch: 'nope', offset: 0 } });
    expect(r3['result']).toMatchObject({ recovered: false, publications: [] });
    await d.close();
  });

  it('says recovered: false for a stale epoch (for example after a restart)', async () => {
    await api(srv.url, 'publish', { channel: 'ep.x', data: 1 });
    const c = await WsClient.connect(srv.wsUrl);
    const r = await c.request({ cmd: 'subscribe', channel: 'ep.x', since: { epoch: 'oldEpoch1', offset: 1 } });
    expect(r['result']).toMatchObject({ recovered: false, offset: 1, publications: [] });
    await c.close();
  });

  it('recovers when nothing was missed even on a namespace without history', async () => {
    const ns = await startServer({ namespaces: { nohist: { historySize: 0 } } });
    try {
      const c = await WsClient.connect(ns.wsUrl);
      await api(ns.url, 'publish', { channel: 'nohist.x', data: 1 });
      const r = await c.request({ cmd: 'subscribe', channel: 'nohist.x' });
      expect(r['result'].offset).toBe(1);
      await c.close();
      const d = await WsClient.connect(ns.wsUrl);
      const same = await d.request({
        cmd: 'subscribe',
        channel: 'nohist.x',
        since: { epoch: r['result'].epoch, offset: 1 },
      });
      expect(same['result']).toMatchObject({ recovered: true, offset: 1 });
      await api(ns.url, 'publish', { channel: 'nohist.x', data: 2 });
      await d.waitFor((f) => f['push'] === 'pub' && f['offset'] === 2, 'live pub');
      await d.close();
    } finally {
      await ns.close();
    }
  });

  it('evicts history by size and by TTL (on the engine clock, a fake one)', async () => {
    for (let i = 1; i <= 5; i++) await api(srv.url, 'publish', { channel: 'tiny.evict', data: i });
    const h = await api(srv.url, 'history', { channel: 'tiny.evict' });
    expect(h.body.publications.map((p: Received) => p.data)).toEqual([3, 4, 5]);
    const clock = new FakeClock(Date.now());
    const timed = await startServer(config, { engine: new MemoryEngine({ clock }) });
    try {
      await api(timed.url, 'publish', { channel: 'ttl.x', data: 1 });
      const first = await api(timed.url, 'history', { channel: 'ttl.x' });
      expect(first.body.publications).toHaveLength(1);
      clock.advance(149);
      expect((await api(timed.url, 'history', { channel: 'ttl.x' })).body.publications).toHaveLength(1);
      // Past the 150 ms TTL: the publication leaves history, the offset and the epoch stay.
      clock.advance(2);
      const after = await api(timed.url, 'history', { channel: 'ttl.x' });
      expect(after.body.publications).toEqual([]);
      expect(after.body.offset).toBe(1);
      expect(after.body.epoch).toBe(first.body.epoch);
    } finally {
      await timed.close();
    }
  });
});
