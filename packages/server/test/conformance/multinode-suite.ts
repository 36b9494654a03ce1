/**
 * The multi-node suite: three Herald nodes sharing one engine's store act as one server (Redis and
 * NATS run it unchanged): clients reconnecting to random nodes with their cursors while a publisher
 * on another node never stops, idempotency keys, history and live delivery shared by all.
 * `start` makes one node; the nodes of a run share the store's namespace (a key or subject prefix),
 * which `cleanup` drops once they are closed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { api, WsClient, type TestConfigInput, type TestServer } from '@herald/test-support/server';
import { ChurningClient, prng, type Received } from '../support/churning-client.js';

export type ThreeNodes<N> = readonly [N, N, N];

export interface MultinodeFixture<N extends TestServer> {
  /** The store is absent and this is not CI. */
  readonly skip: boolean;
  /** Starts one node with `config`: the suite's settings and the caller's `config`. */
  start(config: TestConfigInput): Promise<N>;
  /** Drops what the nodes left in the store (they are closed by then). */
  cleanup(): Promise<void>;
  /** Settings the caller's own tests need (namespaces are added to the suite's). */
  readonly config?: TestConfigInput;
  /** More checks on a node while two of its clients are subscribed to one stream. */
  afterFanOut?(node: N): void;
  /** The engine's own tests, on the same three nodes, after the suite's. */
  more?(nodes: () => ThreeNodes<N>): void;
}

export function multinodeSuite<N extends TestServer>(name: string, f: MultinodeFixture<N>): void {
  const config: TestConfigInput = {
    ...f.config,
    namespaces: { ...f.config?.namespaces, race: { historySize: 5000 } },
  };
  let started: N[] = [];
  const nodes = (): ThreeNodes<N> => {
    const [a, b, c] = started;
    if (a === undefined || b === undefined || c === undefined) throw new Error('the three nodes did not start');
    return [a, b, c];
  };

  describe.skipIf(f.skip)(`three nodes over ${name}`, () => {
    beforeAll(async () => {
      started = await Promise.all([0, 1, 2].map(() => f.start(config)));
    });
    afterAll(async () => {
      await Promise.all(started.map((n) => n.close()));
      await f.cleanup();
    });

    it('no gap and no duplicate while clients reconnect to random nodes and a publisher on another node never stops', async () => {
      const [a, b, c] = nodes();
      const rand = prng(4242);
      const pick = prng(99);
      const clientNodes = [a, c];
      const url = (): string => (clientNodes[Math.floor(pick() * clientNodes.length)] as N).wsUrl;
      const streams = ['race.a', 'race.**', 'race.b.**', 'race.b.c', 'race.a', 'race.**'];
      const clients = streams.map((s, i) => new ChurningClient(url, s, prng(2000 + i)));
      for (const cl of clients) cl.epoch = (await api(a.url, 'history', { channel: cl.stream, limit: 0 })).body.epoch;
      const channels = ['race.a', 'race.b', 'race.b.c', 'race.b.c.d'];
      const total = 400;
      let published = 0;
      const publisher = (async () => {
        for (let i = 0; i < total; i++) {
          const channel = channels[Math.floor(rand() * channels.length)]!;
          const r = await api(b.url, 'publish', { channel, data: { i, channel } });
          if (r.status !== 200) throw new Error(`publish failed ${JSON.stringify(r.body)}`);
          published += 1;
        }
      })();
      const churners = clients.map((cl) => cl.churn(() => published >= total));
      await withTimeout(publisher, 60_000, 'publisher');
      for (const cl of clients) cl.interrupt();
      await withTimeout(Promise.all(churners), 30_000, 'churning clients');

      for (const cl of clients) {
        const h = await api(c.url, 'history', { channel: cl.stream, limit: 5000 });
        expect(h.status).toBe(200);
        await cl.settle(h.body.offset);
        expect(cl.errors).toEqual([]);
        const expected = (h.body.publications as Received[]).map((p) => ({
          offset: p.offset,
          channel: p.channel,
          data: p.data,
        }));
        expect(expected.length).toBe(h.body.offset);
        expect(cl.got).toEqual(expected);
        expect(cl.reconnects).toBeGreaterThan(3);
      }
      const all = await api(a.url, 'history', { channel: 'race.**', limit: 5000 });
      expect(all.body.publications.map((p: Received) => (p.data as { i: number }).i)).toEqual([...Array(total).keys()]);
    }, 120_000);

    it('applies an idempotency key once, whichever node gets the retries', async () => {
      const results = [];
      for (const n of [...nodes(), ...nodes()]) {
        const r = await api(n.url, 'publish', { channel: 'idem.x', data: { n: 1 }, idempotencyKey: 'order-17' });
        expect(r.status).toBe(200);
        results.push(r.body);
      }
      expect(results.map((r) => r.duplicate)).toEqual([false, true, true, true, true, true]);
      expect(new Set(results.map((r) => `${r.epoch}:${r.offset}`)).size).toBe(1);
      const concurrent = await Promise.all(
        nodes().map((n) => api(n.url, 'publish', { channel: 'idem.y', data: 2, idempotencyKey: 'k2' })),
      );
      expect(concurrent.filter((r) => r.body.duplicate === false)).toHaveLength(1);
      for (const n of nodes()) {
        const h = await api(n.url, 'history', { channel: 'idem.**' });
        expect(h.body.publications.map((p: Received) => p.channel)).toEqual(['idem.x', 'idem.y']);
      }
    });

    it('shows the same offsets, epochs and history from every node', async () => {
      for (let i = 0; i < 12; i++) {
        const n = nodes()[i % 3]!;
        await api(n.url, 'publish', { channel: i % 2 === 0 ? 'same.a' : 'same.a.b', data: i });
      }
      for (const stream of ['same.a', 'same.a.b', 'same.a.**', 'same.**']) {
        const views = await Promise.all(nodes().map((n) => api(n.url, 'history', { channel: stream })));
        expect(views[0]!.body.offset).toBe(stream === 'same.a' || stream === 'same.a.b' ? 6 : 12);
        expect(views[1]!.body).toEqual(views[0]!.body);
        expect(views[2]!.body).toEqual(views[0]!.body);
      }
    });

    it('delivers a publication made on one node to subscribers on the others, once each', async () => {
      const [a, b, c] = nodes();
      const onA = await WsClient.connect(a.wsUrl);
      const onC = await WsClient.connect(c.wsUrl);
      const onC2 = await WsClient.connect(c.wsUrl);
      for (const cl of [onA, onC, onC2]) await cl.request({ cmd: 'subscribe', channel: 'live.**' });
      await api(b.url, 'publish', { channel: 'live.x', data: 'first' });
      await api(b.url, 'publish', { channel: 'live.y', data: 'sentinel' });
      for (const cl of [onA, onC, onC2]) {
        await cl.waitFor((fr) => fr['push'] === 'pub' && fr['data'] === 'sentinel', 'sentinel');
        expect(cl.pubs().map((p) => [p['offset'], p['data']])).toEqual([
          [1, 'first'],
          [2, 'sentinel'],
        ]);
      }
      f.afterFanOut?.(c);
      for (const cl of [onA, onC, onC2]) await cl.close();
    });

    f.more?.(nodes);
  });
}
