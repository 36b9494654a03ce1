/**
 * Joins and leaves for long-poll clients between two polls: the client's mailbox keeps those of its
 * channels from the end of a poll (or a `POST /send` subscribe) until its next poll is subscribed,
 * which answers with them, in order. Overlapping polls, a poll still subscribing, an unsubscribe
 * through `/send`; the bound (MAILBOX_SIZE, the oldest dropped) and the expiry (`http.pollTimeout +
 * presence.ttl` after the last poll, on the hub's clock: a fake one here); and no mailbox at all
 * where a namespace has no joins and leaves. Over Redis, the joins and leaves of another node reach
 * the mailbox of a channel that no one else on its node subscribes to.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import type { HistoryRequest } from '../src/core/engine.js';
import { MAILBOX_SIZE } from '../src/transports/long-poll.js';
import { FakeClock } from './support/fake-clock.js';
import { send } from './support/http-clients.js';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode } from './support/redis-nodes.js';

const POLL_TIMEOUT = 2000;
const TTL = 3000;
/** How long a mailbox outlives the client's last poll: as long as its presence entry. */
const LINGER = POLL_TIMEOUT + TTL;

interface Setup {
  srv: TestServer;
  clock: FakeClock;
  /** Recoveries of `stream` (history reads from a cursor) wait for `open()`: a poll then stays subscribing. */
  gate(stream: string): { open(): void };
}

let servers: TestServer[] = [];
const sockets: WsClient[] = [];
afterEach(async () => {
  for (const c of sockets.splice(0)) await c.close();
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function setup(): Promise<Setup> {
  const clock = new FakeClock(Date.now());
  // Presence deadlines on the same clock as the hub's refreshes.
  const engine = new MemoryEngine({ clock });
  const gates = new Map<string, Promise<void>>();
  const history = engine.history.bind(engine);
  engine.history = async (req: HistoryRequest) => {
    if (req.since !== undefined) await gates.get(req.stream);
    return history(req);
  };
  const srv = await startServer(
    {
      http: { pollTimeout: POLL_TIMEOUT },
      presence: { refreshInterval: 1000, ttl: TTL },
      namespaces: { room: { presence: true, joinLeave: true }, quiet: { presence: true }, plain: {} },
    },
    { clock, engine },
  );
  servers.push(srv);
  return {
    srv,
    clock,
    gate(stream) {
      let open = (): void => undefined;
      gates.set(stream, new Promise<void>((resolve) => (open = resolve)));
      return {
        open() {
          gates.delete(stream);
          open();
        },
      };
    },
  };
}

async function poll(srv: TestServer, query: string): Promise<Frame> {
  const res = await fetch(`${srv.url}/poll?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Frame;
}

/** The query of the poll that follows `answer` (same channels, its cursor and session). */
const after = (answer: Frame, extra = ''): string =>
  `cursor=${encodeURIComponent(answer.cursor as string)}&session=${answer.session as string}${extra}`;

async function ws(srv: TestServer): Promise<WsClient> {
  const c = await WsClient.connect(srv.wsUrl);
  sockets.push(c);
  return c;
}

async function subscribe(c: WsClient, channel: string): Promise<void> {
  const r = await c.request({ cmd: 'subscribe', channel });
  expect(r['error']).toBeUndefined();
}

async function unsubscribe(c: WsClient, channel: string): Promise<void> {
  const r = await c.request({ cmd: 'unsubscribe', channel });
  expect(r['error']).toBeUndefined();
}

const join = (c: WsClient, channel: string): Frame => ({ push: 'join', channel, client: c.clientId, user: '' });
const leave = (c: WsClient, channel: string): Frame => ({ push: 'leave', channel, client: c.clientId, user: '' });
const stats = (srv: TestServer) => srv.server.poll.mailboxStats;
const heldPolls = (srv: TestServer): number => srv.server.connectionsByTransport()['long-poll'] ?? 0;

describe('joins and leaves between two polls', () => {
  it('a join and a leave made between two polls answer the next poll, in order', async () => {
    const { srv } = await setup();
    const first = await poll(srv, 'channel=room.a');
    // The poll is answered: its channel is watched for the next one.
    expect(stats(srv)).toEqual({ clients: 1, channels: 1, events: 0 });
    const bob = await ws(srv);
    await subscribe(bob, 'room.a');
    await unsubscribe(bob, 'room.a');
    await until(() => stats(srv).events === 2, 'the join and the leave in the mailbox');

    const next = await poll(srv, after(first));
    expect(next.pushes).toEqual([join(bob, 'room.a'), leave(bob, 'room.a')]);
    expect(next.publications).toEqual([]);
    expect(next.cursor).toBe(first.cursor);
    // Taken: the mailbox watches the channel again, empty, and the poll after that is held.
    expect(stats(srv)).toEqual({ clients: 1, channels: 1, events: 0 });
    const held = poll(srv, after(next));
    await until(() => heldPolls(srv) === 1, 'the third poll to be held');
    const carl = await ws(srv);
    await subscribe(carl, 'room.a');
    expect((await withTimeout(held, 5000, 'the held poll')).pushes).toEqual([join(carl, 'room.a')]);
  });

  it('from a subscribe through POST /send to the first poll', async () => {
    const { srv } = await setup();
    const hello = await poll(srv, 'timeout=0');
    expect(stats(srv).clients).toBe(0); // a handshake has no channel
    const r = await send(srv.url, hello.session, JSON.stringify({ id: 1, cmd: 'subscribe', channel: 'room.s' }));
    const sub = r.lines[0].result as { epoch: string; offset: number };
    expect(stats(srv)).toEqual({ clients: 1, channels: 1, events: 0 });
    const bob = await ws(srv);
    await subscribe(bob, 'room.s');
    await until(() => stats(srv).events === 1, 'the join in the mailbox');
    const first = await poll(
      srv,
      `cursor=${encodeURIComponent(`room.s;${sub.epoch};${sub.offset}`)}&session=${hello.session}`,
    );
    expect(first.pushes).toEqual([join(bob, 'room.s')]);
  });

  it('while the next poll is still subscribing, and when a newer poll takes over', async () => {
    const { srv, gate } = await setup();
    const first = await poll(srv, 'channel=room.g');
    const bob = await ws(srv);
    const carl = await ws(srv);
    const g = gate('room.g');
    // The poll's subscription is attached but not answered yet: the join goes to the mailbox.
    const second = poll(srv, after(first));
    await until(() => heldPolls(srv) === 1, 'the second poll to subscribe');
    await subscribe(bob, 'room.g');
    await until(() => stats(srv).events === 1, 'the join of bob in the mailbox');
    // A newer poll answers the older one (its client gave up on it): the mailbox keeps the join.
    const third = poll(srv, after(first));
    const older = await withTimeout(second, 5000, 'the older poll to be answered');
    expect(older.pushes).toBeUndefined();
    await subscribe(carl, 'room.g');
    await until(() => stats(srv).events === 2, 'the join of carl in the mailbox');
    g.open();
    const answer = await withTimeout(third, 5000, 'the newer poll');
    expect(answer.pushes).toEqual([join(bob, 'room.g'), join(carl, 'room.g')]);

    // A held poll taken over: the newer one is held in its place, and gets what comes next.
    const held = poll(srv, after(answer));
    await until(() => heldPolls(srv) === 1, 'a poll to be held');
    const newer = poll(srv, after(answer));
    expect((await withTimeout(held, 5000, 'the older poll')).pushes).toBeUndefined();
    await until(() => heldPolls(srv) === 1, 'the newer poll to be held');
    await unsubscribe(bob, 'room.g');
    expect((await withTimeout(newer, 5000, 'the newer poll')).pushes).toEqual([leave(bob, 'room.g')]);
  });

  it('an unsubscribe through POST /send stops the mailbox collecting the channel', async () => {
    const { srv } = await setup();
    const first = await poll(srv, 'channel=room.u&channel=room.v');
    expect(stats(srv)).toEqual({ clients: 1, channels: 2, events: 0 });
    const bob = await ws(srv);
    await subscribe(bob, 'room.u');
    await until(() => stats(srv).events === 1, 'the join in the mailbox');
    const r = await send(srv.url, first.session, JSON.stringify({ id: 1, cmd: 'unsubscribe', channel: 'room.u' }));
    expect(r.lines[0]).toEqual({ id: 1, result: {} });
    // The channel and what the mailbox kept of it are gone; room.v is still watched.
    expect(stats(srv)).toEqual({ clients: 1, channels: 1, events: 0 });
    await unsubscribe(bob, 'room.u');
    await subscribe(bob, 'room.v');
    await until(() => stats(srv).events === 1, 'the join on room.v');
    expect(stats(srv).channels).toBe(1);

    // Unsubscribed while a poll is held on it: the poll's end does not watch it again.
    const cursor = (first.cursor as string)
      .split(',')
      .filter((c) => c.startsWith('room.v;'))
      .join(',');
    const next = await poll(srv, `cursor=${encodeURIComponent(cursor)}&session=${first.session}`);
    expect(next.pushes).toEqual([join(bob, 'room.v')]);
    const held = poll(srv, `cursor=${encodeURIComponent(cursor)}&session=${first.session}`);
    await until(() => heldPolls(srv) === 1, 'the poll to be held');
    await send(srv.url, first.session, JSON.stringify({ id: 2, cmd: 'unsubscribe', channel: 'room.v' }));
    const hello = await poll(srv, `timeout=0&session=${first.session}`); // takes over, with no channel
    expect(hello.pushes).toBeUndefined();
    expect((await withTimeout(held, 5000, 'the taken-over poll')).pushes).toBeUndefined();
    expect(stats(srv)).toEqual({ clients: 0, channels: 0, events: 0 });
    await unsubscribe(bob, 'room.v');
    expect(stats(srv)).toEqual({ clients: 0, channels: 0, events: 0 });
  });

  it(`keeps at most ${MAILBOX_SIZE} joins and leaves per client, dropping the oldest`, async () => {
    const { srv } = await setup();
    const first = await poll(srv, 'channel=room.b');
    const watcher = await ws(srv);
    await subscribe(watcher, 'room.b');
    const bob = await ws(srv);
    const cycles = MAILBOX_SIZE / 2 + 10;
    for (let i = 0; i < cycles; i++) {
      await subscribe(bob, 'room.b');
      await unsubscribe(bob, 'room.b');
    }
    const seen = (): Frame[] =>
      watcher.frames.filter((f) => (f['push'] === 'join' || f['push'] === 'leave') && f['client'] === bob.clientId);
    await until(() => seen().length === 2 * cycles, 'every join and leave of bob to be pushed');
    expect(stats(srv).events).toBe(MAILBOX_SIZE);
    const next = await poll(srv, after(first));
    // The join of the watcher and the first cycles were dropped: the newest MAILBOX_SIZE remain.
    expect(next.pushes).toEqual(seen().slice(-MAILBOX_SIZE));
  });

  it('expires pollTimeout + presence.ttl after the last poll, and lets the channels go', async () => {
    const { srv, clock } = await setup();
    const streams = (): number => srv.server.metrics.value('herald_streams');
    const first = await poll(srv, 'channel=room.e');
    expect(stats(srv).clients).toBe(1);
    // Held by the mailbox alone: the poll's subscription has ended.
    expect(streams()).toBe(1);
    clock.advance(LINGER - 1);
    expect(stats(srv).clients).toBe(1);
    // Another poll moves the expiry on.
    const second = await poll(srv, after(first, '&timeout=0'));
    clock.advance(LINGER - 1);
    expect(stats(srv).clients).toBe(1);
    // So does a subscribe through /send (its channel is watched too).
    await send(srv.url, first.session, JSON.stringify({ id: 1, cmd: 'subscribe', channel: 'room.f' }));
    expect(stats(srv)).toEqual({ clients: 1, channels: 2, events: 0 });
    expect(streams()).toBe(2);
    clock.advance(1);
    expect(stats(srv).clients).toBe(1);
    clock.advance(LINGER - 2);
    expect(stats(srv).clients).toBe(1);
    clock.advance(1);
    expect(stats(srv)).toEqual({ clients: 0, channels: 0, events: 0 });
    expect(streams()).toBe(0);
    // A join once it expired is not kept (the client stopped polling: `presence` is the truth).
    const bob = await ws(srv);
    await subscribe(bob, 'room.e');
    const late = await poll(srv, after(second, '&timeout=0'));
    expect(late.pushes).toBeUndefined();
  });

  it('makes no mailbox for channels without joins and leaves', async () => {
    const { srv } = await setup();
    const first = await poll(srv, 'channel=quiet.a&channel=plain.a&channel=room.x.**');
    const r = await send(srv.url, first.session, JSON.stringify({ id: 1, cmd: 'subscribe', channel: 'plain.b' }));
    expect(r.lines[0].result).toBeDefined();
    const next = await poll(srv, after(first, '&timeout=0'));
    expect(next.pushes).toBeUndefined();
    expect(stats(srv)).toEqual({ clients: 0, channels: 0, events: 0 });
    expect(srv.server.metrics.value('herald_streams')).toBe(0);
  });
});

describe.skipIf(skipRedis)('over Redis', () => {
  it('the joins and leaves of another node reach the mailbox', async () => {
    const prefix = testPrefix();
    const config = {
      http: { pollTimeout: POLL_TIMEOUT },
      presence: { refreshInterval: 1000, ttl: TTL },
      namespaces: { room: { presence: true, joinLeave: true } },
    };
    const a = await startRedisNode(prefix, config);
    const b = await startRedisNode(prefix, config);
    servers.push(a, b);
    try {
      const first = await poll(a, 'channel=room.r');
      // Only the mailbox holds the channel at a: its Redis subscription stays.
      expect(a.server.metrics.value('herald_streams')).toBe(1);
      const bob = await ws(b);
      await subscribe(bob, 'room.r');
      await unsubscribe(bob, 'room.r');
      await until(() => stats(a).events === 2, 'the join and the leave at a');
      const next = await poll(a, after(first));
      expect(next.pushes).toEqual([join(bob, 'room.r'), leave(bob, 'room.r')]);
    } finally {
      for (const c of sockets.splice(0)) await c.close();
      await Promise.all(servers.map((s) => s.close()));
      servers = [];
      await dropPrefix(prefix);
    }
  });
});
