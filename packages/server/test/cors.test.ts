/**
 * CORS and the Origin allow-list of the browser-facing transports: an allowed origin is echoed
 * (with credentials when `http.corsCredentials`), `/send` preflights answer 204 with the methods
 * and headers, and a disallowed origin is refused with 403 on /sse, /stream, /poll, /send and the
 * /ws upgrade. Error answers (a refused origin, a wrong path) can be read by any page.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { startServer, WsClient, type TestServer } from '@herald/test-support/server';

const APP = 'https://app.example.com';
const EVIL = 'https://evil.example.com';

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request; for a streaming response, resolves with the headers and whatever came first. */
function request(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Answer> {
  return withTimeout(
    new Promise<Answer>((resolve, reject) => {
      const req = http.request(`${base}${path}`, { method, headers, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        const streaming = /event-stream|ndjson/.test(String(res.headers['content-type'])) && res.statusCode === 200;
        res.on('data', (chunk: string) => {
          text += chunk;
          if (streaming) {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
            req.destroy();
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', () => undefined);
      });
      req.on('error', reject);
      req.end(body);
    }),
    5000,
    `${method} ${path}`,
  );
}

function upgradeStatus(url: string, origin: string): Promise<number> {
  return withTimeout(
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(url, { origin });
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
      });
      ws.on('error', (err) => reject(err));
    }),
    5000,
    `WebSocket upgrade from ${origin}`,
  );
}

describe('CORS with an allow-list and credentials', () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startServer({ allowedOrigins: [APP], http: { corsCredentials: true } });
  });
  afterAll(() => ts.close());

  it.each([
    ['/sse?channel=cors.a', 'GET'],
    ['/stream?channel=cors.a', 'GET'],
    ['/poll?channel=cors.a', 'GET'],
  ])('echoes an allowed origin with credentials on %s', async (path, method) => {
    const r = await request(ts.url, method, path, { Origin: APP });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe(APP);
    expect(r.headers['access-control-allow-credentials']).toBe('true');
    expect(r.headers['vary']).toMatch(/Origin/);
  });

  it('answers /send from an allowed origin with CORS headers, errors included', async () => {
    const r = await request(ts.url, 'POST', '/send', { Origin: APP, 'Content-Type': 'application/x-ndjson' }, '{}');
    expect(r.status).toBe(404); // no session: the browser may read why
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'HERALD_ERR_SESSION_NOT_FOUND' } });
    expect(r.headers['access-control-allow-origin']).toBe(APP);
    expect(r.headers['access-control-allow-credentials']).toBe('true');
  });

  it('answers the preflight of POST /send with 204, the methods and the headers', async () => {
    const r = await request(ts.url, 'OPTIONS', '/send', {
      Origin: APP,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type,x-herald-session',
    });
    expect(r.status).toBe(204);
    expect(r.headers['access-control-allow-origin']).toBe(APP);
    expect(r.headers['access-control-allow-credentials']).toBe('true');
    expect(String(r.headers['access-control-allow-methods']).split(/,\s*/)).toContain('POST');
    const allowed = String(r.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/);
    expect(allowed).toEqual(expect.arrayContaining(['content-type', 'x-herald-session', 'authorization']));
    expect(Number(r.headers['access-control-max-age'])).toBeGreaterThan(0);
  });

  it.each([
    ['GET', '/sse?channel=cors.b'],
    ['GET', '/stream?channel=cors.b'],
    ['GET', '/poll?channel=cors.b'],
    ['POST', '/send'],
    ['OPTIONS', '/send'],
  ])('refuses a disallowed origin: %s %s → 403 the page can read, naming the origin', async (method, path) => {
    const headers: Record<string, string> = { Origin: EVIL };
    if (method === 'OPTIONS') headers['Access-Control-Request-Method'] = 'POST';
    const sessionsBefore = ts.server.metrics.value('herald_connections_total');
    const r = await request(ts.url, method, path, headers, method === 'POST' ? '{}' : undefined);
    expect(r.status).toBe(403);
    if (method === 'OPTIONS') {
      // A refused preflight: the browser does not send the request at all.
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
    } else {
      // The error answer is readable (so the SDK can say "origin not allowed", not just "failed"),
      // without credentials, and holds nothing but the code and message.
      expect(r.headers['access-control-allow-origin']).toBe(EVIL);
      expect(r.headers['access-control-allow-credentials']).toBeUndefined();
      expect(JSON.parse(r.body)).toEqual({
        error: { code: 'HERALD_ERR_PERMISSION_DENIED', message: `origin ${EVIL} is not allowed` },
      });
    }
    expect(ts.server.metrics.value('herald_connections_total')).toBe(sessionsBefore); // no session was opened
  });

  it.each([
    ['/nowhere/sse?channel=a', 'HERALD_ERR_API_NOT_FOUND'],
    ['/sse-typo', 'HERALD_ERR_API_NOT_FOUND'],
  ])('answers a wrong path (%s) with a 404 any page can read', async (path, code) => {
    for (const origin of [APP, EVIL]) {
      const r = await request(ts.url, 'GET', path, { Origin: origin });
      expect(r.status).toBe(404);
      expect(r.headers['access-control-allow-origin']).toBe(origin);
      expect(JSON.parse(r.body)).toMatchObject({ error: { code } });
    }
  });

  it('refuses the /ws upgrade from a disallowed origin with 403, and accepts an allowed one', async () => {
    expect(await upgradeStatus(ts.wsUrl, EVIL)).toBe(403);
    expect(await upgradeStatus(ts.wsUrl, APP)).toBe(101);
  });

  it('serves clients that send no Origin (not a browser) without CORS headers', async () => {
    const r = await request(ts.url, 'GET', '/poll?channel=cors.c', {});
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    const ws = await WsClient.connect(ts.wsUrl);
    await ws.close();
  });
});

describe('CORS with the default allowedOrigins (*) and no credentials', () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startServer();
  });
  afterAll(() => ts.close());

  it('echoes any origin (never *) and sends no Allow-Credentials', async () => {
    const r = await request(ts.url, 'GET', '/poll?channel=cors.any', { Origin: EVIL });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe(EVIL);
    expect(r.headers['access-control-allow-credentials']).toBeUndefined();
    const p = await request(ts.url, 'OPTIONS', '/send', { Origin: EVIL, 'Access-Control-Request-Method': 'POST' });
    expect(p.status).toBe(204);
    expect(p.headers['access-control-allow-credentials']).toBeUndefined();
  });
});
