/**
 * Three Herald nodes as one, through NATS JetStream: a publisher on one node, WebSocket clients on
 * the others reconnecting to random nodes with their cursors; concurrent publishers on two nodes;
 * idempotency keys, history and `/send` shared by all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { api, WsClient } from '@herald/test-support/server';
import { ChurningClient, prng, type Received } from './support/churning-client.js';
import { dropPrefix, skipNats, startNatsNode, testPrefix, type NatsNode } from './support/nats.js';
import { SESSION_SECRET, expectForwardedSend } from './support/send-forward.js';

const prefix = testPrefix();
const config = {
  http: { sessionSecret: SESSION_SECRET, sendForwardTimeout: 1000 },
  namespaces: { race: { historySize: 5000 }, two: { historySize: 1000 }, fwd: { clientPublish: true } },
};
let nodes: NatsNode[] = [];

describe.skipIf(skipNats)('three nodes over NATS', () => {
  beforeAll(async () => {
    nodes = await Promise.all([0, 1, 2].map(() => startNatsNode(prefix, config)));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await dropPrefix(prefix);
  });

  it('no gap and no duplicate while clients reconnect to random nodes and a publisher on another node never stops', async () => {
    const [a, b, c] = nodes as [NatsNode, NatsNode, NatsNode];
    const rand = prng(4242);
    const pick = prng(99);
    const clientNodes = [a, c];
    const url = (): string => (clientNodes[Math.floor(pick() * clientNodes.length)] as NatsNode).wsUrl;
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

  it('keeps one order with no gap and no duplicate when two nodes publish to one channel at once', async () => {
    const [a, b, c] = nodes as [NatsNode, NatsNode, NatsNode];
    const watcher = await WsClient.connect(c.wsUrl);
    await watcher.request({ cmd: 'subscribe', channel: 'two.x' });
    const n = 150;
    const publish = (node: NatsNode, i: number) => api(node.url, 'publish', { channel: 'two.x', data: i });
    const results = await Promise.all(Array.from({ length: n }, (_, i) => publish(i % 2 === 0 ? a : b, i)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results.map((r) => r.body.offset as number).sort((x, y) => x - y)).toEqual(
      [...Array(n).keys()].map((i) => i + 1),
    );
    await publish(a, -1); // sentinel
    await watcher.waitFor((f) => f['push'] === 'pub' && f['data'] === -1, 'the sentinel');
    expect(watcher.pubs().map((p) => p['offset'])).toEqual([...Array(n + 1).keys()].map((i) => i + 1));
    // The order the watcher saw is the order of the history, on every node.
    const seen = watcher.pubs().map((p) => p['data']);
    for (const node of nodes) {
      const h = await api(node.url, 'history', { channel: 'two.x', limit: 1000 });
      expect(h.body.publications.map((p: Received) => p.data)).toEqual(seen);
    }
    await watcher.close();
  });

  it('applies an idempotency key once, whichever node gets the retries', async () => {
    const results = [];
    for (const n of [...nodes, ...nodes]) {
      const r = await api(n.url, 'publish', { channel: 'idem.x', data: { n: 1 }, idempotencyKey: 'order-17' });
      expect(r.status).toBe(200);
      results.push(r.body);
    }
    expect(results.map((r) => r.duplicate)).toEqual([false, true, true, true, true, true]);
    expect(new Set(results.map((r) => `${r.epoch}:${r.offset}`)).size).toBe(1);
    const concurrent = await Promise.all(
      nodes.map((n) => api(n.url, 'publish', { channel: 'idem.y', data: 2, idempotencyKey: 'k2' })),
    );
    expect(concurrent.filter((r) => r.body.duplicate === false)).toHaveLength(1);
    for (const n of nodes) {
      const h = await api(n.url, 'history', { channel: 'idem.**' });
      expect(h.body.publications.map((p: Received) => p.channel)).toEqual(['idem.x', 'idem.y']);
    }
  });

  it('shows the same offsets, epochs and history from every node', async () => {
    for (let i = 0; i < 12; i++) {
      const n = nodes[i % 3]!;
      await api(n.url, 'publish', { channel: i % 2 === 0 ? 'same.a' : 'same.a.b', data: i });
    }
    for (const stream of ['same.a', 'same.a.b', 'same.a.**', 'same.**']) {
      const views = await Promise.all(nodes.map((n) => api(n.url, 'history', { channel: stream })));
      expect(views[0]!.body.offset).toBe(stream === 'same.a' || stream === 'same.a.b' ? 6 : 12);
      expect(views[1]!.body).toEqual(views[0]!.body);
      expect(views[2]!.body).toEqual(views[0]!.body);
    }
  });

  it('delivers a publication made on one node to subscribers on the others, once each', async () => {
    const [a, b, c] = nodes as [NatsNode, NatsNode, NatsNode];
    const onA = await WsClient.connect(a.wsUrl);
    const onC = await WsClient.connect(c.wsUrl);
    const onC2 = await WsClient.connect(c.wsUrl);
    for (const cl of [onA, onC, onC2]) await cl.request({ cmd: 'subscribe', channel: 'live.**' });
    await api(b.url, 'publish', { channel: 'live.x', data: 'first' });
    await api(b.url, 'publish', { channel: 'live.y', data: 'sentinel' });
    for (const cl of [onA, onC, onC2]) {
      await cl.waitFor((f) => f['push'] === 'pub' && f['data'] === 'sentinel', 'sentinel');
      expect(cl.pubs().map((p) => [p['offset'], p['data']])).toEqual([
        [1, 'first'],
        [2, 'sentinel'],
      ]);
    }
    for (const cl of [onA, onC, onC2]) await cl.close();
  });

  it('forwards POST /send to the node holding the SSE session', async () => {
    const [a, b] = nodes as [NatsNode, NatsNode];
    await expectForwardedSend(a.url, b.url, 'fwd.x');
  });
});
