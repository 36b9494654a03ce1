/**
 * Auth wired into connections, end to end: tokens on every transport, channel permissions,
 * subscription tokens, refresh in place (WebSocket and POST /send), expiry that disconnects
 * with TOKEN_EXPIRED (never silently anonymous), and disconnect by user.
 */
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';
import { FakeClock } from './support/fake-clock.js';
import { SseReader, send } from './support/http-clients.js';

const SECRET = 'test-hmac-secret-0123456789abcdef-0123456789';
const key = new TextEncoder().encode(SECRET);

async function token(claims: Record<string, unknown>, ttlSeconds = 3600): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(key);
}

async function tokenMs(claims: Record<string, unknown>, ttlMs: number): Promise<string> {
  return new SignJWT({ ...claims, exp: (Date.now() + ttlMs) / 1000 }).setProtectedHeader({ alg: 'HS256' }).sign(key);
}

let srv: TestServer;
let open: TestServer;
beforeAll(async () => {
  srv = await startServer({
    auth: { hmacSecret: SECRET, anonymousConnect: false },
    namespaces: {
      secret: { requireSubscriptionToken: true, anonymousSubscribe: false },
      // Without a grant in the token, nobody subscribes here: permissions decide.
      user: { anonymousSubscribe: false },
      other: { anonymousSubscribe: false },
    },
  });
  open = await startServer({ auth: { hmacSecret: SECRET }, namespaces: { members: { anonymousSubscribe: false } } });
});
afterAll(async () => {
  await srv.close();
  await open.close();
});

function refused(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => reject(new Error('connected, expected a refusal')));
    ws.on('error', () => undefined);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(body) }));
    });
  });
}

describe('connection tokens', () => {
  it('refuses a WebSocket without a token, or with a bad one, before the upgrade', async () => {
    const none = await refused(srv.wsUrl);
    expect([none.status, none.body.error.code]).toEqual([401, 'HERALD_ERR_AUTH_TOKEN_REQUIRED']);
    const bad = await refused(`${srv.wsUrl}?token=not.a.jwt`);
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toMatch(/^HERALD_ERR_AUTH_TOKEN_/);
    const header = 'eyJhbGciOiJub25lIn0';
    const payload = Buffer.from(JSON.stringify({ sub: '1', exp: Math.floor(Date.now() / 1000) + 60 })).toString(
      'base64url',
    );
    const none2 = await refused(`${srv.wsUrl}?token=${header}.${payload}.`);
    expect(none2.status).toBe(401);
    const expired = await refused(srv.wsUrl, { Authorization: `Bearer ${await token({ sub: '1' }, -10)}` });
    expect(expired.body.error.code).toBe('HERALD_ERR_AUTH_TOKEN_EXPIRED');
  });

  it('applies channel permissions from the token, with $sub', async () => {
    const t = await token({ sub: '42', channels: { subscribe: ['user.$sub.**'], publish: ['chat.**'] } });
    const c = await WsClient.connect(`${srv.wsUrl}?token=${t}`);
    expect((await c.request({ cmd: 'subscribe', channel: 'user.42.**' }))['result']).toBeDefined();
    expect((await c.request({ cmd: 'subscribe', channel: 'user.43.**' }))['error'].code).toBe(
      'HERALD_ERR_PERMISSION_DENIED',
    );
    expect((await c.request({ cmd: 'subscribe', channel: 'user.**' }))['error'].code).toBe(
      'HERALD_ERR_PERMISSION_DENIED',
    );
    expect((await c.request({ cmd: 'publish', channel: 'chat.x', data: 1 }))['result']).toMatchObject({ offset: 1 });
    expect((await c.request({ cmd: 'publish', channel: 'news.x', data: 1 }))['error'].code).toBe(
      'HERALD_ERR_PERMISSION_DENIED',
    );
    await api(srv.url, 'publish', { channel: 'user.42.inbox', data: 'for 42' });
    await c.waitFor((f) => f['push'] === 'pub' && f['data'] === 'for 42', 'own user channel');
    await c.close();
  });

  it('needs a subscription token on a private namespace', async () => {
    const t = await token({ sub: '7' });
    const c = await WsClient.connect(srv.wsUrl, { headers: { Authorization: `Bearer ${t}` } });
    expect((await c.request({ cmd: 'subscribe', channel: 'secret.room' }))['error'].code).toBe(
      'HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED',
    );
    const other = await token({ sub: '7', channel: 'secret.other' }, 60);
    expect((await c.request({ cmd: 'subscribe', channel: 'secret.room', token: other }))['error'].code).toMatch(
      /^HERALD_ERR_AUTH_/,
    );
    const sub = await token({ sub: '7', channel: 'secret.room' }, 60);
    expect((await c.request({ cmd: 'subscribe', channel: 'secret.room', token: sub }))['result']).toBeDefined();
    await c.close();
  });

  it('takes tokens on SSE, /stream and /poll (query or Bearer), and refuses without', async () => {
    const t = await token({ sub: '5', channels: { subscribe: ['feed.**'] } });
    for (const path of ['/sse?channel=feed.a', '/stream?channel=feed.a', '/poll?channel=feed.a']) {
      const no = await fetch(`${srv.url}${path}`);
      expect([path, no.status]).toEqual([path, 401]);
      expect(((await no.json()) as { error: { code: string } }).error.code).toBe('HERALD_ERR_AUTH_TOKEN_REQUIRED');
    }
    const es = new SseReader(`${srv.url}/sse?channel=feed.a&token=${t}`);
    await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'subscribed');
    es.close();
    const poll = await fetch(`${srv.url}/poll?channel=feed.a`, { headers: { Authorization: `Bearer ${t}` } });
    expect(poll.status).toBe(200);
    const denied = await fetch(`${srv.url}/poll?channel=other.a&token=${t}`);
    const body = (await denied.json()) as { streams: Record<string, { error?: { code: string } }> };
    expect(body.streams['other.a']?.error?.code).toBe('HERALD_ERR_PERMISSION_DENIED');
  });

  it('keeps anonymous clients out of a members-only namespace but lets them elsewhere', async () => {
    const c = await WsClient.connect(open.wsUrl);
    expect((await c.request({ cmd: 'subscribe', channel: 'members.x' }))['error'].code).toBe(
      'HERALD_ERR_AUTH_TOKEN_REQUIRED',
    );
    expect((await c.request({ cmd: 'subscribe', channel: 'public.x' }))['result']).toBeDefined();
    await c.close();
  });
});

describe('expiry and refresh', () => {
  // The sessions' expiry timers run on a fake clock that the tests advance; the tokens are verified
  // against the real time, so they expire in the real future (a minute from now).
  let clock: FakeClock;
  let timed: TestServer;
  beforeEach(async () => {
    clock = new FakeClock(Date.now());
    timed = await startServer({ auth: { hmacSecret: SECRET } }, { clock });
  });
  afterEach(() => timed.close());

  const isRefresh = (f: Frame): boolean => f['push'] === 'refresh';

  it('asks for a refresh before exp, refreshes in place over WebSocket, and keeps subscriptions', async () => {
    const c = await WsClient.connect(`${timed.wsUrl}?token=${await tokenMs({ sub: '9' }, 60_000)}`);
    await c.request({ cmd: 'subscribe', channel: 'live.x' });
    // The refresh push comes a tenth of the token's life before exp (54 s in): not at 50 s...
    clock.advance(50_000);
    await c.request({ cmd: 'ping' }); // a push sent before this reply would have arrived before it
    expect(c.frames.filter(isRefresh)).toEqual([]);
    // ... but by 57 s.
    clock.advance(7_000);
    const push = await c.waitFor(isRefresh, 'refresh push');
    expect(push['expiresAt']).toBeGreaterThan(clock.now());
    const r = await c.request({ cmd: 'refresh', token: await token({ sub: '9' }, 3600) });
    expect(r['result'].expiresAt).toBeGreaterThan(clock.now() + 30 * 60_000);
    // Past the first token's expiry: still connected and subscribed.
    clock.advance(5_000);
    await api(timed.url, 'publish', { channel: 'live.x', data: 'after exp' });
    await c.waitFor((f) => f['push'] === 'pub' && f['data'] === 'after exp', 'publication after the old exp');
    expect(c.closeCode).toBeUndefined();
    await c.close();
  });

  it('refuses a refresh for another user, and closes with 3511 at exp without a refresh', async () => {
    const c = await WsClient.connect(`${timed.wsUrl}?token=${await tokenMs({ sub: '10' }, 60_000)}`);
    const r = await c.request({ cmd: 'refresh', token: await token({ sub: '11' }, 3600) });
    expect(r['error'].code).toBe('HERALD_ERR_AUTH_TOKEN_CLAIMS');
    clock.advance(61_000);
    const d = await c.waitFor((f) => f['push'] === 'disconnect', 'disconnect push');
    expect(d).toMatchObject({ code: 3511, reconnect: false });
    expect((await withTimeout(c.closed, 5000, 'close')).code).toBe(3511);
  });

  it('refreshes an SSE session in band through POST /send', async () => {
    const es = new SseReader(`${timed.url}/sse?channel=live.sse&token=${await tokenMs({ sub: '12' }, 60_000)}`);
    await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'subscribed event');
    clock.advance(57_000);
    await es.waitFor((e) => e.some((x) => x.event === 'refresh'), 'refresh event');
    const session = es.of('connected')[0]!['session'] as string;
    const r = await send(
      timed.url,
      session,
      JSON.stringify({ id: 1, cmd: 'refresh', token: await token({ sub: '12' }, 3600) }),
    );
    expect(r.lines[0].result.expiresAt).toBeGreaterThan(clock.now() + 30 * 60_000);
    // Past the first token's expiry: still connected.
    clock.advance(5_000);
    await api(timed.url, 'publish', { channel: 'live.sse', data: 'still here' });
    await es.waitFor((e) => e.some((x) => x.event === 'message'), 'publication after the old exp');
    expect(es.of('disconnect')).toEqual([]);
    es.close();
  });
});

describe('disconnect by user', () => {
  it('disconnects every connection of a user through the server API', async () => {
    const t = await token({ sub: 'u-77' });
    const a = await WsClient.connect(`${open.wsUrl}?token=${t}`);
    const b = await WsClient.connect(`${open.wsUrl}?token=${t}`);
    const other = await WsClient.connect(open.wsUrl);
    const r = await api(open.url, 'disconnect', { user: 'u-77' });
    expect(r.body).toEqual({ disconnected: 2 });
    expect((await a.closed).code).toBe(3500);
    expect((await b.closed).code).toBe(3500);
    expect((await other.request({ cmd: 'ping' }))['result']).toEqual({});
    await other.close();
  });
});
