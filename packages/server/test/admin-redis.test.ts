/**
 * The admin page of a deployment: two nodes sharing a Redis. Node A's page lists both nodes (their
 * samples travel through the engine's shared store), lists the connections node B holds and
 * disconnects them (through the engine's control channel), counts a channel's subscribers on both,
 * and a login made on one node is taken by the other (one `admin.secret`).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WsClient } from '@herald/test-support/server';
import { AdminClient, adminConfig } from './support/admin.js';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';
import { SECRET, sign } from './support/tokens.js';

const prefix = testPrefix();
const token = (sub: string): Promise<string> => sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);

describe.skipIf(skipRedis)('admin page across two nodes over Redis', () => {
  let a: RedisNode;
  let b: RedisNode;
  let admin: AdminClient;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    const over = { admin: adminConfig(), auth: { hmacSecret: SECRET }, namespaces: { chat: { presence: true } } };
    [a, b] = await Promise.all([startRedisNode(prefix, over), startRedisNode(prefix, over)]);
    admin = await AdminClient.login(a.url);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await dropPrefix(prefix);
  });

  async function user(node: RedisNode, name: string, ...channels: string[]): Promise<WsClient> {
    const c = await WsClient.connect(`${node.wsUrl}?token=${await token(name)}`);
    for (const channel of channels) expect((await c.request({ cmd: 'subscribe', channel }))['result']).toBeDefined();
    clients.push(c);
    return c;
  }

  /** Both nodes sample themselves; B first, so that A reads B's sample back. */
  async function sample(): Promise<void> {
    await b.server.nodeStats?.tick();
    await a.server.nodeStats?.tick();
  }

  it("lists both nodes, with node B's figures, on node A", async () => {
    await user(b, 'bob', 'chat.both');
    await user(b, 'bob2', 'chat.both');
    await user(a, 'alice', 'chat.both');
    await sample();
    const o = await admin.get('overview');
    expect(o.status).toBe(200);
    const nodes = o.body.nodes as Array<{
      node: string;
      self: boolean;
      up: boolean;
      latest: { connections: Record<string, number> };
    }>;
    expect(nodes.map((n) => n.node)).toEqual([a.server.hub.nodeId, b.server.hub.nodeId]);
    expect(nodes.map((n) => [n.self, n.up])).toEqual([
      [true, true],
      [false, true],
    ]);
    expect(nodes[0]?.latest.connections['websocket']).toBe(1);
    expect(nodes[1]?.latest.connections['websocket']).toBe(2);
    // Top channels: subscribers summed over the nodes.
    const ch = await admin.get('channels');
    expect(ch.body.bySubscribers[0]).toMatchObject({ channel: 'chat.both', subscribers: 3 });
    // The channel inspector asks every node.
    const c = await admin.get('channel?name=chat.both');
    expect(c.body.subscribers).toBe(3);
    expect(c.body.nodes).toEqual([
      { node: a.server.hub.nodeId, subscribers: 1 },
      { node: b.server.hub.nodeId, subscribers: 2 },
    ]);
    expect(c.body.presence).toMatchObject({ clients: 3, users: 3 });
  });

  it("lists the connections node B holds on node A's page, and disconnects them from there", async () => {
    const onB = await user(b, 'bob', 'chat.b1', 'chat.b2');
    await user(a, 'alice');
    await sample();
    const list = await admin.get('connections');
    expect(list.status).toBe(200);
    expect(list.body.nodeErrors).toEqual([]);
    expect(list.body.matched).toBe(2);
    const row = list.body.connections.find((c: { client: string }) => c.client === onB.clientId);
    expect(row).toMatchObject({
      node: b.server.hub.nodeId,
      user: 'bob',
      transport: 'websocket',
      subscriptions: ['chat.b1', 'chat.b2'],
      queuedBytes: 0,
    });
    const search = await admin.get('connections?q=bob');
    expect(search.body.connections.map((c: { client: string }) => c.client)).toEqual([onB.clientId]);
    const byClient = await admin.get(`connections?client=${encodeURIComponent(onB.clientId)}`);
    expect(byClient.body.connections).toHaveLength(1);

    const r = await admin.post('disconnect', { client: onB.clientId });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ disconnected: 1, nodeErrors: [] });
    expect((await onB.closed).code).toBe(3500);
  });

  it('disconnects every connection of a user on every node', async () => {
    const c1 = await user(a, 'zed');
    const c2 = await user(b, 'zed');
    const c3 = await user(b, 'zed');
    await sample();
    const r = await admin.post('disconnect', { user: 'zed', reconnect: true });
    expect(r.body).toEqual({ disconnected: 3, nodeErrors: [] });
    for (const c of [c1, c2, c3]) expect((await c.closed).code).toBe(3004);
  });

  it('takes a login made on node A on node B too (one admin.secret)', async () => {
    const onB = new AdminClient(b.url, admin.cookie, admin.csrf);
    const o = await onB.get('overview');
    expect(o.status).toBe(200);
    expect(o.body.node).toBe(b.server.hub.nodeId);
    const p = await onB.post('publish', { channel: 'chat.from-b', data: 1 });
    expect(p.status).toBe(200);
  });
});
