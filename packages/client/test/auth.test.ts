/**
 * Tokens against a real server that requires them (HS256): `getToken` before connecting, on every
 * transport; renewal in place before `exp` (the server's `refresh` push and the SDK's `refresh`
 * command) while publications keep flowing; a static token that expires ends the connection with
 * 3511 and no reconnect; subscription tokens for namespaces that require them.
 */
import { setTimeout as pause } from 'node:timers/promises';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Herald, HeraldError, type HeraldOptions, type TransportName } from '@herald/client';
import { until } from '@herald/test-support';
import { startServer, type TestServer } from '@herald/test-support/server';
import { collect, count, next, publishSoon } from './support/helpers.js';

const SECRET = 'client-test-hmac-secret-0123456789abcdef';
const key = new TextEncoder().encode(SECRET);

function token(claims: Record<string, unknown>, ttlMs: number): Promise<string> {
  return new SignJWT({ ...claims, exp: (Date.now() + ttlMs) / 1000 }).setProtectedHeader({ alg: 'HS256' }).sign(key);
}

let srv: TestServer;
const clients: Herald[] = [];
beforeAll(async () => {
  srv = await startServer({
    auth: { hmacSecret: SECRET, anonymousConnect: false },
    http: { heartbeatInterval: 1000 },
    namespaces: { feed: { anonymousSubscribe: false }, vip: { requireSubscriptionToken: true } },
  });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(() => srv.close());

function client(opts: HeraldOptions): Herald {
  const h = new Herald(srv.url, { minReconnectDelay: 50, maxReconnectDelay: 200, ...opts });
  clients.push(h);
  return h;
}

const grant = { sub: 'u1', channels: { subscribe: ['feed.**', 'vip.**'] } };

describe.each(['websocket', 'http-stream', 'sse', 'long-poll'] as TransportName[])('over %s', (transport) => {
  it('connects with the token from getToken and renews it in place before exp, without a gap', async () => {
    let calls = 0;
    const h = client({ transports: [transport], getToken: () => (calls++, token(grant, 2500)) });
    const connects: string[] = [];
    h.on('connected', (e) => connects.push(e.client));
    const sub = h.subscribe<number>(`feed.${transport}`);
    const got = collect(sub);
    await sub.ready();
    expect(calls).toBe(1);
    let n = 0;
    const publishing = (async () => {
      const end = Date.now() + 4000; // well past the first token's exp
      while (Date.now() < end) {
        await publishSoon(srv.url, `feed.${transport}`, ++n);
        await pause(50); // a steady publisher, not a burst
      }
    })();
    await publishing;
    await count(sub, got, n);
    expect(got.map((p) => p.data)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(h.state).toBe('connected');
    // In place: the same connection (long-poll: the same client id) all along.
    expect(connects).toHaveLength(1);
  });
});

describe('long-poll renewal while a poll is held', () => {
  it('keeps its client id across expiries with no publication to end the held polls', async () => {
    let calls = 0;
    const h = client({ transports: ['long-poll'], getToken: () => (calls++, token(grant, 2500)) });
    const connects: string[] = [];
    const states: string[] = [];
    h.on('connected', (e) => connects.push(e.client));
    h.on('state', (e) => states.push(e.state));
    const sub = h.subscribe<number>('feed.quietpoll');
    const got = collect(sub);
    await sub.ready();
    // Three renewals (one every 0.9 token lifetime): the first two tokens expired while every poll was held.
    await until(() => calls >= 4, 'three token renewals', 15_000);
    await publishSoon(srv.url, 'feed.quietpoll', 1);
    await count(sub, got, 1);
    expect(connects).toHaveLength(1);
    expect(states).not.toContain('disconnected');
  });
});

describe('expiry and refusals', () => {
  it('stops with 3511 when a static token expires (nothing to renew it with)', async () => {
    const h = client({ transports: ['websocket'], token: await token(grant, 1200) });
    await next(h, 'connected');
    const down = await next(h, 'state', (s) => s.state !== 'connected', 5000);
    expect(down).toMatchObject({ state: 'disconnected', code: 3511 });
  });

  it('falls back past a refused WebSocket and stops when every transport refuses a bad token', async () => {
    const h = client({ token: 'not-a-jwt', connectTimeout: 1000 });
    const down = await next(h, 'state', (s) => s.state === 'disconnected', 5000);
    expect(down.code).toBe(3510);
    await expect(h.ping()).rejects.toMatchObject({ code: 'HERALD_ERR_CLIENT_DISCONNECTED' });
  });

  it('gets a subscription token for a namespace that requires one; without one the subscription is refused', async () => {
    const h = client({ transports: ['websocket'], getToken: () => token(grant, 60_000) });
    const seen: string[] = [];
    const sub = h.subscribe('vip.lounge', {
      getToken: (channel) => (seen.push(channel), token({ sub: 'u1', channel }, 60_000)),
    });
    const got = collect(sub);
    await sub.ready();
    await publishSoon(srv.url, 'vip.lounge', 'welcome');
    await count(sub, got, 1);
    expect(seen).toEqual(['vip.lounge']);
    const bare = h.subscribe('vip.other');
    const err = (await bare.ready().catch((e: unknown) => e)) as HeraldError;
    expect(err).toBeInstanceOf(HeraldError);
    expect(err.code).toBe('HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED');
  });
});
