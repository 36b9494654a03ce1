/**
 * Failures are not silent (in Node; browser-defects.test.ts does the same in Chromium): a wrong
 * port, a wrong path, an origin the server does not allow and a refused token each produce an
 * `error` event with a coded HeraldError and `state` events whose reason names the cause. `ready()`
 * and every command take a timeout (default: the client's `timeout`) and reject with
 * HERALD_ERR_TIMEOUT; after a refused token (no `getToken`) `ready()` rejects with the auth error,
 * and `setToken()` connects again. Each test measures how long the cause took to show.
 */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Herald, HeraldError, type HeraldOptions, type StateEvent, type WebSocketLike } from '@herald/client';
import { freePort } from '@herald/test-support';
import { startServer, type TestServer } from '@herald/test-support/server';
import { FakeServer } from './support/fake-server.js';
import { collect, count, next, publishSoon } from './support/helpers.js';

const SECRET = 'client-failures-hmac-secret-0123456789';
const clients: Herald[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

function client(url: string, opts: HeraldOptions = {}): Herald {
  const h = new Herald(url, { connectTimeout: 1000, minReconnectDelay: 50, maxReconnectDelay: 200, ...opts });
  clients.push(h);
  return h;
}

/** The first `error` event and the `state` event that carries the same error; and how long they took. */
async function failure(h: Herald): Promise<{ error: HeraldError; state: StateEvent; ms: number }> {
  const start = Date.now();
  const [error, state] = await Promise.all([
    next(h, 'error', () => true, 5000),
    next(h, 'state', (s) => s.error !== undefined, 5000),
  ]);
  expect(error).toBeInstanceOf(HeraldError);
  expect(state.error).toBe(error);
  return { error: error as HeraldError, state, ms: Date.now() - start };
}

describe('a server that cannot be reached or refuses', () => {
  let srv: TestServer;
  let strict: TestServer;
  beforeAll(async () => {
    srv = await startServer();
    strict = await startServer({ allowedOrigins: ['http://app.test'] });
  });
  afterAll(async () => {
    await srv?.close();
    await strict?.close();
  });

  it('wrong port: an error event and a state reason naming the refused connection; commands and ready() time out', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const h = client(url, { timeout: 800 });
    const sub = h.subscribe('x.y');
    const ready = sub.ready().catch((e: unknown) => e as HeraldError);
    const { error, state, ms } = await failure(h);
    expect(error.code).toBe('HERALD_ERR_CLIENT_DISCONNECTED');
    expect(error.message).toContain(`cannot connect to ${url}`);
    expect(error.message).toContain('ECONNREFUSED');
    expect(state).toMatchObject({ state: 'connecting', prev: 'connecting', reason: error.message });
    expect(state.retryIn).toBeGreaterThanOrEqual(0);
    const calls = [
      h.publish('x.y', 1),
      h.history('x.y'),
      h.rpc('m'),
      h.ping({ timeout: 300 }),
      sub.ready({ timeout: 300 }),
    ];
    const codes = await Promise.all(calls.map((p) => (p as Promise<unknown>).catch((e: HeraldError) => e.code)));
    expect(codes).toEqual(Array(5).fill('HERALD_ERR_TIMEOUT'));
    expect(((await ready) as HeraldError).code).toBe('HERALD_ERR_TIMEOUT');
    expect(sub.state).toBe('subscribing');
    console.log(`wrong port: cause reported after ${ms} ms: ${error.message}`);
  });

  it('wrong path: the server says HERALD_ERR_API_NOT_FOUND', async () => {
    const h = client(`${srv.url}/not-herald`);
    const { error, state } = await failure(h);
    expect(error.code).toBe('HERALD_ERR_API_NOT_FOUND');
    expect(error.message).toMatch(/websocket: .*404/);
    expect(error.message).toContain('http-stream: HTTP 404 HERALD_ERR_API_NOT_FOUND');
    expect(state.reason).toBe(error.message);
  });

  it('an origin not in allowedOrigins: HERALD_ERR_PERMISSION_DENIED naming the origin', async () => {
    // Node sends no Origin of its own: this client says it runs in a page of http://evil.test.
    const origin = 'http://evil.test';
    const WS = class extends WebSocket {
      constructor(url: string) {
        super(url, { origin });
      }
    } as unknown as WebSocketLike;
    const fromPage: typeof fetch = (input, init) =>
      fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), Origin: origin } });
    const h = client(strict.url, { WebSocket: WS, fetch: fromPage });
    const { error } = await failure(h);
    expect(error.code).toBe('HERALD_ERR_PERMISSION_DENIED');
    expect(error.message).toContain(`origin ${origin} is not allowed`);
  });

  it('times out a subscribe the server never answers: ready({ timeout }) rejects with HERALD_ERR_TIMEOUT', async () => {
    const server = new FakeServer();
    server.overrides.set('subscribe', () => ({ push: 'nothing' }));
    const h = client('http://fake.test', { transports: ['websocket'], WebSocket: server.WebSocket });
    const start = Date.now();
    const err = (await h
      .subscribe('a')
      .ready({ timeout: 200 })
      .catch((e: unknown) => e)) as HeraldError;
    expect(err.code).toBe('HERALD_ERR_TIMEOUT');
    expect(Date.now() - start).toBeGreaterThanOrEqual(190);
  });
});

describe('a refused token without getToken', () => {
  let srv: TestServer;
  const key = new TextEncoder().encode(SECRET);
  const token = (): Promise<string> =>
    new SignJWT({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 600 }).setProtectedHeader({ alg: 'HS256' }).sign(key);
  beforeAll(async () => {
    srv = await startServer({ auth: { hmacSecret: SECRET, anonymousConnect: false } });
  });
  afterAll(() => srv?.close());

  it.each([['default transports'], ['long-poll']])(
    '%s: stops with the auth error, ready() rejects with it, setToken() connects again',
    async (which) => {
      const h = client(srv.url, {
        token: 'not-a-jwt',
        ...(which === 'long-poll' ? { transports: ['long-poll'] } : {}),
      });
      const sub = h.subscribe<string>('auth.feed');
      const got = collect(sub);
      const ready = sub.ready({ timeout: 5000 }).catch((e: unknown) => e as HeraldError);
      const { error, state } = await failure(h);
      expect(error.code).toMatch(/^HERALD_ERR_AUTH_TOKEN_/);
      expect(state).toMatchObject({ state: 'disconnected', code: 3510 });
      expect(await ready).toBe(error);
      // Called while stopped, ready() says why at once.
      await expect(sub.ready()).rejects.toBe(error);
      h.setToken(await token());
      await sub.ready();
      expect(h.state).toBe('connected');
      await publishSoon(srv.url, 'auth.feed', 'after setToken');
      await count(sub, got, 1);
      expect(got.map((p) => p.data)).toEqual(['after setToken']);
    },
  );

  it('setToken() while connected renews in place with `refresh`', async () => {
    const server = new FakeServer();
    server.extraCommands.add('refresh');
    const h = client('http://fake.test', { transports: ['websocket'], WebSocket: server.WebSocket, token: 't1' });
    await next(h, 'connected');
    h.setToken('t2');
    await expect(h.ping()).resolves.toBeGreaterThanOrEqual(0);
    expect(server.commands.map((c) => [c.frame['cmd'], c.frame['token']])).toEqual([
      ['refresh', 't2'],
      ['ping', undefined],
    ]);
    expect(server.sockets).toHaveLength(1);
  });
});
