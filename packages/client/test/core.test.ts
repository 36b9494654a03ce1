/**
 * The client core against a scripted server (fake WebSocket): tokens (getToken before each connect,
 * after an expiry, renewal before `exp`), commands (timeouts, AbortSignal, queueing while
 * connecting, close), liveness, deduplication by cursor, and the backoff's window.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Herald, HeraldError, type HeraldOptions } from '@herald/client';
import { backoff } from '../src/options.js';
import { FakeServer } from './support/fake-server.js';
import { until } from '@herald/test-support';
import { collect, next } from './support/helpers.js';

const clients: Herald[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function client(server: FakeServer, opts: HeraldOptions = {}): Herald {
  const h = new Herald('http://fake.test', {
    transports: ['websocket'],
    WebSocket: server.WebSocket,
    minReconnectDelay: 10,
    ...opts,
  });
  clients.push(h);
  return h;
}

/** A JWT-shaped token (unsigned: the fake server does not check it) expiring in `ms`. */
function jwt(name: string, ms: number): string {
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'HS256' })}.${b64({ sub: name, exp: (Date.now() + ms) / 1000 })}.sig`;
}

describe('tokens', () => {
  it('gets a token before every connect and sends it in the URL', async () => {
    const server = new FakeServer();
    let n = 0;
    const h = client(server, { getToken: () => Promise.resolve(`t${++n}`) });
    await next(h, 'connected');
    server.last.serverClose(3004, 'force_reconnect');
    await next(h, 'connected');
    expect(server.urls()).toEqual(['ws://fake.test/ws?token=t1', 'ws://fake.test/ws?token=t2']);
  });

  it('reconnects with a fresh token after 3511 (token expired) when it has getToken', async () => {
    const server = new FakeServer();
    let n = 0;
    const h = client(server, { getToken: () => Promise.resolve(`t${++n}`) });
    const sub = h.subscribe('a.b');
    await sub.ready();
    server.last.serverClose(3511, 'token expired');
    await next(h, 'state', (s) => s.state === 'connecting' && s.code === 3511);
    await sub.ready();
    expect(server.urls().at(-1)).toBe('ws://fake.test/ws?token=t2');
  });

  it('stops after 3511 without getToken; and after any 35xx code', async () => {
    // On fake timers, a reconnect the client scheduled would be a pending timer: run them all.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const server = new FakeServer();
      const h = client(server, { token: 'static' });
      await next(h, 'connected');
      server.last.serverClose(3511, 'token expired');
      expect(await next(h, 'state')).toMatchObject({ state: 'disconnected', code: 3511 });
      await vi.runAllTimersAsync();
      expect(server.sockets).toHaveLength(1);
      expect(h.state).toBe('disconnected');
    } finally {
      vi.useRealTimers();
    }
  });

  it('reconnects with a fresh token when a command is refused with HERALD_ERR_AUTH_TOKEN_EXPIRED', async () => {
    const server = new FakeServer();
    let n = 0;
    const h = client(server, { getToken: () => Promise.resolve(`t${++n}`) });
    await next(h, 'connected');
    server.overrides.set('ping', (f) => ({
      id: f['id'],
      error: { code: 'HERALD_ERR_AUTH_TOKEN_EXPIRED', message: 'expired' },
    }));
    await expect(h.ping()).rejects.toMatchObject({ code: 'HERALD_ERR_AUTH_TOKEN_EXPIRED' });
    await next(h, 'connected');
    expect(server.urls().at(-1)).toBe('ws://fake.test/ws?token=t2');
  });

  it('renews a JWT before exp with `refresh` on the same connection', async () => {
    const server = new FakeServer();
    server.extraCommands.add('refresh');
    let n = 0;
    const h = client(server, { getToken: () => Promise.resolve(jwt(`u${++n}`, 300)) });
    await next(h, 'connected');
    await until(() => server.commands.some((c) => c.frame['cmd'] === 'refresh'), 'a refresh command', 2000);
    const refresh = server.commands.find((c) => c.frame['cmd'] === 'refresh');
    expect(refresh?.frame['token']).toMatch(/^ey/);
    expect(server.sockets).toHaveLength(1);
  });

  it('refreshes in place at once when the server sends a `refresh` push', async () => {
    const server = new FakeServer();
    server.extraCommands.add('refresh');
    let n = 0;
    const h = client(server, { getToken: () => Promise.resolve(`t${++n}`) });
    await next(h, 'connected');
    server.last.push({ push: 'refresh', expiresAt: Date.now() + 5000 });
    await until(() => server.commands.some((c) => c.frame['cmd'] === 'refresh'), 'a refresh command', 2000);
    expect(server.commands.find((c) => c.frame['cmd'] === 'refresh')?.frame['token']).toBe('t2');
    expect(server.sockets).toHaveLength(1);
    expect(h.state).toBe('connected');
  });

  it('renews by replacing the connection when the server has no `refresh`: subscriptions stay subscribed', async () => {
    const server = new FakeServer();
    let n = 0;
    const h = client(server, { getToken: () => Promise.resolve(jwt(`u${++n}`, 300)) });
    const sub = h.subscribe<number>('room.1');
    const got = collect(sub);
    await sub.ready();
    server.publish('room.1', 1);
    const states: string[] = [];
    sub.on('state', (s) => states.push(s.state));
    h.on('state', (s) => states.push(s.state));
    await next(h, 'connected', () => true, 2000);
    expect(server.sockets).toHaveLength(2);
    expect(server.sockets[0]?.open).toBe(false);
    const token = new URL(server.urls()[1]!).searchParams.get('token') ?? '';
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sub).toBe('u2');
    const resub = server.commands.filter((c) => c.frame['cmd'] === 'subscribe').at(-1)?.frame;
    expect(resub).toMatchObject({ channel: 'room.1', since: { epoch: 'e1', offset: 1 } });
    server.publish('room.1', 2);
    await next(sub, 'publication', (p) => p.data === 2);
    expect(got.map((p) => p.data)).toEqual([1, 2]);
    expect(states).toEqual([]);
  });
});

describe('commands', () => {
  it('queues commands made while connecting and sends them in one batch once connected', async () => {
    const server = new FakeServer();
    const h = client(server);
    expect(h.state).toBe('connecting');
    const [a, b] = [h.ping(), h.ping()];
    await Promise.all([a, b]);
    expect(server.commands.map((c) => c.frame['cmd'])).toEqual(['ping', 'ping']);
  });

  it('times out with HERALD_ERR_TIMEOUT, and aborts with the signal reason', async () => {
    const server = new FakeServer();
    server.answerPings = false;
    const h = client(server);
    await next(h, 'connected');
    const err = (await h.ping({ timeout: 50 }).catch((e: unknown) => e)) as HeraldError;
    expect(err).toBeInstanceOf(HeraldError);
    expect(err.code).toBe('HERALD_ERR_TIMEOUT');
    const ac = new AbortController();
    const p = h.ping({ signal: ac.signal });
    ac.abort(new Error('user gave up'));
    await expect(p).rejects.toThrow('user gave up');
    await expect(h.ping({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('close() rejects what is pending, ends subscriptions and iterators, and is final', async () => {
    const server = new FakeServer();
    server.answerPings = false;
    const h = client(server);
    const sub = h.subscribe('a');
    await sub.ready();
    const pending = h.ping();
    const iterating = (async () => {
      const seen: unknown[] = [];
      for await (const p of sub) seen.push(p.data);
      return seen;
    })();
    server.publish('a', 'x');
    await next(sub, 'publication');
    h.close();
    await expect(pending).rejects.toMatchObject({ code: 'HERALD_ERR_CLIENT_CLOSED' });
    expect(await iterating).toEqual(['x']);
    expect(sub.state).toBe('unsubscribed');
    expect(h.state).toBe('closed');
    expect(() => h.subscribe('b')).toThrow(HeraldError);
    await expect(h.publish('a', 1)).rejects.toMatchObject({ code: 'HERALD_ERR_CLIENT_CLOSED' });
  });

  it('unsubscribes when the subscribe signal aborts', async () => {
    const server = new FakeServer();
    const h = client(server);
    const ac = new AbortController();
    const sub = h.subscribe('a', { signal: ac.signal });
    await sub.ready();
    ac.abort();
    expect(sub.state).toBe('unsubscribed');
    await until(() => server.commands.length >= 2, 'the unsubscribe command');
    expect(server.commands.map((c) => c.frame['cmd'])).toEqual(['subscribe', 'unsubscribe']);
  });
});

describe('delivery', () => {
  it('drops publications at or before the cursor, and resubscribes with the cursor after a drop', async () => {
    const server = new FakeServer();
    const h = client(server);
    const sub = h.subscribe<string>('s');
    const got = collect(sub);
    await sub.ready();
    server.publish('s', 'one');
    server.publish('s', 'two');
    await next(sub, 'publication', (p) => p.offset === 2);
    // A duplicate, and an old one: neither is delivered.
    server.last.push({ push: 'pub', stream: 's', channel: 's', epoch: 'e1', offset: 2, data: 'two again' });
    server.last.push({ push: 'pub', stream: 's', channel: 's', epoch: 'e1', offset: 1, data: 'one again' });
    server.publish('s', 'three');
    await next(sub, 'publication', (p) => p.offset === 3);
    expect(got.map((p) => p.data)).toEqual(['one', 'two', 'three']);
    server.last.serverClose(3004, 'force_reconnect');
    await next(h, 'connected');
    await sub.ready();
    expect(server.commands.filter((c) => c.frame['cmd'] === 'subscribe').at(-1)?.frame['since']).toEqual({
      epoch: 'e1',
      offset: 3,
    });
  });

  it('reports `unrecovered` with the old and new positions when the epoch changed', async () => {
    const server = new FakeServer();
    const h = client(server);
    const sub = h.subscribe<string>('s');
    await sub.ready();
    server.publish('s', 'one');
    await next(sub, 'publication');
    server.streams.set('s', { epoch: 'e2', offset: 5 });
    const lost = next(sub, 'unrecovered');
    const subscribed = next(sub, 'subscribed');
    server.last.serverClose(3001, 'shutdown', 0);
    expect(await subscribed).toMatchObject({ recovered: false, epoch: 'e2', offset: 5 });
    expect(await lost).toEqual({ previous: { epoch: 'e1', offset: 1 }, position: { epoch: 'e2', offset: 5 } });
    expect(sub.cursor).toEqual({ epoch: 'e2', offset: 5 });
  });
});

describe('liveness and backoff', () => {
  it('pings a quiet server and drops a silent one (3003), then reconnects', async () => {
    const server = new FakeServer();
    server.pingInterval = 40;
    server.answerPings = false;
    const h = client(server, { timeout: 40 });
    await next(h, 'connected');
    const lost = await next(h, 'state', (s) => s.state === 'connecting', 2000);
    expect(lost.code).toBe(3003);
    expect(server.commands.some((c) => c.frame['cmd'] === 'ping')).toBe(true);
    server.answerPings = true;
    server.pingInterval = 25_000;
    await next(h, 'connected');
  });

  it('waits the server hint (retryAfterMs) after a graceful shutdown', async () => {
    const server = new FakeServer();
    const h = client(server);
    await next(h, 'connected');
    server.last.serverClose(3001, 'shutdown', 300);
    const ev = await next(h, 'state', (s) => s.state === 'connecting');
    expect(ev).toMatchObject({ code: 3001, retryIn: 300 });
    const t0 = Date.now();
    await next(h, 'connected');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
  });

  it('draws backoff delays with full jitter over a window that doubles up to the cap', () => {
    for (let attempt = 0; attempt < 8; attempt++) {
      const window = Math.min(5000, 100 * 2 ** attempt);
      expect(backoff(attempt, 100, 5000, () => 0)).toBe(0);
      expect(backoff(attempt, 100, 5000, () => 0.999999)).toBe(window - 1);
      const draws = Array.from({ length: 2000 }, () => backoff(attempt, 100, 5000));
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...draws)).toBeLessThan(window);
      const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
      expect(mean / window).toBeGreaterThan(0.4);
      expect(mean / window).toBeLessThan(0.6);
    }
  });
});
