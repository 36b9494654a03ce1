/**
 * The admin page at /admin (src/admin/): off without a password; the login (constant-time check,
 * HttpOnly SameSite cookie, rate limit per address); CSRF and origin checks on every action; strict
 * headers; the JSON API (overview, channels, the channel inspector, connections, disconnect,
 * publish) against a real server with WebSocket clients; no secret in anything it serves.
 */
import type { IncomingMessage } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { AdminSessions, readCookie } from '../src/admin/admin-session.js';
import { sameSite } from '../src/admin/admin.js';
import { ADMIN_PASSWORD, ADMIN_SECRET, AdminClient, adminConfig, login } from './support/admin.js';
import { SECRET, sign } from './support/tokens.js';

const token = (sub: string): Promise<string> => sign({ sub, exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);

const namespaces = {
  chat: { presence: true, historySize: 50 },
  feed: { historySize: 100 },
  live: { historySize: 0 },
};

function adminServer(over: Record<string, unknown> = {}): Promise<TestServer> {
  return startServer({ admin: adminConfig(), auth: { hmacSecret: SECRET }, namespaces, ...over });
}

describe('admin page switched off', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startServer();
  });
  afterAll(() => srv.close());

  it('answers 404 with a JSON error that says how to turn it on, for every admin path', async () => {
    for (const path of ['/admin', '/admin/', '/admin/login', '/admin/api/overview', '/admin/static/admin.js']) {
      const res = await fetch(`${srv.url}${path}`, { redirect: 'manual' });
      expect(res.status, path).toBe(404);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('HERALD_ERR_API_NOT_FOUND');
      expect(body.error.message).toMatch(/admin\.password/);
    }
    const post = await fetch(`${srv.url}/admin/login`, { method: 'POST', body: 'password=x' });
    expect(post.status).toBe(404);
    expect(srv.server.nodeStats).toBeUndefined();
  });
});

describe('admin login', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await adminServer();
  });
  afterAll(() => srv.close());

  it('sends the page to the login form until logged in, with strict headers on everything', async () => {
    const root = await fetch(`${srv.url}/admin`, { redirect: 'manual' });
    expect(root.status).toBe(308);
    expect(root.headers.get('location')).toBe('/admin/');
    const page = await fetch(`${srv.url}/admin/`, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/admin/login');
    const form = await fetch(`${srv.url}/admin/login`);
    expect(form.status).toBe(200);
    const html = await form.text();
    expect(html).toContain('<form method="post" action="/admin/login"');
    expect(html).not.toMatch(/<script/i);
    for (const res of [page, form]) {
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).not.toContain('unsafe-inline');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('refuses a wrong password with 401 and the form again', async () => {
    const r = await login(srv.url, 'wrong-password-000');
    expect(r.status).toBe(401);
    expect(r.setCookie).toBeNull();
    expect(r.body).toContain('Wrong password.');
    expect(r.body).toContain('<form');
  });

  it('logs in with the right password: an HttpOnly, SameSite=Strict cookie for /admin, Secure over https', async () => {
    const r = await login(srv.url);
    expect(r.status).toBe(303);
    expect(r.location).toBe('/admin/');
    const attrs = (r.setCookie ?? '').split(';').map((a) => a.trim());
    expect(attrs[0]).toMatch(/^herald_admin=[\w.-]+$/);
    expect(attrs).toContain('HttpOnly');
    expect(attrs).toContain('SameSite=Strict');
    expect(attrs).toContain('Path=/admin');
    expect(attrs).toContain('Max-Age=43200');
    expect(attrs).not.toContain('Secure');
    // Behind a TLS-terminating proxy.
    const tls = await login(srv.url, ADMIN_PASSWORD, { 'X-Forwarded-Proto': 'https' });
    expect(tls.setCookie?.split(';').map((a) => a.trim())).toContain('Secure');

    const page = await fetch(`${srv.url}/admin/`, { headers: { Cookie: r.cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<script src="/admin/static/admin.js" defer></script>');
    // No inline script: every <script> has a src.
    expect(html.match(/<script(?![^>]*\ssrc=)[^>]*>/g)).toBeNull();
    // Logged in, the login form sends to the page.
    const again = await fetch(`${srv.url}/admin/login`, { headers: { Cookie: r.cookie }, redirect: 'manual' });
    expect(again.status).toBe(303);
  });

  it('takes the password as JSON too', async () => {
    const res = await fetch(`${srv.url}/admin/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: ADMIN_PASSWORD }),
    });
    expect(res.status).toBe(303);
  });

  it('refuses a login form posted from another site', async () => {
    const r1 = await login(srv.url, ADMIN_PASSWORD, { Origin: 'https://evil.example' });
    expect(r1.status).toBe(403);
    expect(r1.setCookie).toBeNull();
    const r2 = await login(srv.url, ADMIN_PASSWORD, { 'Sec-Fetch-Site': 'cross-site' });
    expect(r2.status).toBe(403);
    // What Chromium sends for the page's own form (Referrer-Policy: no-referrer makes Origin "null").
    const r3 = await login(srv.url, ADMIN_PASSWORD, { Origin: 'null', 'Sec-Fetch-Site': 'same-origin' });
    expect(r3.status).toBe(303);
  });

  it('serves uPlot and the page files itself', async () => {
    for (const [name, type] of [
      ['admin.js', 'text/javascript'],
      ['admin.css', 'text/css'],
      ['uPlot.iife.min.js', 'text/javascript'],
      ['uPlot.min.css', 'text/css'],
      ['favicon.svg', 'image/svg+xml'],
    ] as const) {
      const res = await fetch(`${srv.url}/admin/static/${name}`);
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type')).toContain(type);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(100);
    }
    const uplot = await (await fetch(`${srv.url}/admin/static/uPlot.iife.min.js`)).text();
    expect(uplot).toContain('uPlot');
    for (const bad of ['../admin.ts', '..%2Fadmin.ts', 'index.html', 'nope.js', 'constructor', '__proto__']) {
      expect((await fetch(`${srv.url}/admin/static/${bad}`)).status, bad).toBe(404);
    }
    expect((await fetch(`${srv.url}/admin/static/admin.js`, { method: 'POST' })).status).toBe(405);
  });
});

describe('admin login rate limit', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await adminServer();
  });
  afterAll(() => srv.close());

  it('refuses the 6th attempt within a minute with 429 and Retry-After, even with the right password', async () => {
    for (let i = 0; i < 5; i++) expect((await login(srv.url, `wrong-${i}-0123456789`)).status).toBe(401);
    const sixth = await login(srv.url, 'wrong-6-0123456789');
    expect(sixth.status).toBe(429);
    const retry = Number(sixth.retryAfter);
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(60);
    expect(sixth.body).toMatch(/Too many wrong passwords/);
    const right = await login(srv.url);
    expect(right.status).toBe(429);
    expect(right.setCookie).toBeNull();
  });
});

describe('admin API', () => {
  let srv: TestServer;
  let admin: AdminClient;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    srv = await adminServer({ apiKeys: [API_KEY] });
    admin = await AdminClient.login(srv.url);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });
  afterAll(() => srv.close());

  async function user(name: string, ...channels: string[]): Promise<WsClient> {
    const c = await WsClient.connect(`${srv.wsUrl}?token=${await token(name)}`);
    for (const channel of channels) {
      const r = await c.request({ cmd: 'subscribe', channel });
      expect(r['result'], JSON.stringify(r)).toBeDefined();
    }
    clients.push(c);
    return c;
  }

  it('answers 401 JSON without a session, or with a forged, tampered or other-key cookie', async () => {
    const paths = ['session', 'overview', 'channels', 'channel?name=chat.a', 'connections'];
    for (const path of paths) {
      const res = await fetch(`${srv.url}/admin/api/${path}`);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('content-type')).toBe('application/json');
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('HERALD_ERR_ADMIN_UNAUTHORIZED');
    }
    const [name, value] = admin.cookie.split('=') as [string, string];
    const [exp, nonce, mac] = value.split('.') as [string, string, string];
    const forged = [
      `${name}=${exp}.${nonce}.${mac.slice(0, -2)}xx`,
      `${name}=${(parseInt(exp, 36) + 1e9).toString(36)}.${nonce}.${mac}`,
      `${name}=garbage`,
      `${name}=${new AdminSessions({ password: ADMIN_PASSWORD, secret: 'another-secret-0123456789' }).issue().value}`,
      `${name}=${new AdminSessions({ password: 'another-password', secret: ADMIN_SECRET }).issue().value}`,
    ];
    for (const cookie of forged) {
      const res = await fetch(`${srv.url}/admin/api/overview`, { headers: { Cookie: cookie } });
      expect(res.status, cookie).toBe(401);
    }
    // Another node with the same secret and password takes the cookie (shared admin.secret).
    const same = new AdminSessions({ password: ADMIN_PASSWORD, secret: ADMIN_SECRET }).issue().value;
    expect((await fetch(`${srv.url}/admin/api/overview`, { headers: { Cookie: `${name}=${same}` } })).status).toBe(200);
    const post = await fetch(`${srv.url}/admin/api/publish`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Herald-CSRF': admin.csrf },
      body: JSON.stringify({ channel: 'feed.x', data: 1 }),
    });
    expect(post.status).toBe(401);
  });

  it('refuses an action without the CSRF token, with a wrong one, or from another origin (403)', async () => {
    const body = { channel: 'feed.csrf', data: { n: 1 } };
    const none = await admin.post('publish', body, { csrf: null });
    expect(none.status).toBe(403);
    expect(none.body.error.code).toBe('HERALD_ERR_ADMIN_FORBIDDEN');
    expect((await admin.post('publish', body, { csrf: 'x'.repeat(43) })).status).toBe(403);
    // Another session's token.
    const other = await AdminClient.login(srv.url);
    expect((await admin.post('publish', body, { csrf: other.csrf })).status).toBe(403);
    const evil = await admin.post('publish', body, { headers: { Origin: 'https://evil.example' } });
    expect(evil.status).toBe(403);
    expect(evil.body.error.message).toMatch(/another site/);
    const port = new URL(srv.url).port;
    expect(
      (await admin.post('publish', body, { headers: { Origin: `http://127.0.0.1:${Number(port) + 1}` } })).status,
    ).toBe(403);
    expect((await admin.post('publish', body, { headers: { 'Sec-Fetch-Site': 'cross-site' } })).status).toBe(403);
    expect((await admin.post('publish', body, { headers: { 'Sec-Fetch-Site': 'same-site' } })).status).toBe(403);
    expect((await admin.post('disconnect', { user: 'nobody' }, { csrf: null })).status).toBe(403);
    // Reads from another site are refused too.
    expect((await admin.get('connections', { 'Sec-Fetch-Site': 'cross-site' })).status).toBe(403);
    // Nothing was published.
    const h = await admin.get('channel?name=feed.csrf');
    expect(h.body.history.offset).toBe(0);
    // The same request from the page's origin passes.
    const ok = await admin.post('publish', body, { headers: { Origin: srv.url, 'Sec-Fetch-Site': 'same-origin' } });
    expect(ok.status).toBe(200);
    // GET on an action, POST on a read.
    expect((await admin.get('publish')).status).toBe(405);
    expect((await admin.post('overview', {})).status).toBe(405);
  });

  it('publishes from the console to a WebSocket subscriber', async () => {
    const sub = await user('alice', 'chat.console');
    const r = await admin.post('publish', { channel: 'chat.console', data: { text: 'from the admin' } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ channel: 'chat.console', offset: 1, duplicate: false });
    const pub = await sub.waitFor((f) => f['push'] === 'pub', 'publication from the admin console');
    expect(pub['data']).toEqual({ text: 'from the admin' });
    const bad = await admin.post('publish', { channel: 'not a channel!', data: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('HERALD_ERR_CHANNEL_INVALID');
    const notJson = await fetch(`${srv.url}/admin/api/publish`, {
      method: 'POST',
      headers: { Cookie: admin.cookie, 'X-Herald-CSRF': admin.csrf, 'Content-Type': 'application/json' },
      body: '{nope',
    });
    expect(notJson.status).toBe(400);
  });

  it('lists connections with user, transport, subscriptions, queued bytes and address; searches them', async () => {
    const a = await user('alice', 'chat.room1', 'feed.news');
    const b = await user('bob', 'chat.room2');
    const all = await admin.get('connections');
    expect(all.status).toBe(200);
    expect(all.body.matched).toBe(2);
    const row = all.body.connections.find((c: { client: string }) => c.client === a.clientId);
    expect(row).toMatchObject({
      node: srv.server.hub.nodeId,
      user: 'alice',
      transport: 'websocket',
      subscriptions: ['chat.room1', 'feed.news'],
      subscriptionCount: 2,
      queuedBytes: 0,
      remoteAddress: '127.0.0.1',
    });
    expect(Math.abs(row.connectedAt - Date.now())).toBeLessThan(10_000);
    const byUser = await admin.get('connections?user=bob');
    expect(byUser.body.connections.map((c: { client: string }) => c.client)).toEqual([b.clientId]);
    const byChannel = await admin.get('connections?q=ROOM1');
    expect(byChannel.body.connections.map((c: { client: string }) => c.client)).toEqual([a.clientId]);
    const byClient = await admin.get(`connections?client=${encodeURIComponent(b.clientId)}`);
    expect(byClient.body.connections).toHaveLength(1);
    const limited = await admin.get('connections?limit=1');
    expect(limited.body.connections).toHaveLength(1);
    expect(limited.body.matched).toBe(2);
    expect((await admin.get('connections?limit=0')).status).toBe(400);
    expect((await admin.get('connections?limit=abc')).status).toBe(400);
  });

  it('disconnects a client, or every connection of a user', async () => {
    const a = await user('carol', 'chat.x');
    const b1 = await user('dave');
    const b2 = await user('dave');
    const r = await admin.post('disconnect', { client: a.clientId });
    expect(r.body).toEqual({ disconnected: 1, nodeErrors: [] });
    expect((await a.closed).code).toBe(3500); // FORCE_DISCONNECT: do not reconnect
    const u = await admin.post('disconnect', { user: 'dave', reconnect: true });
    expect(u.body.disconnected).toBe(2);
    expect((await b1.closed).code).toBe(3004); // FORCE_RECONNECT
    expect((await b2.closed).code).toBe(3004);
    expect((await admin.post('disconnect', { client: 'nobody-1' })).body.disconnected).toBe(0);
    expect((await admin.post('disconnect', {})).status).toBe(400);
    expect((await admin.post('disconnect', { user: '' })).status).toBe(400);
    expect((await admin.post('disconnect', { user: 'x', reconnect: 'yes' })).status).toBe(400);
  });

  it('inspects a channel: the last 20 publications newest first, presence and subscribers', async () => {
    await user('erin', 'chat.inspect');
    await user('frank', 'chat.inspect');
    for (let i = 1; i <= 25; i++) await admin.post('publish', { channel: 'chat.inspect', data: { i } });
    const c = await admin.get('channel?name=chat.inspect');
    expect(c.status).toBe(200);
    expect(c.body.subscribers).toBe(2);
    expect(c.body.history.offset).toBe(25);
    expect(c.body.history.publications.map((p: { offset: number }) => p.offset)).toEqual(
      Array.from({ length: 20 }, (_, i) => 25 - i),
    );
    expect(c.body.history.publications[0].data).toEqual({ i: 25 });
    expect(c.body.presence).toMatchObject({ clients: 2, users: 2 });
    expect(c.body.presence.entries.map((e: { user: string }) => e.user).sort()).toEqual(['erin', 'frank']);
    // A namespace without presence, one without history.
    const feed = await admin.get('channel?name=feed.nothing');
    expect(feed.body.presence.error.code).toBe('HERALD_ERR_PRESENCE_DISABLED');
    expect(feed.body.history.publications).toEqual([]);
    const plain = await admin.get('channel?name=live.x');
    expect(plain.body.history.error.code).toBe('HERALD_ERR_HISTORY_DISABLED');
    expect((await admin.get('channel?name=')).status).toBe(400);
    expect((await admin.get('channel?name=bad%20name')).status).toBe(400);
  });

  it('shows the nodes and the top channels from the samples', async () => {
    await user('grace', 'chat.top', 'feed.top');
    await user('heidi', 'chat.top');
    const stats = srv.server.nodeStats;
    expect(stats).toBeDefined();
    await stats?.tick();
    for (let i = 0; i < 5; i++) await admin.post('publish', { channel: 'feed.top', data: i });
    await stats?.tick();
    const o = await admin.get('overview');
    expect(o.status).toBe(200);
    expect(o.body.node).toBe(srv.server.hub.nodeId);
    expect(o.body.health).toMatchObject({ alive: true, ready: true, engine: 'memory' });
    expect(o.body.nodes).toHaveLength(1);
    const node = o.body.nodes[0];
    expect(node).toMatchObject({ node: srv.server.hub.nodeId, self: true, up: true });
    expect(node.samples.length).toBeGreaterThanOrEqual(2);
    expect(node.latest.connections.websocket).toBe(2);
    expect(node.latest.topBySubscribers).toBeUndefined();
    // `since` leaves out what the page has.
    const later = await admin.get(`overview?since=${node.latest.t}`);
    expect(later.body.nodes[0].samples).toEqual([]);
    const ch = await admin.get('channels');
    expect(ch.body.bySubscribers[0]).toMatchObject({ channel: 'chat.top', subscribers: 2 });
    expect(ch.body.byRate[0]).toMatchObject({ channel: 'feed.top' });
    expect(ch.body.byRate[0].rate).toBeGreaterThan(0);
  });

  it('logs out: the cookie is cleared and no longer accepted here', async () => {
    const me = await AdminClient.login(srv.url);
    expect((await me.get('overview')).status).toBe(200);
    const noCsrf = await fetch(`${srv.url}/admin/logout`, { method: 'POST', headers: { Cookie: me.cookie } });
    expect(noCsrf.status).toBe(403);
    const out = await fetch(`${srv.url}/admin/logout`, {
      method: 'POST',
      headers: { Cookie: me.cookie, 'X-Herald-CSRF': me.csrf },
    });
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toMatch(/^herald_admin=; Path=\/admin; HttpOnly; SameSite=Strict; Max-Age=0/);
    expect((await me.get('overview')).status).toBe(401);
    expect((await admin.get('overview')).status).toBe(200);
  });

  it('never serves a secret: no password, admin secret, API key or HMAC secret in any page or answer', async () => {
    const secrets = [ADMIN_PASSWORD, ADMIN_SECRET, API_KEY, SECRET];
    const c = await user('ivan', 'chat.secrets');
    await admin.post('publish', { channel: 'chat.secrets', data: 'x' });
    await srv.server.nodeStats?.tick();
    const texts: string[] = [];
    const plain = async (path: string, init: RequestInit = {}): Promise<void> => {
      const res = await fetch(`${srv.url}${path}`, { redirect: 'manual', ...init });
      texts.push(`${path} ${[...res.headers].join(' ')} ${await res.text()}`);
    };
    await plain('/admin/login');
    await plain('/admin/', { headers: { Cookie: admin.cookie } });
    for (const f of ['admin.js', 'admin.css', 'favicon.svg']) await plain(`/admin/static/${f}`);
    await plain('/admin/login', { method: 'POST', body: 'password=wrong-password-x' });
    for (const path of [
      'session',
      'overview',
      'channels',
      'channel?name=chat.secrets',
      `connections?client=${encodeURIComponent(c.clientId)}`,
      'connections',
      'nope',
    ]) {
      texts.push((await admin.get(path)).text);
    }
    texts.push((await admin.post('publish', { channel: 'chat.secrets', data: 1 })).text);
    texts.push((await admin.post('disconnect', { user: 'nobody' })).text);
    texts.push((await admin.post('publish', {}, { csrf: null })).text);
    for (const text of texts)
      for (const s of secrets) expect(text.includes(s), `${s} in ${text.slice(0, 80)}`).toBe(false);
    // The CSRF token is in the session answer only, and is no cookie.
    expect(texts.filter((t) => t.includes(admin.csrf))).toHaveLength(1);
  });
});

describe('admin page with metrics.enabled off', () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await adminServer({ metrics: { enabled: false, requireApiKey: false } });
  });
  afterAll(() => srv.close());

  it('still charts message rates, while /metrics stays off', async () => {
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(404);
    const admin = await AdminClient.login(srv.url);
    const c = await WsClient.connect(`${srv.wsUrl}?token=${await token('judy')}`);
    try {
      expect((await c.request({ cmd: 'subscribe', channel: 'feed.rates' }))['result']).toBeDefined();
      const stats = srv.server.nodeStats;
      await stats?.tick();
      for (let i = 0; i < 3; i++) await admin.post('publish', { channel: 'feed.rates', data: i });
      await c.waitForCount((f) => f['push'] === 'pub', 3, 'three publications');
      await stats?.tick();
      const latest = (await admin.get('overview')).body.nodes[0].latest;
      expect(latest.published).toBeGreaterThan(0);
      expect(latest.delivered).toBeGreaterThan(0);
      expect(latest.bytesOut).toBeGreaterThan(0);
    } finally {
      await c.close();
    }
  });
});

describe('AdminSessions', () => {
  it('checks the password, signs and expires sessions, revokes them, derives CSRF tokens', () => {
    let now = 1_000_000;
    const s = new AdminSessions({ password: 'pw-0123456789', secret: '', ttlMs: 1000, now: () => now });
    expect(s.checkPassword('pw-0123456789')).toBe(true);
    expect(s.checkPassword('pw-012345678')).toBe(false);
    expect(s.checkPassword('')).toBe(false);
    const { value, session } = s.issue();
    expect(s.verify(value)).toEqual(session);
    expect(s.checkCsrf(session, s.csrfToken(session))).toBe(true);
    expect(s.checkCsrf(session, undefined)).toBe(false);
    expect(s.checkCsrf(session, s.csrfToken(s.issue().session))).toBe(false);
    now += 1000;
    expect(s.verify(value)).toBeUndefined();
    const second = s.issue();
    s.revoke(second.session);
    expect(s.verify(second.value)).toBeUndefined();
    // A random key per process: another instance refuses the cookie.
    const other = new AdminSessions({ password: 'pw-0123456789', secret: '', now: () => now });
    expect(other.verify(s.issue().value)).toBeUndefined();
    for (const bad of [undefined, '', 'a.b', 'a.b.c.d', 'x'.repeat(300)]) expect(s.verify(bad)).toBeUndefined();
  });

  it('reads its cookie among others', () => {
    expect(readCookie('a=1; herald_admin=v.w.x; b=2', 'herald_admin')).toBe('v.w.x');
    expect(readCookie('herald_adminx=1', 'herald_admin')).toBeUndefined();
    expect(readCookie(undefined, 'herald_admin')).toBeUndefined();
  });
});

describe('sameSite', () => {
  const req = (headers: Record<string, string>): IncomingMessage => ({ headers }) as unknown as IncomingMessage;
  it('passes requests from the page itself or without browser headers, refuses other sites', () => {
    expect(sameSite(req({ host: 'h:8080' }))).toBe(true);
    expect(sameSite(req({ host: 'h:8080', origin: 'http://h:8080', 'sec-fetch-site': 'same-origin' }))).toBe(true);
    expect(sameSite(req({ host: 'h', origin: 'https://h:443' }))).toBe(true);
    expect(sameSite(req({ host: 'h:8080', origin: 'null', 'sec-fetch-site': 'same-origin' }))).toBe(true);
    expect(
      sameSite(req({ host: 'internal:8080', 'x-forwarded-host': 'admin.example', origin: 'https://admin.example' })),
    ).toBe(true);
    expect(sameSite(req({ host: 'h:8080', origin: 'http://evil:8080' }))).toBe(false);
    expect(sameSite(req({ host: 'h:8080', origin: 'not a url' }))).toBe(false);
    expect(sameSite(req({ host: 'h:8080', origin: 'null', 'sec-fetch-site': 'cross-site' }))).toBe(false);
    expect(sameSite(req({ host: 'h:8080', 'sec-fetch-site': 'same-site' }))).toBe(false);
    expect(sameSite(req({ host: 'h:8080', 'sec-fetch-site': 'none' }))).toBe(true);
  });
});
