/**
 * Presence across Herald nodes on one Redis: every node lists every subscriber, joins and leaves
 * reach the subscribers of every node, a lobby lists games whose players are on other nodes, a
 * node killed with SIGKILL loses its entries within the documented bound (ttl + refreshInterval),
 * a client gone while its join is on its way leaves no ghost, and plain Redis PUBLISHes are
 * published as strings.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { api, startChildNode, WsClient, type ChildNode, type Frame } from '@herald/test-support/server';
import { adminClient, dropPrefix, REDIS_URL, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const REFRESH = 200;
const TTL = 600;
const prefix = testPrefix();
const namespaces = {
  room: { presence: true, joinLeave: true },
  game: { presence: true },
  chat: { clientPublish: true },
};
const config = { presence: { refreshInterval: REFRESH, ttl: TTL }, namespaces };
const plainChannel = `${prefix}-messages`;
const plainPrefix = `${prefix}-rooms:`;

let nodes: RedisNode[] = [];
let admin: Redis;

const clientsOf = (list: Frame[]): string[] => list.map((e) => e['client'] as string).sort();

async function presenceAt(node: { url: string }, channel: string): Promise<string[]> {
  const r = await api(node.url, 'presence', { channel });
  if (r.status !== 200) throw new Error(`presence ${channel}: ${JSON.stringify(r.body)}`);
  return clientsOf(r.body.presence as Frame[]);
}

async function subscribed(url: string, channel: string): Promise<WsClient> {
  const c = await WsClient.connect(url);
  const r = await c.request({ cmd: 'subscribe', channel });
  if (r['result'] === undefined) throw new Error(`subscribe ${channel}: ${JSON.stringify(r['error'])}`);
  return c;
}

describe.skipIf(skipRedis)('presence over Redis, three nodes', () => {
  beforeAll(async () => {
    admin = await adminClient();
    nodes = [];
    for (let i = 0; i < 3; i++) {
      nodes.push(
        await startRedisNode(prefix, config, {
          ingestPlain: [
            { redisChannel: plainChannel, channel: 'chat.lobby' },
            { redisChannel: `${plainPrefix}*`, channel: 'chat.*' },
          ],
        }),
      );
    }
  });
  afterAll(async () => {
    admin.disconnect();
    await Promise.all(nodes.map((n) => n.close()));
    await dropPrefix(prefix);
  });

  it('every node lists every subscriber; joins and leaves reach the subscribers of every node', async () => {
    const [a, b, c] = nodes as [RedisNode, RedisNode, RedisNode];
    const ca = await subscribed(a.wsUrl, 'room.x');
    const cb = await subscribed(b.wsUrl, 'room.x');
    const joinAtA = await ca.waitFor((f) => f['push'] === 'join', 'the join of b at a');
    expect(joinAtA).toEqual({ push: 'join', channel: 'room.x', client: cb.clientId, user: '' });
    const cc = await subscribed(c.wsUrl, 'room.x');
    await ca.waitFor((f) => f['push'] === 'join' && f['client'] === cc.clientId, 'the join of c at a');
    await cb.waitFor((f) => f['push'] === 'join' && f['client'] === cc.clientId, 'the join of c at b');
    const all = [ca.clientId, cb.clientId, cc.clientId].sort();
    for (const n of nodes) expect(await presenceAt(n, 'room.x')).toEqual(all);
    expect((await cc.request({ cmd: 'presenceStats', channel: 'room.x' }))['result']).toEqual({
      channel: 'room.x',
      clients: 3,
      users: 1,
    });
    await cb.close();
    await ca.waitFor((f) => f['push'] === 'leave' && f['client'] === cb.clientId, 'the leave of b at a');
    await cc.waitFor((f) => f['push'] === 'leave' && f['client'] === cb.clientId, 'the leave of b at c');
    expect(await presenceAt(b, 'room.x')).toEqual([ca.clientId, cc.clientId].sort());
    // Each join and leave came once, and nobody heard of itself.
    expect(ca.frames.filter((f) => f['push'] === 'join').map((f) => f['client'])).toEqual([cb.clientId, cc.clientId]);
    expect(cc.frames.filter((f) => f['push'] !== 'connected' && f['client'] === cc.clientId)).toEqual([]);
    await Promise.all([ca.close(), cc.close()]);
    await until(async () => (await presenceAt(a, 'room.x')).length === 0, 'room.x to be empty');
    // Nothing is left in Redis once a channel is empty.
    expect(await admin.keys(`${prefix}:{room}:p[edu]:room.x`)).toEqual([]);
  });

  it('a lobby on one node lists the games played on the others', async () => {
    const [a, b, c] = nodes as [RedisNode, RedisNode, RedisNode];
    const p1 = await subscribed(b.wsUrl, 'game.7');
    const p2 = await subscribed(c.wsUrl, 'game.7');
    const p3 = await subscribed(c.wsUrl, 'game.8');
    const r = await api(a.url, 'channels', { pattern: 'game.*' });
    expect(r.status).toBe(200);
    const listed = (r.body.channels as Frame[]).sort((x, y) => String(x['stream']).localeCompare(String(y['stream'])));
    expect(listed).toEqual([
      { stream: 'game.7', subscribers: 0, presence: { clients: 2, users: 1 } },
      { stream: 'game.8', subscribers: 0, presence: { clients: 1, users: 1 } },
    ]);
    const atC = await api(c.url, 'channels', { pattern: 'game.7' });
    expect(atC.body.channels).toEqual([{ stream: 'game.7', subscribers: 1, presence: { clients: 2, users: 1 } }]);
    await Promise.all([p1.close(), p2.close(), p3.close()]);
    await until(
      async () => (await api(a.url, 'channels', { pattern: 'game.*' })).body.channels.length === 0,
      'no game',
    );
  });

  it('a client gone while its join is on its way leaves no ghost entry', async () => {
    const [a, b] = nodes as [RedisNode, RedisNode];
    const watcher = await subscribed(b.wsUrl, 'room.race');
    for (let round = 0; round < 5; round++) {
      const clients = await Promise.all(Array.from({ length: 10 }, () => WsClient.connect(a.wsUrl)));
      for (const c of clients) c.sendRaw(JSON.stringify({ id: 1, cmd: 'subscribe', channel: 'room.race' }));
      // Some are gone before their join reached Redis, some after: none may stay.
      await until(() => clients.some((c) => c.frames.some((f) => f['id'] === 1)), 'a first subscribe answer');
      for (const c of clients) c.terminate();
      await until(() => a.server.hub.sessions.size === 0, 'the sessions to close');
    }
    await until(() => a.server.hub.presence.size.entries === 0, 'node a to hold no entry');
    // Whatever joined has left: only the watcher stays, now and after the entries' ttl.
    await until(async () => (await presenceAt(a, 'room.race')).length === 1, 'only the watcher to stay');
    const joins = watcher.frames.filter((f) => f['push'] === 'join').length;
    await watcher.waitForCount((f) => f['push'] === 'leave', joins, 'a leave for every join');
    const settledAt = Date.now();
    await until(() => Date.now() - settledAt > TTL + 2 * REFRESH, 'the entries ttl to pass', 5000, 50);
    expect(await presenceAt(b, 'room.race')).toEqual([watcher.clientId]);
    await watcher.close();
  });

  it('publishes plain Redis PUBLISHes to the mapped channel as a string, kept in history', async () => {
    const [a, b] = nodes as [RedisNode, RedisNode];
    const sub = await subscribed(b.wsUrl, 'chat.lobby');
    const sub42 = await subscribed(a.wsUrl, 'chat.42');
    // Exactly one node (the ingestion leader) listens.
    expect(await admin.publish(plainChannel, 'hello')).toBe(1);
    expect(await admin.publish(`${plainPrefix}42`, '{"not":"parsed"}')).toBe(1);
    const pub = await sub.waitFor((f) => f['push'] === 'pub', 'the plain message');
    expect(pub).toMatchObject({ channel: 'chat.lobby', offset: 1, data: 'hello' });
    const pub42 = await sub42.waitFor((f) => f['push'] === 'pub', 'the prefixed plain message');
    expect(pub42).toMatchObject({ channel: 'chat.42', data: '{"not":"parsed"}' });
    const h = await api(a.url, 'history', { channel: 'chat.lobby' });
    expect(h.body.publications).toEqual([{ channel: 'chat.lobby', offset: 1, data: 'hello' }]);
    // A name the Herald channel grammar refuses is counted, never fatal.
    expect(await admin.publish(`${plainPrefix}bad..name`, 'x')).toBe(1);
    const leader = nodes.find((n) => (n.server.info()['ingest'] as { leader: boolean }).leader)!;
    await until(() => (leader.server.info()['ingest'] as { rejected: number }).rejected === 1, 'the refusal');
    expect(await admin.publish(plainChannel, 'again')).toBe(1);
    await sub.waitForCount((f) => f['push'] === 'pub', 2, 'the next plain message');
    await Promise.all([sub.close(), sub42.close()]);
  });
});

describe.skipIf(skipRedis)('presence of a node that dies', () => {
  let child: ChildNode | undefined;
  let survivor: RedisNode;
  const prefix2 = testPrefix();

  beforeAll(async () => {
    survivor = await startRedisNode(prefix2, config);
  });
  afterAll(async () => {
    await child?.kill();
    await survivor.close();
    await dropPrefix(prefix2);
  });

  it('its entries leave within ttl + refreshInterval of its death', async () => {
    child = await startChildNode([], {
      HERALD_ENGINE: 'redis',
      HERALD_REDIS_URLS: REDIS_URL,
      HERALD_REDIS_PREFIX: prefix2,
      HERALD_PRESENCE_REFRESH_INTERVAL: String(REFRESH),
      HERALD_PRESENCE_TTL: String(TTL),
      HERALD_NAMESPACES: JSON.stringify(namespaces),
    });
    const watcher = await subscribed(survivor.wsUrl, 'room.dead');
    const doomed = await Promise.all([0, 1, 2].map(() => subscribed(child!.wsUrl, 'room.dead')));
    await watcher.waitForCount((f) => f['push'] === 'join', 3, 'the joins of the doomed node');
    // Refreshed by the child while it lives: still there after several ttls.
    const since = Date.now();
    await until(() => Date.now() - since > 2 * TTL, 'two ttls to pass', 5000, 50);
    expect(await presenceAt(survivor, 'room.dead')).toHaveLength(4);

    const killedAt = Date.now();
    await child.kill();
    const leaves = await watcher.waitForCount((f) => f['push'] === 'leave', 3, 'the leaves of the dead node', 10_000);
    const took = Date.now() - killedAt;
    expect(clientsOf(leaves)).toEqual(clientsOf(doomed.map((c) => ({ client: c.clientId }))));
    // The bound (docs/configuration.md): ttl after the last refresh, found by the next refresh of a
    // node that still has subscribers (plus scheduling slack on a busy machine).
    expect(took).toBeLessThan(TTL + REFRESH + 1500);
    expect(await presenceAt(survivor, 'room.dead')).toEqual([watcher.clientId]);
    for (const c of doomed) c.terminate();
    await watcher.close();
    await withTimeout(
      until(async () => (await presenceAt(survivor, 'room.dead')).length === 0, 'room.dead to be empty'),
      5000,
      'room.dead to be empty',
    );
  });
});
