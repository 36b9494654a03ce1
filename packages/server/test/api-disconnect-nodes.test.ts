/**
 * The server API's `disconnect` in a deployment of two nodes sharing a Redis, with the admin page
 * off: a user's connections on both nodes are closed whichever node receives the request, and a
 * client held by the other node is closed through the engine's control channel, and a node that
 * started a moment ago is reached too.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { api, WsClient } from '@herald/test-support/server';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';
import { SECRET, sign } from './support/tokens.js';

const prefix = testPrefix();
const token = (sub: string): Promise<string> => sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);

describe.skipIf(skipRedis)('server API disconnect across two nodes over Redis', () => {
  let a: RedisNode;
  let b: RedisNode;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    const over = { auth: { hmacSecret: SECRET } };
    [a, b] = await Promise.all([startRedisNode(prefix, over), startRedisNode(prefix, over)]);
    // Each node learns the other from its figures in the shared store (every sample interval).
    await b.server.nodeStats?.tick();
    await a.server.nodeStats?.tick();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await dropPrefix(prefix);
  });

  async function user(node: RedisNode, name: string): Promise<WsClient> {
    const c = await WsClient.connect(`${node.wsUrl}?token=${await token(name)}`);
    clients.push(c);
    return c;
  }

  it('keeps a list of the other nodes with the admin page off', () => {
    expect(a.server.nodeStats).toBeDefined();
    expect(a.server.nodeStats?.series().map((s) => s.node)).toEqual([a.server.hub.nodeId, b.server.hub.nodeId]);
  });

  it("closes a user's connections on both nodes", async () => {
    const onA = await user(a, 'bob');
    const onB = await user(b, 'bob');
    const other = await user(b, 'carol');
    const r = await api(a.url, 'disconnect', { user: 'bob' });
    expect(r).toEqual({ status: 200, body: { disconnected: 2 } });
    const closed = await Promise.all([onA.closed, onB.closed]);
    expect(closed.map((c) => c.code)).toEqual([3500, 3500]);
    expect(other.closeCode).toBeUndefined();
  });

  it('reaches a node that started a moment ago (before any sample interval)', async () => {
    const c = await startRedisNode(prefix, {
      auth: { hmacSecret: SECRET },
      admin: { sampleInterval: 60_000 },
    });
    try {
      const onC = await user(c, 'erin');
      const r = await api(a.url, 'disconnect', { user: 'erin' });
      expect(r).toEqual({ status: 200, body: { disconnected: 1 } });
      expect((await onC.closed).code).toBe(3500);
    } finally {
      await c.close();
    }
  });

  it('closes a client held by the other node', async () => {
    const c = await user(b, 'dave');
    const r = await api(a.url, 'disconnect', { client: c.clientId, reconnect: true });
    expect(r).toEqual({ status: 200, body: { disconnected: 1 } });
    expect((await c.closed).code).toBe(3004);
  });
});
