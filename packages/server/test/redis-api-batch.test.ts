/**
 * `POST /api/batch` on the Redis engine: the publishes of one batch are sent without waiting for
 * each other (pipelined), and publications to one channel still get offsets in command order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, WsClient, type Frame } from '@herald/test-support/server';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const prefix = testPrefix();

describe.skipIf(skipRedis)('server API batch on the Redis engine', () => {
  let node: RedisNode;
  beforeAll(async () => {
    node = await startRedisNode(prefix, { namespaces: { rb: { historySize: 1000 } } });
  });
  afterAll(async () => {
    await node.close();
    await dropPrefix(prefix);
  });

  it('gives 1000 publishes to one channel offsets in command order', async () => {
    const c = await WsClient.subscribed(node.wsUrl, 'rb.one', 'rb.two');
    // Mostly rb.one, with every tenth command going to rb.two: two channels interleaved in one pipeline.
    const commands = Array.from({ length: 1000 }, (_, i) => ({
      publish: { channel: i % 10 === 9 ? 'rb.two' : 'rb.one', data: i },
    }));
    const r = await api(node.url, 'batch', { commands });
    expect(r.status).toBe(200);
    const replies = r.body.replies as Frame[];
    expect(replies).toHaveLength(1000);
    for (const channel of ['rb.one', 'rb.two']) {
      const mine = replies.map((x) => x['publish'] as Frame).filter((p) => p['channel'] === channel);
      expect(
        mine.map((p) => p['offset']),
        channel,
      ).toEqual(Array.from({ length: mine.length }, (_, i) => i + 1));
    }
    const datas = (channel: string): number[] =>
      commands.filter((x) => x.publish.channel === channel).map((x) => x.publish.data);
    const pubs = await c.waitForCount((f) => f['push'] === 'pub', 1000, 'the 1000 publications');
    for (const channel of ['rb.one', 'rb.two']) {
      const got = pubs.filter((p) => p['stream'] === channel);
      expect(
        got.map((p) => p['data']),
        channel,
      ).toEqual(datas(channel));
      expect(got.map((p) => p['offset'])).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
    }
    const h = await api(node.url, 'history', { channel: 'rb.one', limit: 1000 });
    expect(h.body.publications.map((p: Frame) => p['data'])).toEqual(datas('rb.one'));
    await c.close();
  });
});
