/**
 * Reply amplification (issue 14, section 4): a cheap command can ask for a large reply (`history` of
 * a stream of large publications), so a client that never reads used to make the server buffer
 * gigabytes, and a 13 KB `POST /send` body made a 587 MB response (and, forwarded, a Redis pub/sub
 * message that cost the node its subscriber link). These tests hold the bounds: replies carry at most
 * `limits.maxReplyBytes` of publications, replies with publications are queued one at a time while
 * the output is low, commands are capped per connection, reading stops while the server holds
 * enough, and a `/send` response (forwarded or not) stays within its bound.
 */
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxForwardBytes } from '../src/core/node-control.js';
import type { Session } from '../src/core/session.js';
import { HonestSubscribers, backToBaseline, duringAttack } from './support/abuse.js';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';
import { send } from './support/http-clients.js';
import { REDIS_URL, dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';
import { SESSION_SECRET, openSse } from './support/send-forward.js';

const KB = 1024;
const QUEUE = 256 * KB;
const REPLY = 1024 * KB;
/** One history publication: 100 of them make a 4 MB history, four times what one reply may carry. */
const PAYLOAD = 'x'.repeat(40 * KB);
const namespaces = { big: { maxMessageSize: 64 * KB, historySize: 100 } };

async function fill(base: string, channel: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const r = await api(base, 'publish', { channel, data: { i, payload: PAYLOAD } });
    expect(r.status).toBe(200);
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function historyBody(count: number, channel = 'big.hist'): string {
  return range(1, count)
    .map((id) => JSON.stringify({ id, cmd: 'history', channel, limit: 100 }))
    .join('\n');
}

/** Whether the server stopped reading the WebSocket client of `session`. */
function readingPaused(session: Session): boolean {
  return (session.transport as unknown as { ws: WebSocket }).ws.isPaused;
}

describe('WebSocket: replies count against the connection, commands are capped', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({
      limits: { maxQueueBytes: QUEUE, maxReplyBytes: REPLY, maxCommandsInFlight: 4, maxCommandsWaiting: 8 },
      // The heartbeat lets go of a client whose reading is stopped: it cannot answer pings it never reads.
      heartbeat: { pingInterval: 2000, pingTimeout: 3000 },
      namespaces,
    });
    await fill(srv.url, 'big.hist', 100);
  }, 60_000);
  afterAll(async () => {
    await srv.close();
  });

  it('a client that never reads and sends 500 history commands gets its reading stopped, not gigabytes buffered', async () => {
    const hub = srv.server.hub;
    const honest = await HonestSubscribers.start(srv, 20);
    const honestIds = new Set(honest.clients.map((c) => c.clientId));
    const baseline = hub.sessions.size;
    const rssBefore = process.memoryUsage().rss;

    const attacker = new WebSocket(srv.wsUrl);
    attacker.on('error', () => undefined);
    await withTimeout(new Promise((resolve) => attacker.once('open', resolve)), 5000, 'the attacker to connect');
    attacker.pause(); // never reads: its socket buffers fill, then the server's
    await until(() => hub.sessions.size === baseline + 1, 'the attacker session');
    const session = [...hub.sessions.values()].find((s) => !honestIds.has(s.id)) as Session;

    const attack = (async (): Promise<void> => {
      for (let id = 1; id <= 500; id++)
        attacker.send(JSON.stringify({ id, cmd: 'history', channel: 'big.hist', limit: 100 }));
      await until(
        () => session.state !== 'open' || readingPaused(session),
        'the server to stop reading the attacker (or to drop it)',
        15_000,
      );
    })();
    await duringAttack(honest, attack);

    // Whatever the server holds for it: its queue and the socket's unsent bytes (the kernel's
    // buffers aside) stay within the queue bound plus one reply.
    expect(session.outputBytes()).toBeLessThanOrEqual(QUEUE + REPLY + 16 * KB);
    // 500 replies of 1 MB each (4 MB before replies were cut) would be 500 MB.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(150 * 1024 * 1024);
    // Honest subscribers still get everything published after the attack began.
    await honest.publish(5);
    await honest.verify();

    // The heartbeat releases the attacker (its pongs are never read), and with it what it held.
    await until(() => !hub.sessions.has(session.id), 'the attacker to be dropped by the heartbeat', 20_000);
    attacker.terminate();
    await backToBaseline(srv, baseline);
    await honest.close();
  }, 90_000);

  it('a reading client that asks for many large replies at once gets every one, paced, and stays connected', async () => {
    const hub = srv.server.hub;
    const slowBefore = srv.server.metrics.value('herald_slow_disconnects_total');
    const c = await WsClient.connect(srv.wsUrl);
    // Twelve 1 MB replies in one message (4 run, 8 wait): each is queued once the previous one has
    // drained below half of the 256 KB queue bound, so none makes the client "slow".
    c.sendRaw(historyBody(12));
    const replies = await c.waitForCount((f) => typeof f['id'] === 'number', 12, 'twelve history replies', 30_000);
    expect(replies.map((f) => f['id']).sort((a: number, b: number) => a - b)).toEqual(range(1, 12));
    for (const f of replies) expect(f['result']).toMatchObject({ stream: 'big.hist', truncated: true });
    expect(srv.server.metrics.value('herald_slow_disconnects_total')).toBe(slowBefore);
    expect(hub.sessions.has(c.clientId)).toBe(true);
    await c.close();
  }, 60_000);

  it('runs maxCommandsInFlight commands at once, queues maxCommandsWaiting, refuses the rest', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    const frames: Frame[] = range(1, 4).map((id) => ({ id, cmd: 'history', channel: 'big.hist', limit: 1 }));
    for (const id of range(5, 30)) frames.push({ id, cmd: 'ping' });
    c.sendRaw(frames.map((f) => JSON.stringify(f)).join('\n')); // one message: read at once
    const replies = await c.waitForCount((f) => typeof f['id'] === 'number', 30, 'a reply to every command');
    const refused = replies.filter((f) => f['error'] !== undefined);
    expect(refused.map((f) => f['id'])).toEqual(range(13, 30));
    for (const f of refused) expect(f['error'].code).toBe('HERALD_ERR_TOO_MANY_COMMANDS');
    const ok = replies.filter((f) => f['result'] !== undefined).map((f) => f['id'] as number);
    expect(ok.sort((a, b) => a - b)).toEqual(range(1, 12));
    // The queued pings started only once a running command had finished.
    const firstHistory = replies.findIndex((f) => f['id'] <= 4);
    const firstQueued = replies.findIndex((f) => f['id'] >= 5 && f['id'] <= 12);
    expect(firstHistory).toBeLessThan(firstQueued);
    // The connection is fine afterwards.
    c.sendRaw(JSON.stringify({ id: 31, cmd: 'ping' }));
    expect((await c.waitFor((f) => f['id'] === 31, 'the reply to a later ping'))['result']).toEqual({});
    await c.close();
  });

  it('cuts a history reply at maxReplyBytes and says so; reading on with since gets everything once', async () => {
    const c = await WsClient.connect(srv.wsUrl);
    const offsets: number[] = [];
    let since: { epoch: string; offset: number } | undefined;
    let pages = 0;
    for (;;) {
      const r = await c.request({ cmd: 'history', channel: 'big.hist', limit: 100, ...(since ? { since } : {}) });
      expect(JSON.stringify(r).length).toBeLessThanOrEqual(REPLY + KB);
      const res = r['result'];
      pages += 1;
      const pubs = res.publications as { offset: number }[];
      offsets.push(...pubs.map((p) => p.offset));
      if (res.truncated !== true) break;
      expect(pubs.length).toBeGreaterThan(0);
      since = { epoch: res.epoch, offset: (pubs[pubs.length - 1] as { offset: number }).offset };
    }
    expect(pages).toBeGreaterThanOrEqual(4);
    expect(offsets).toEqual(range(1, 100));
    // Newest first: the newest that fit.
    const rev = await c.request({ cmd: 'history', channel: 'big.hist', limit: 100, reverse: true });
    expect(rev['result'].truncated).toBe(true);
    expect(rev['result'].publications[0].offset).toBe(100);
    await c.close();
  });

  it('answers a recovery larger than maxReplyBytes with recovered: false, and cuts a backlog to the newest that fit', async () => {
    const h = await api(srv.url, 'history', { channel: 'big.hist', limit: 0 });
    const epoch = h.body.epoch as string;
    const c = await WsClient.connect(srv.wsUrl);
    const small = await c.request({ cmd: 'subscribe', channel: 'big.hist', since: { epoch, offset: 90 } });
    expect(small['result']).toMatchObject({ recovered: true, offset: 100 });
    expect(small['result'].publications).toHaveLength(10);
    await c.request({ cmd: 'unsubscribe', channel: 'big.hist' });

    const big = await c.request({ cmd: 'subscribe', channel: 'big.hist', since: { epoch, offset: 0 } });
    expect(big['result']).toMatchObject({ recovered: false, offset: 100, publications: [] });
    await c.request({ cmd: 'unsubscribe', channel: 'big.hist' });

    const backlog = await c.request({ cmd: 'subscribe', channel: 'big.hist', backlog: 100 });
    const offsets = (backlog['result'].publications as { offset: number }[]).map((p) => p.offset);
    expect(offsets.length).toBeGreaterThan(10);
    expect(offsets.length).toBeLessThan(100);
    expect(offsets).toEqual(range(101 - offsets.length, 100));
    await c.close();
  });

  it('refuses a POST /send body with more commands than a connection may have on their way', async () => {
    const { es, session } = await openSse(`${srv.url}/sse`);
    try {
      const body = range(1, 13)
        .map((id) => JSON.stringify({ id, cmd: 'ping' }))
        .join('\n');
      const r = await send(srv.url, session, body);
      expect(r.status).toBe(429);
      expect(r.lines[0].error.code).toBe('HERALD_ERR_TOO_MANY_COMMANDS');
      const fine = await send(srv.url, session, body.split('\n').slice(0, 12).join('\n'));
      expect(fine.status).toBe(200);
      expect(fine.lines).toHaveLength(12);
    } finally {
      es.close();
    }
  });
});

describe('POST /send: the response is bounded', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer({
      limits: { maxReplyBytes: REPLY },
      namespaces: { ...namespaces, fwd: { clientPublish: true } },
    });
    await fill(srv.url, 'big.hist', 100);
    await fill(srv.url, 'big.r1', 20);
    await fill(srv.url, 'big.r2', 20);
  }, 60_000);
  afterAll(async () => {
    await srv.close();
  });

  it('answers 300 history commands within maxReplyBytes, cut short and flagged, and still answers a publish', async () => {
    const { es, session } = await openSse(`${srv.url}/sse`);
    try {
      const body = `${historyBody(300)}\n${JSON.stringify({ id: 301, cmd: 'publish', channel: 'fwd.x', data: 1 })}`;
      const rssBefore = process.memoryUsage().rss;
      const r = await send(srv.url, session, body);
      expect(r.status).toBe(200);
      expect(Buffer.byteLength(r.raw)).toBeLessThanOrEqual(REPLY + 301 * KB);
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(150 * 1024 * 1024);
      expect(r.lines).toHaveLength(301);
      const histories = r.lines.filter((l) => l.id <= 300);
      for (const l of histories)
        expect(l.result, JSON.stringify(l.error)).toMatchObject({ stream: 'big.hist', offset: 100, truncated: true });
      const carried = histories.reduce((n, l) => n + (l.result.publications as unknown[]).length, 0);
      expect(carried).toBeGreaterThan(0);
      expect(carried).toBeLessThan(30); // about 1 MB of 40 KB publications, in all
      expect(r.lines.find((l) => l.id === 301).result).toMatchObject({ channel: 'fwd.x', offset: 1 });
    } finally {
      es.close();
    }
  });

  it('refuses a recovery that no longer fits in the response with HERALD_ERR_REPLY_TOO_LARGE, and does not subscribe', async () => {
    const { es, client, session } = await openSse(`${srv.url}/sse`);
    try {
      const epochOf = async (channel: string): Promise<string> =>
        (await api(srv.url, 'history', { channel, limit: 0 })).body.epoch as string;
      const body = ['big.r1', 'big.r2'].map(async (channel, i) =>
        JSON.stringify({ id: i + 1, cmd: 'subscribe', channel, since: { epoch: await epochOf(channel), offset: 0 } }),
      );
      const r = await send(srv.url, session, (await Promise.all(body)).join('\n'));
      expect(r.status).toBe(200);
      expect(r.lines).toHaveLength(2);
      const ok = r.lines.filter((l) => l.result !== undefined);
      const refused = r.lines.filter((l) => l.error !== undefined);
      expect(ok).toHaveLength(1);
      expect(ok[0].result).toMatchObject({ recovered: true, offset: 20 });
      expect(ok[0].result.publications).toHaveLength(20);
      expect(refused).toHaveLength(1);
      expect(refused[0].error.code).toBe('HERALD_ERR_REPLY_TOO_LARGE');
      const subs = srv.server.hub.sessions.get(client)?.subscriptions;
      expect(subs?.has(ok[0].result.stream)).toBe(true);
      expect(subs?.size).toBe(1);
    } finally {
      es.close();
    }
  });
});

describe.skipIf(skipRedis)('POST /send forwarded through Redis: the answer is bounded', () => {
  const prefix = testPrefix();
  const config = {
    limits: { maxReplyBytes: REPLY },
    http: { sessionSecret: SESSION_SECRET, sendForwardTimeout: 5000 },
    namespaces: { ...namespaces, fwd: { clientPublish: true } },
  };
  let a: RedisNode;
  let b: RedisNode;
  let spy: Redis;
  let largest = 0;
  beforeAll(async () => {
    [a, b] = (await Promise.all([0, 1].map(() => startRedisNode(prefix, config)))) as [RedisNode, RedisNode];
    // Every message on the nodes' control channels, as Redis carries it.
    spy = new Redis(REDIS_URL, { lazyConnect: true });
    await spy.connect();
    spy.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, message: Buffer) => {
      largest = Math.max(largest, message.byteLength);
    });
    await spy.psubscribe(`${prefix}:node:*`);
    await fill(a.url, 'big.hist', 100);
  }, 60_000);
  afterAll(async () => {
    spy?.disconnect();
    await Promise.all([a, b].map((n) => n?.close()));
    await dropPrefix(prefix);
  });

  it('forwards 300 history commands and publishes no answer larger than the bound; the link stays up', async () => {
    const { es, session } = await openSse(`${a.url}/sse`);
    try {
      const before = a.server.metrics.value('herald_send_served_total');
      const r = await send(b.url, session, historyBody(300));
      expect(r.status, r.raw.slice(0, 300)).toBe(200);
      expect(r.lines).toHaveLength(300);
      expect(Buffer.byteLength(r.raw)).toBeLessThanOrEqual(REPLY + 300 * KB);
      for (const l of r.lines) expect(l.result).toMatchObject({ stream: 'big.hist', truncated: true });
      expect(a.server.metrics.value('herald_send_served_total')).toBe(before + 1);
      expect(largest).toBeGreaterThan(REPLY / 2); // the forwarded answer went through Redis
      expect(largest).toBeLessThanOrEqual(maxForwardBytes(a.server.hub));
      expect(largest).toBeLessThanOrEqual(2 * REPLY + 300 * 2 * KB + 4 * KB);

      // Node A kept its subscriber link: a forwarded subscribe works and its publication arrives.
      const sub = await send(b.url, session, JSON.stringify({ id: 1, cmd: 'subscribe', channel: 'fwd.after' }));
      expect(sub.lines[0].result).toMatchObject({ stream: 'fwd.after' });
      await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'the subscribed event');
      expect((await api(b.url, 'publish', { channel: 'fwd.after', data: 'still here' })).status).toBe(200);
      await es.waitFor((e) => e.some((x) => x.event === 'message'), 'the publication on node A');
      expect(es.pubs().map((p) => p['data'])).toEqual(['still here']);
    } finally {
      es.close();
    }
  }, 60_000);
});
