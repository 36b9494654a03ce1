/**
 * Three Herald nodes as one, through NATS JetStream: the multi-node suite
 * (conformance/multinode-suite.ts), concurrent publishers on two nodes, and `/send` forwarded to the
 * node holding the session.
 */
import { expect, it } from 'vitest';
import { api, WsClient } from '@herald/test-support/server';
import { multinodeSuite } from './conformance/multinode-suite.js';
import type { Received } from './support/churning-client.js';
import { dropPrefix, skipNats, startNatsNode, testPrefix, type NatsNode } from './support/nats.js';
import { SESSION_SECRET, expectForwardedSend } from './support/send-forward.js';

const prefix = testPrefix();

multinodeSuite('NATS', {
  skip: skipNats,
  start: (config) => startNatsNode(prefix, config),
  cleanup: () => dropPrefix(prefix),
  config: {
    http: { sessionSecret: SESSION_SECRET, sendForwardTimeout: 1000 },
    namespaces: { two: { historySize: 1000 }, fwd: { clientPublish: true } },
  },
  more: (nodes) => {
    it('keeps one order with no gap and no duplicate when two nodes publish to one channel at once', async () => {
      const [a, b, c] = nodes();
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
      for (const node of nodes()) {
        const h = await api(node.url, 'history', { channel: 'two.x', limit: 1000 });
        expect(h.body.publications.map((p: Received) => p.data)).toEqual(seen);
      }
      await watcher.close();
    });

    it('forwards POST /send to the node holding the SSE session', async () => {
      const [a, b] = nodes();
      await expectForwardedSend(a.url, b.url, 'fwd.x');
    });
  },
});
