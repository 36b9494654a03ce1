/**
 * `POST /send` without sticky sessions: a node that gets commands for an SSE or HTTP-stream session
 * held by another node forwards them through the Redis engine's control channel, and answers with
 * the replies of the node holding the session. Three nodes on the shared Redis, one session secret.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeOfClientId } from '../src/core/node-control.js';
import { SessionTokens } from '../src/http/session-token.js';
import { until, withTimeout } from '@herald/test-support';
import { api } from '@herald/test-support/server';
import { NdjsonReader, send } from './support/http-clients.js';
import { REDIS_URL, dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';
import { SESSION_SECRET, expectForwardedSend, openSse } from './support/send-forward.js';

const FORWARD_TIMEOUT = 500;
const prefix = testPrefix();
const config = {
  http: { sessionSecret: SESSION_SECRET, sendForwardTimeout: FORWARD_TIMEOUT },
  namespaces: { fwd: { clientPublish: true } },
};

describe('client ids', () => {
  it('name the node holding the session, and no node for a long-poll client', () => {
    expect(nodeOfClientId('5e1f09aa-1')).toBe('5e1f09aa');
    expect(nodeOfClientId('node-a-2z')).toBe('node-a');
    expect(nodeOfClientId('5e1f09aa~3')).toBeUndefined();
    expect(nodeOfClientId('opaque')).toBeUndefined();
  });
});

describe.skipIf(skipRedis)('POST /send forwarded between nodes', () => {
  let a: RedisNode;
  let b: RedisNode;
  let c: RedisNode;
  beforeAll(async () => {
    [a, b, c] = (await Promise.all([0, 1, 2].map(() => startRedisNode(prefix, config)))) as [
      RedisNode,
      RedisNode,
      RedisNode,
    ];
  });
  afterAll(async () => {
    await Promise.all([a, b, c].map((n) => n?.close()));
    await dropPrefix(prefix);
  });

  it('runs the commands on the node holding an SSE session, whichever node gets them', async () => {
    const { es, client, session } = await openSse(`${a.url}/sse`);
    try {
      expect(client.startsWith(`${a.server.hub.nodeId}-`)).toBe(true);
      const before = {
        forwarded: b.server.metrics.value('herald_send_forwarded_total'),
        served: a.server.metrics.value('herald_send_served_total'),
      };

      const r = await send(
        b.url,
        session,
        '{"id":1,"cmd":"subscribe","channel":"fwd.x"}\n{"id":2,"cmd":"ping"}\n{"id":3,"cmd":"nope"}',
      );
      expect(r.status).toBe(200);
      expect(r.lines.map((l) => l.id).sort()).toEqual([1, 2, 3]);
      expect(r.lines.find((l) => l.id === 1).result).toMatchObject({ stream: 'fwd.x', offset: 0 });
      expect(r.lines.find((l) => l.id === 2)).toEqual({ id: 2, result: {} });
      expect(r.lines.find((l) => l.id === 3).error.code).toBe('HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND');
      // The subscribe added the stream to the SSE response on node A.
      await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'the subscribed event on node A');
      expect(a.server.hub.sessions.get(client)?.subscriptions.has('fwd.x')).toBe(true);
      expect(b.server.hub.sessions.has(client)).toBe(false);

      const pub = await send(
        c.url,
        session,
        JSON.stringify({ id: 4, cmd: 'publish', channel: 'fwd.x', data: 'via-c' }),
      );
      expect(pub.lines).toEqual([{ id: 4, result: expect.objectContaining({ channel: 'fwd.x', offset: 1 }) }]);
      expect((await api(b.url, 'publish', { channel: 'fwd.x', data: 'via-api' })).status).toBe(200);
      await es.waitFor((e) => e.filter((x) => x.event === 'message').length === 2, 'two publications on SSE');
      expect(es.pubs().map((p) => [p['offset'], p['data']])).toEqual([
        [1, 'via-c'],
        [2, 'via-api'],
      ]);

      const h = await send(b.url, session, JSON.stringify({ id: 5, cmd: 'history', channel: 'fwd.x' }));
      expect(h.lines[0].result.publications.map((p: { data: string }) => p.data)).toEqual(['via-c', 'via-api']);

      // Unsubscribe through C, subscribe another stream through B; a sentinel on the new stream
      // proves that nothing more came from the old one.
      const un = await send(c.url, session, '{"id":6,"cmd":"unsubscribe","channel":"fwd.x"}');
      expect(un.lines).toEqual([{ id: 6, result: {} }]);
      await es.waitFor((e) => e.some((x) => x.event === 'unsubscribed'), 'the unsubscribed event');
      await send(b.url, session, '{"id":7,"cmd":"subscribe","channel":"fwd.y"}');
      await api(c.url, 'publish', { channel: 'fwd.x', data: 'after unsubscribe' });
      await api(c.url, 'publish', { channel: 'fwd.y', data: 'sentinel' });
      await es.waitFor((e) => e.some((x) => x.event === 'message' && x.data.includes('sentinel')), 'the sentinel');
      expect(es.pubs().map((p) => p['data'])).toEqual(['via-c', 'via-api', 'sentinel']);

      expect(b.server.metrics.value('herald_send_forwarded_total') - before.forwarded).toBe(3);
      expect(a.server.metrics.value('herald_send_served_total') - before.served).toBe(5);
    } finally {
      es.close();
    }
  });

  it('forwards commands for an HTTP-stream session too', async () => {
    const nd = new NdjsonReader(`${c.url}/stream`);
    try {
      await nd.waitFor((f) => f.some((x) => x['push'] === 'connected'), 'connected line');
      const session = nd.items.find((x) => x['push'] === 'connected')?.['session'] as string;
      const r = await send(a.url, session, '{"id":1,"cmd":"subscribe","channel":"fwd.nd"}');
      expect(r.lines[0].result).toMatchObject({ stream: 'fwd.nd' });
      await nd.waitFor((f) => f.some((x) => x['push'] === 'subscribed'), 'subscribed line');
      await api(b.url, 'publish', { channel: 'fwd.nd', data: 'nd' });
      await nd.waitFor((f) => f.some((x) => x['push'] === 'pub'), 'pub line');
      expect(nd.pubs().map((p) => p['data'])).toEqual(['nd']);
    } finally {
      nd.close();
    }
  });

  it('refuses a forged session id without asking the node it names', async () => {
    const { es, client } = await openSse(`${a.url}/sse`);
    try {
      const before = {
        forwarded: b.server.metrics.value('herald_send_forwarded_total'),
        served: a.server.metrics.value('herald_send_served_total'),
      };
      const forged = [
        `${client}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`,
        new SessionTokens('another-deployment-secret-000000').issue(client),
        client,
      ];
      for (const id of forged) {
        const r = await send(b.url, id, '{"id":1,"cmd":"subscribe","channel":"fwd.forged"}');
        expect(r.status).toBe(404);
        expect(r.lines[0].error.code).toBe('HERALD_ERR_SESSION_NOT_FOUND');
      }
      expect(b.server.metrics.value('herald_send_forwarded_total')).toBe(before.forwarded);
      expect(a.server.metrics.value('herald_send_served_total')).toBe(before.served);
      expect(a.server.hub.sessions.get(client)?.subscriptions.size).toBe(0);
    } finally {
      es.close();
    }
  });

  it('answers 404 for a session that ended on a node that is still up', async () => {
    const { es, client, session } = await openSse(`${a.url}/sse`);
    es.close();
    await until(() => !a.server.hub.sessions.has(client), 'node A forgets the session');
    const r = await send(b.url, session, '{"id":1,"cmd":"ping"}');
    expect(r.status).toBe(404);
    expect(r.lines[0].error).toMatchObject({ code: 'HERALD_ERR_SESSION_NOT_FOUND', message: 'the session is closed' });
  });

  it('answers 502 NODE_UNREACHABLE for a session whose node stopped', async () => {
    const d = await startRedisNode(prefix, config);
    const { es, session } = await openSse(`${d.url}/sse`);
    await d.close();
    es.close();
    const started = Date.now();
    const r = await send(b.url, session, '{"id":1,"cmd":"ping"}');
    expect(r.status).toBe(502);
    expect(r.lines[0].error.code).toBe('HERALD_ERR_NODE_UNREACHABLE');
    // Nobody listens on the stopped node's channel any more: no need to wait for the timeout.
    expect(Date.now() - started).toBeLessThan(FORWARD_TIMEOUT * 4);
  });

  it('answers 502 NODE_UNREACHABLE after the forward timeout when the node does not answer', async () => {
    // A node that is subscribed to its control channel but never answers (hung).
    const hung = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null });
    const requests: string[] = [];
    try {
      await hung.connect();
      hung.on('message', (_channel: string, message: string) => requests.push(message));
      await hung.subscribe(`${prefix}:node:{hung01}`);
      const session = new SessionTokens(SESSION_SECRET).issue('hung01-1');
      const started = Date.now();
      const r = await withTimeout(send(b.url, session, '{"id":1,"cmd":"ping"}'), 5000, 'the /send answer');
      const took = Date.now() - started;
      expect(r.status).toBe(502);
      expect(r.lines[0].error.code).toBe('HERALD_ERR_NODE_UNREACHABLE');
      expect(took).toBeGreaterThanOrEqual(FORWARD_TIMEOUT - 20);
      expect(took).toBeLessThan(FORWARD_TIMEOUT + 1500);
      expect(requests).toHaveLength(1);
      const [kind, id, from, body] = requests[0]!.split('\n');
      expect(kind).toBe('q');
      expect(from).toBe(b.server.hub.nodeId);
      expect(JSON.parse(body!)).toEqual({ op: 'send', client: 'hung01-1', body: '{"id":1,"cmd":"ping"}' });
      // An answer that comes after the timeout is dropped, and node B keeps forwarding.
      const admin = new Redis(REDIS_URL);
      await admin.publish(`${prefix}:node:{${from}}`, `a\n${id}\nok\n{"replies":"late"}`);
      await admin.publish(`${prefix}:node:{${from}}`, 'garbage');
      admin.disconnect();
      await expectForwardedSend(a.url, b.url, 'fwd.after-timeout');
    } finally {
      hung.disconnect();
    }
  });

  it('runs the commands of a long-poll client on the node that gets them, without forwarding', async () => {
    const hello = await fetch(`${a.url}/poll`);
    const body = (await hello.json()) as { client: string; session: string };
    expect(body.client.startsWith(`${a.server.hub.nodeId}~`)).toBe(true);
    const forwarded = b.server.metrics.value('herald_send_forwarded_total');
    const r = await send(b.url, body.session, '{"id":1,"cmd":"publish","channel":"fwd.lp","data":1}');
    expect(r.lines).toEqual([{ id: 1, result: expect.objectContaining({ channel: 'fwd.lp', offset: 1 }) }]);
    expect(b.server.metrics.value('herald_send_forwarded_total')).toBe(forwarded);
  });

  it('shows the forwarding counters in /api/info', async () => {
    const { es, session } = await openSse(`${a.url}/sse`);
    try {
      expect((await send(b.url, session, '{"id":1,"cmd":"ping"}')).lines).toEqual([{ id: 1, result: {} }]);
    } finally {
      es.close();
    }
    const sender = (await api(b.url, 'info', {})).body.nodes[0];
    expect(sender.sendForwarding.forwarded).toBeGreaterThanOrEqual(1);
    expect(sender.redis.control).toMatchObject({ requests: expect.any(Number), unreachable: expect.any(Number) });
    expect(sender.redis.control.requests).toBeGreaterThanOrEqual(1);
    const holder = (await api(a.url, 'info', {})).body.nodes[0];
    expect(holder.sendForwarding.served).toBeGreaterThanOrEqual(1);
    expect(holder.redis.control.served).toBeGreaterThanOrEqual(1);
  });
});
