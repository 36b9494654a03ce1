/**
 * Presence on one node (memory engine): who is subscribed, over the WebSocket commands, `POST /send`
 * and the server API; join and leave pushes over WebSocket, SSE, HTTP streaming and long-polling;
 * permissions, namespaces without presence, the `maxPresence` bound, a lobby listing its games; and
 * the races: a client gone while its join is on its way, and a flood of subscribe/unsubscribe
 * cycles, leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import type { PresenceJoin, PresenceOptions } from '../src/core/presence.js';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';
import { NdjsonReader, send, SseReader } from './support/http-clients.js';
import { SECRET, sign } from './support/tokens.js';

const REFRESH = 100;
const TTL = 300;
const POLL_TIMEOUT = 1000;

const namespaces = {
  room: { presence: true, joinLeave: true },
  quiet: { presence: true },
  small: { presence: true, joinLeave: true, maxPresence: 3 },
  priv: { presence: true, anonymousSubscribe: false },
  game: { presence: true },
};

let srv: TestServer;

beforeAll(async () => {
  srv = await startServer({
    auth: { hmacSecret: SECRET },
    http: { pollTimeout: POLL_TIMEOUT },
    presence: { refreshInterval: REFRESH, ttl: TTL },
    namespaces,
  });
});
afterAll(async () => {
  await srv.close();
});

const token = (sub: string, claims: Record<string, unknown> = {}): Promise<string> =>
  sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600, ...claims }, SECRET);

async function connect(tok?: string): Promise<WsClient> {
  return WsClient.connect(tok === undefined ? srv.wsUrl : `${srv.wsUrl}?token=${tok}`);
}

async function subscribe(c: WsClient, channel: string): Promise<Frame> {
  const r = await c.request({ cmd: 'subscribe', channel });
  if (r['result'] === undefined) throw new Error(`subscribe ${channel}: ${JSON.stringify(r['error'])}`);
  return r;
}

const pushes = (c: WsClient, kind: 'join' | 'leave', channel: string): Frame[] =>
  c.frames.filter((f) => f['push'] === kind && f['channel'] === channel);

const clientsOf = (list: Frame[]): string[] => list.map((e) => e['client'] as string).sort();

async function poll(query: string): Promise<Frame> {
  return (await (await fetch(`${srv.url}/poll?${query}`)).json()) as Frame;
}

async function apiPresence(channel: string): Promise<Frame[]> {
  const r = await api(srv.url, 'presence', { channel });
  expect(r.status).toBe(200);
  return r.body.presence as Frame[];
}

describe('presence over WebSocket and the server API', () => {
  it('lists every subscriber with its user and token info, and pushes joins and leaves to the others', async () => {
    const ann = await connect(await token('ann', { info: { name: 'Ann' } }));
    await subscribe(ann, 'room.a');
    // In presence as soon as the subscribe is answered.
    const own = await ann.request({ cmd: 'presence', channel: 'room.a' });
    expect(own['result']).toEqual({
      channel: 'room.a',
      presence: [{ client: ann.clientId, user: 'ann', info: { name: 'Ann' } }],
    });

    const bob = await connect();
    await subscribe(bob, 'room.a');
    const join = await ann.waitFor((f) => f['push'] === 'join', 'the join of bob');
    expect(join).toEqual({ push: 'join', channel: 'room.a', client: bob.clientId, user: '' });
    // Nobody is told of their own join.
    expect(pushes(bob, 'join', 'room.a')).toEqual([]);

    const list = await bob.request({ cmd: 'presence', channel: 'room.a' });
    expect(clientsOf(list['result'].presence)).toEqual([ann.clientId, bob.clientId].sort());
    expect((await bob.request({ cmd: 'presenceStats', channel: 'room.a' }))['result']).toEqual({
      channel: 'room.a',
      clients: 2,
      users: 2,
    });
    expect(clientsOf(await apiPresence('room.a'))).toEqual([ann.clientId, bob.clientId].sort());
    expect((await api(srv.url, 'presenceStats', { channel: 'room.a' })).body).toEqual({
      channel: 'room.a',
      clients: 2,
      users: 2,
    });

    // A second connection of the same user: one client more, no user more.
    const ann2 = await connect(await token('ann', { info: { name: 'Ann' } }));
    await subscribe(ann2, 'room.a');
    expect((await api(srv.url, 'presenceStats', { channel: 'room.a' })).body).toMatchObject({ clients: 3, users: 2 });

    await bob.request({ cmd: 'unsubscribe', channel: 'room.a' });
    const leave = await ann.waitFor((f) => f['push'] === 'leave', 'the leave of bob');
    expect(leave).toEqual({ push: 'leave', channel: 'room.a', client: bob.clientId, user: '' });
    await ann2.close();
    await ann.waitFor(
      (f) => f['push'] === 'leave' && f['client'] === ann2.clientId,
      'the leave of a closed connection',
    );
    expect(clientsOf(await apiPresence('room.a'))).toEqual([ann.clientId]);
    // Joins and leaves carry no offset and are not history.
    const h = await api(srv.url, 'history', { channel: 'room.a' });
    expect(h.body.offset).toBe(0);
    await ann.close();
    await bob.close();
    await until(async () => (await apiPresence('room.a')).length === 0, 'room.a to be empty');
  });

  it("carries a subscription token's info as chanInfo", async () => {
    const ann = await connect(await token('ann', { info: { name: 'Ann' } }));
    const sub = await sign({ sub: 'ann', channel: 'room.seat', info: { seat: 3 } }, SECRET);
    const r = await ann.request({ cmd: 'subscribe', channel: 'room.seat', token: sub });
    expect(r['result']).toBeDefined();
    expect(await apiPresence('room.seat')).toEqual([
      { client: ann.clientId, user: 'ann', info: { name: 'Ann' }, chanInfo: { seat: 3 } },
    ]);
    await ann.close();
  });

  it('keeps presence without pushes where joinLeave is off, and none for subtree subscriptions', async () => {
    const a = await connect();
    const b = await connect();
    await subscribe(a, 'quiet.x');
    await subscribe(b, 'quiet.x');
    await subscribe(b, 'quiet.**');
    expect(clientsOf(await apiPresence('quiet.x'))).toEqual([a.clientId, b.clientId].sort());
    await b.close();
    await until(async () => (await apiPresence('quiet.x')).length === 1, 'b to leave quiet.x');
    expect(a.frames.filter((f) => f['push'] === 'join' || f['push'] === 'leave')).toEqual([]);
    const sub = await a.request({ cmd: 'presence', channel: 'quiet.**' });
    expect(sub['error'].code).toBe('HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED');
    await a.close();
  });

  it('refuses presence where the namespace keeps none, and to clients that may not subscribe', async () => {
    const c = await connect();
    await subscribe(c, 'plain.x');
    const off = await c.request({ cmd: 'presence', channel: 'plain.x' });
    expect(off['error'].code).toBe('HERALD_ERR_PRESENCE_DISABLED');
    const offStats = await c.request({ cmd: 'presenceStats', channel: 'plain.x' });
    expect(offStats['error'].code).toBe('HERALD_ERR_PRESENCE_DISABLED');
    const apiOff = await api(srv.url, 'presence', { channel: 'plain.x' });
    expect(apiOff.status).toBe(400);
    expect(apiOff.body.error.code).toBe('HERALD_ERR_PRESENCE_DISABLED');
    expect((await api(srv.url, 'presence', { channel: 'room.**' })).body.error.code).toBe(
      'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED',
    );
    expect((await api(srv.url, 'presence', {})).body.error.code).toBe('HERALD_ERR_CHANNEL_INVALID');
    const unknown = await c.request({ cmd: 'presence', channel: 'room.a', extra: 1 });
    expect(unknown['error'].code).toBe('HERALD_ERR_PROTOCOL_BAD_FIELD');

    // priv: anonymous clients may not subscribe, so they may not see who did either.
    const denied = await c.request({ cmd: 'presence', channel: 'priv.a' });
    expect(denied['error'].code).toBe('HERALD_ERR_PERMISSION_DENIED');
    const member = await connect(await token('7', { channels: { subscribe: ['priv.a'] } }));
    expect((await member.request({ cmd: 'presence', channel: 'priv.a' }))['result']).toEqual({
      channel: 'priv.a',
      presence: [],
    });
    expect((await member.request({ cmd: 'presence', channel: 'priv.b' }))['error'].code).toBe(
      'HERALD_ERR_PERMISSION_DENIED',
    );
    const watcher = await connect(await token('8', { channels: { presence: ['priv.**'] } }));
    expect((await watcher.request({ cmd: 'presenceStats', channel: 'priv.b' }))['result']).toEqual({
      channel: 'priv.b',
      clients: 0,
      users: 0,
    });
    // The connection is still fine after every refusal.
    expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
    await Promise.all([c.close(), member.close(), watcher.close()]);
  });

  it('holds at most maxPresence entries; the others subscribe all the same and come in when there is room', async () => {
    const clients = await Promise.all([0, 1, 2, 3, 4].map(() => connect()));
    for (const c of clients) await subscribe(c, 'small.x');
    expect(await apiPresence('small.x')).toHaveLength(3);
    expect((await api(srv.url, 'presenceStats', { channel: 'small.x' })).body.clients).toBe(3);
    await api(srv.url, 'publish', { channel: 'small.x', data: 'all' });
    for (const c of clients) await c.waitFor((f) => f['push'] === 'pub', 'the publication to every subscriber');
    const listed = clientsOf(await apiPresence('small.x'));
    const gone = clients.find((c) => listed.includes(c.clientId)) as WsClient;
    await gone.close();
    // The next refresh lets a waiting one in.
    await until(async () => {
      const now = clientsOf(await apiPresence('small.x'));
      return now.length === 3 && !now.includes(gone.clientId);
    }, 'a waiting subscriber to be listed');
    await Promise.all(clients.map((c) => c.close()));
  });
});

describe('joins and leaves over the HTTP transports', () => {
  it('SSE: typed join/leave events without an id; presence through POST /send', async () => {
    const es = new SseReader(`${srv.url}/sse?channel=room.sse`);
    await es.waitFor((items) => items.some((e) => e.event === 'subscribed'), 'subscribed');
    const session = es.of('connected')[0]!['session'] as string;
    const client = es.of('connected')[0]!['client'] as string;
    const idBefore = es.lastEventId;
    const ws = await connect();
    await subscribe(ws, 'room.sse');
    await es.waitFor((items) => items.some((e) => e.event === 'join'), 'the join event');
    const join = es.items.find((e) => e.event === 'join')!;
    expect(join.id).toBeUndefined();
    expect(JSON.parse(join.data)).toEqual({ push: 'join', channel: 'room.sse', client: ws.clientId, user: '' });
    expect(es.lastEventId).toBe(idBefore);

    const r = await send(srv.url, session, JSON.stringify({ id: 1, cmd: 'presence', channel: 'room.sse' }));
    expect(r.status).toBe(200);
    expect(clientsOf(r.lines[0].result.presence)).toEqual([client, ws.clientId].sort());
    const stats = await send(srv.url, session, JSON.stringify({ id: 2, cmd: 'presenceStats', channel: 'plain.y' }));
    expect(stats.lines[0].error.code).toBe('HERALD_ERR_PRESENCE_DISABLED');

    await ws.close();
    await es.waitFor((items) => items.some((e) => e.event === 'leave'), 'the leave event');
    es.close();
    await until(async () => (await apiPresence('room.sse')).length === 0, 'the SSE client to leave');
  });

  it('/stream: join and leave lines', async () => {
    const nd = new NdjsonReader(`${srv.url}/stream?channel=room.nd`);
    await nd.waitFor((items) => items.some((f) => f['push'] === 'subscribed'), 'subscribed');
    const ws = await connect();
    await subscribe(ws, 'room.nd');
    await ws.close();
    await nd.waitFor((items) => items.some((f) => f['push'] === 'leave'), 'the leave line');
    expect(nd.items.filter((f) => f['push'] === 'join' || f['push'] === 'leave')).toEqual([
      { push: 'join', channel: 'room.nd', client: ws.clientId, user: '' },
      { push: 'leave', channel: 'room.nd', client: ws.clientId, user: '' },
    ]);
    nd.close();
  });

  it('long-poll: a held poll answers with the join; the client stays present between polls and leaves', async () => {
    const first = await poll(`channel=room.lp`);
    const client = first.client as string;
    // Present after its poll was answered: its entry outlives each poll.
    expect(clientsOf(await apiPresence('room.lp'))).toEqual([client]);
    const q = `channel=room.lp&cursor=${encodeURIComponent(first.cursor)}&session=${first.session}`;
    const held = poll(q);
    await until(() => srv.server.connectionsByTransport()['long-poll'] === 1, 'the poll to be held');
    const ws = await connect();
    await subscribe(ws, 'room.lp');
    const answer = await withTimeout(held, 5000, 'the held poll to answer with the join');
    expect(answer.publications).toEqual([]);
    expect(answer.pushes).toEqual([{ push: 'join', channel: 'room.lp', client: ws.clientId, user: '' }]);
    expect(answer.cursor).toBe(first.cursor);
    // The WebSocket client never saw the poll client leave and join again between polls.
    const next = await poll(`${q}&timeout=0`);
    expect(next.pushes).toBeUndefined();
    expect(pushes(ws, 'leave', 'room.lp')).toEqual([]);
    expect(clientsOf(await apiPresence('room.lp'))).toEqual([client, ws.clientId].sort());
    const asked = await send(
      srv.url,
      first.session,
      JSON.stringify({ id: 1, cmd: 'presenceStats', channel: 'room.lp' }),
    );
    expect(asked.lines[0]).toEqual({ id: 1, result: { channel: 'room.lp', clients: 2, users: 1 } });

    // An unsubscribe through /send ends its presence at once.
    const r = await send(srv.url, first.session, JSON.stringify({ id: 2, cmd: 'unsubscribe', channel: 'room.lp' }));
    expect(r.lines[0]).toEqual({ id: 2, result: {} });
    await ws.waitFor((f) => f['push'] === 'leave' && f['client'] === client, 'the leave of the poll client');
    await ws.close();
  });

  it('long-poll: a client that stops polling leaves once its entry expires', async () => {
    const ws = await connect();
    await subscribe(ws, 'room.lp2');
    const first = await poll(`channel=room.lp2`);
    await ws.waitFor((f) => f['push'] === 'join' && f['client'] === first.client, 'the poll client to join');
    const started = Date.now();
    await ws.waitFor((f) => f['push'] === 'leave' && f['client'] === first.client, 'the poll client to leave', 10_000);
    // pollTimeout + ttl after its last poll, found by the next refresh (and a little slack).
    expect(Date.now() - started).toBeLessThan(POLL_TIMEOUT + TTL + 2 * REFRESH + 1000);
    await ws.close();
  });
});

describe('a lobby listing its games', () => {
  it('channels under a prefix with subscriber and presence counts', async () => {
    const players = await Promise.all(['p1', 'p2', 'p3'].map(async (user) => connect(await token(user))));
    await subscribe(players[0]!, 'game.1');
    await subscribe(players[1]!, 'game.1');
    await subscribe(players[2]!, 'game.2');
    const r = await api(srv.url, 'channels', { pattern: 'game.*' });
    expect(r.status).toBe(200);
    const byName = Object.fromEntries((r.body.channels as Frame[]).map((c) => [c['stream'], c]));
    expect(byName['game.1']).toEqual({ stream: 'game.1', subscribers: 2, presence: { clients: 2, users: 2 } });
    expect(byName['game.2']).toEqual({ stream: 'game.2', subscribers: 1, presence: { clients: 1, users: 1 } });
    expect(Object.keys(byName).sort()).toEqual(['game.1', 'game.2']);
    // Channels without presence keep the old shape.
    const c = await connect();
    await subscribe(c, 'plain.z');
    expect((await api(srv.url, 'channels', { pattern: 'plain.z' })).body).toEqual({
      channels: [{ stream: 'plain.z', subscribers: 1 }],
    });
    expect((await api(srv.url, 'channels', { pattern: 'game.*', limit: 0 })).status).toBe(400);
    await Promise.all([...players.map((p) => p.close()), c.close()]);
    await until(async () => {
      const left = await api(srv.url, 'channels', { pattern: 'game.*' });
      return left.body.channels.length === 0;
    }, 'the games to end');
  });
});

describe('races and churn', () => {
  it('a subscribe/unsubscribe flood leaves presence empty and nothing held', async () => {
    const watcher = await connect();
    await subscribe(watcher, 'room.churn');
    const c = await connect();
    const cycles = 500;
    for (let i = 0; i < cycles; i += 50) {
      const batch: string[] = [];
      for (let j = i; j < i + 50; j++) {
        batch.push(JSON.stringify({ id: 2 * j + 1000, cmd: 'subscribe', channel: 'room.churn' }));
        batch.push(JSON.stringify({ id: 2 * j + 1001, cmd: 'unsubscribe', channel: 'room.churn' }));
      }
      c.sendRaw(batch.join('\n'));
      await c.waitFor((f) => f['id'] === 2 * (i + 49) + 1001, `cycle ${i + 49}`, 10_000);
    }
    const replies = c.frames.filter((f) => typeof f['id'] === 'number' && f['id'] >= 1000);
    expect(replies.filter((f) => f['error'] !== undefined)).toEqual([]);
    expect(clientsOf(await apiPresence('room.churn'))).toEqual([watcher.clientId]);
    // Every join has its leave, in order.
    await watcher.waitForCount((f) => f['push'] === 'leave' && f['client'] === c.clientId, cycles, 'the leaves');
    const kinds = watcher.frames.filter((f) => f['client'] === c.clientId).map((f) => f['push'] as string);
    expect(kinds).toEqual(Array.from({ length: 2 * cycles }, (_, i) => (i % 2 === 0 ? 'join' : 'leave')));
    await Promise.all([c.close(), watcher.close()]);
    await until(() => srv.server.hub.presence.size.entries === 0, 'no entry held by the node');
    const engine = srv.server.engine as MemoryEngine;
    await until(() => engine.presence.streamCount === 0, 'no presence kept by the engine');
  });
});

describe('a client gone while its join is on its way', () => {
  let slow: TestServer;
  let engine: MemoryEngine;
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));

  beforeAll(async () => {
    engine = new MemoryEngine();
    // Joins wait until the test lets them through (as a remote engine would, for less long).
    const join = engine.presence.join.bind(engine.presence);
    engine.presence.join = async (
      stream: string,
      entries: readonly PresenceJoin[],
      opts: PresenceOptions & { max: number },
    ) => {
      if (entries.length > 0) await gate;
      return join(stream, entries, opts);
    };
    slow = await startServer({ presence: { refreshInterval: 60_000, ttl: 180_000 }, namespaces }, { engine });
  });
  afterAll(async () => {
    openGate();
    await slow.close();
  });

  it('leaves no entry behind, on any transport', async () => {
    const n = 20;
    const clients = await Promise.all(Array.from({ length: n }, () => WsClient.connect(slow.wsUrl)));
    for (const [i, c] of clients.entries())
      c.sendRaw(JSON.stringify({ id: 1, cmd: 'subscribe', channel: `room.race${i % 2}` }));
    const sse = new SseReader(`${slow.url}/sse?channel=room.race0`);
    await until(() => slow.server.hub.presence.size.entries === n + 1, 'every join to be on its way');
    for (const c of clients) c.terminate();
    sse.close();
    await until(() => slow.server.hub.sessions.size === 0, 'every session to close');
    expect(engine.presence.streamCount).toBe(0);
    openGate();
    await until(() => slow.server.hub.presence.size.entries === 0, 'no entry held by the node');
    // The engine got each join, then its leave.
    await until(() => engine.presence.streamCount === 0, 'no ghost entry in the engine');
    expect((await api(slow.url, 'presence', { channel: 'room.race0' })).body.presence).toEqual([]);
    expect((await api(slow.url, 'presence', { channel: 'room.race1' })).body.presence).toEqual([]);
  });
});
