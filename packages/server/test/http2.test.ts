/**
 * HTTP/2: over TLS with ALPN (h2, falling back to HTTP/1.1 and WebSocket on the same port) and
 * cleartext h2c by prior knowledge beside HTTP/1.1. Clients: Node's `http2` client, curl, fetch, ws.
 */
import { spawnSync } from 'node:child_process';
import type http2 from 'node:http2';
import { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import https from 'node:https';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, resolveConfig } from '../src/config/index.js';
import {
  Child,
  findProgram,
  Inbox,
  needProgram,
  selfSignedCert,
  SseParser,
  tempDir,
  until,
  withTimeout,
  type SseEvent,
} from '@herald/test-support';
import { api, API_KEY, connectH2, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { RawConnection } from './support/raw-http.js';

interface H2Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function h2Request(session: ClientHttp2Session, method: string, path: string, body?: unknown): Promise<H2Response> {
  return withTimeout(
    new Promise<H2Response>((resolve, reject) => {
      const headers: http2.OutgoingHttpHeaders = { ':method': method, ':path': path };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['authorization'] = `apikey ${API_KEY}`;
      }
      const req = session.request(headers);
      let status = 0;
      let resHeaders: IncomingHttpHeaders = {};
      let text = '';
      req.setEncoding('utf8');
      req.on('response', (h) => {
        status = Number(h[':status']);
        resHeaders = h;
      });
      req.on('data', (chunk: string) => (text += chunk));
      req.on('end', () => resolve({ status, headers: resHeaders, body: text }));
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    }),
    5000,
    `${method} ${path} over HTTP/2`,
  );
}

/** An SSE request on an HTTP/2 session: its events as they arrive, and its response headers. */
function h2Sse(session: ClientHttp2Session, path: string) {
  const events = new Inbox<SseEvent>();
  const parser = new SseParser((e) => events.push(e));
  const stream = session.request({ ':path': path, accept: 'text/event-stream' });
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => parser.feed(chunk));
  stream.on('error', () => undefined);
  const headers = withTimeout(
    new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve)),
    5000,
    `response headers of ${path}`,
  );
  const ended = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return { stream, events, headers, ended };
}

function closeH2(session: ClientHttp2Session): Promise<void> {
  return withTimeout(new Promise<void>((resolve) => session.close(() => resolve())), 5000, 'HTTP/2 session close');
}

const dir = tempDir('h2');
const tls = selfSignedCert(dir.path);
afterAll(() => dir.remove());

describe('HTTP/2 over TLS (ALPN h2 + http/1.1)', () => {
  let ts: TestServer;
  let base: string;
  let connections = 0;

  beforeAll(async () => {
    ts = await startServer({ tls: { cert: tls.cert, key: tls.key }, http: { heartbeatInterval: 30_000 } });
    ts.server.httpServer?.on('connection', () => connections++);
    base = `https://127.0.0.1:${ts.server.address?.port}`;
  });
  afterAll(() => ts.close());

  it('carries 20 concurrent SSE streams and the publishes on ONE connection', async () => {
    const before = connections;
    const session = await connectH2(base, { ca: tls.pem });
    expect(session.alpnProtocol).toBe('h2');
    const streams = Array.from({ length: 20 }, (_, i) => h2Sse(session, `/sse?channel=h2tls.c${i}`));
    for (const [i, s] of streams.entries()) {
      const h = await s.headers;
      expect(h[':status']).toBe(200);
      expect(h['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(h['x-accel-buffering']).toBe('no');
      expect(h['connection']).toBeUndefined();
      await s.events.waitFor((e) => e.event === 'subscribed', `subscribed on stream ${i}`);
    }
    await until(() => ts.server.connectionsByTransport()['sse'] === 20, 'the server holds 20 SSE sessions');
    // Publish to each channel through the server API, on the same HTTP/2 connection.
    const published = await Promise.all(
      streams.map((_, i) => h2Request(session, 'POST', '/api/publish', { channel: `h2tls.c${i}`, data: { n: i } })),
    );
    for (const r of published) expect(r.status).toBe(200);
    for (const [i, s] of streams.entries()) {
      const e = await s.events.waitFor((x) => x.event === 'message', `publication on stream ${i}`);
      expect(JSON.parse(e.data)).toMatchObject({
        stream: `h2tls.c${i}`,
        channel: `h2tls.c${i}`,
        offset: 1,
        data: { n: i },
      });
      expect(e.id).toBe(`h2tls.c${i};${JSON.parse(e.data).epoch};1`);
    }
    expect(connections - before).toBe(1);
    // The client goes away with its streams open (a closed tab): the server frees every session.
    const closed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    session.destroy();
    await withTimeout(closed, 5000, 'client session destroyed');
    await until(() => ts.server.hub.sessions.size === 0, 'every SSE session is freed after the connection closed');
  });

  it('serves /stream, /poll, /send and the API over HTTP/2', async () => {
    const session = await connectH2(base, { ca: tls.pem });
    const stream = session.request({ ':path': '/stream?channel=h2tls.nd' });
    stream.setEncoding('utf8');
    const got = new Inbox<Record<string, unknown>>();
    let partial = '';
    stream.on('data', (chunk: string) => {
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf('\n')) !== -1) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        if (line.trim() !== '') got.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    const connected = await got.waitFor((f) => f['push'] === 'connected', 'connected line');
    await got.waitFor((f) => f['push'] === 'subscribed', 'subscribed line');
    // /send on the session of that stream: publish is not allowed to clients by default, presence
    // of a reply is what matters; subscribe adds a stream to the running response.
    const send = await new Promise<H2Response>((resolve, reject) => {
      const req = session.request({
        ':method': 'POST',
        ':path': '/send',
        'x-herald-session': String(connected['session']),
        'content-type': 'application/x-ndjson',
      });
      let text = '';
      let status = 0;
      req.setEncoding('utf8');
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: string) => (text += c));
      req.on('end', () => resolve({ status, headers: {}, body: text }));
      req.on('error', reject);
      req.end(JSON.stringify({ id: 1, cmd: 'subscribe', channel: 'h2tls.nd2' }));
    });
    expect(send.status).toBe(200);
    expect(JSON.parse(send.body.trim())).toMatchObject({ id: 1 });
    await h2Request(session, 'POST', '/api/publish', { channel: 'h2tls.nd2', data: 'via-send' });
    const pub = await got.waitFor((f) => f['push'] === 'pub', 'pub line');
    expect(pub).toMatchObject({ stream: 'h2tls.nd2', data: 'via-send' });

    // Long-poll: the first poll answers at once with the position, the next one waits for a publish.
    const first = await h2Request(session, 'GET', '/poll?channel=h2tls.poll');
    expect(first.status).toBe(200);
    expect(first.headers['content-length']).toBe(String(Buffer.byteLength(first.body)));
    const cursor = (JSON.parse(first.body) as { cursor: string }).cursor;
    const held = h2Request(session, 'GET', `/poll?channel=h2tls.poll&cursor=${encodeURIComponent(cursor)}`);
    await until(() => ts.server.connectionsByTransport()['long-poll'] === 1, 'the poll is held');
    await h2Request(session, 'POST', '/api/publish', { channel: 'h2tls.poll', data: 'polled' });
    const second = JSON.parse((await held).body) as { publications: Array<{ data: unknown }> };
    expect(second.publications.map((p) => p.data)).toEqual(['polled']);

    expect((await h2Request(session, 'POST', '/api/info', {})).status).toBe(200);
    expect(ts.server.connectionsByTransport()['http-stream']).toBe(1);
    stream.close();
    await closeH2(session);
  });

  it('answers GET /ws over HTTP/2 with 426 (no Upgrade header there) and keeps serving', async () => {
    const session = await connectH2(base, { ca: tls.pem });
    const r = await h2Request(session, 'GET', '/ws');
    expect(r.status).toBe(426);
    expect(r.headers['upgrade']).toBeUndefined();
    expect((await h2Request(session, 'GET', '/health')).status).toBe(200);
    await closeH2(session);
  });

  it('keeps HTTP/1.1 and WebSocket on the same TLS port', async () => {
    // https.request offers no ALPN: the server falls back to HTTP/1.1.
    const agent = new https.Agent({ ca: tls.pem, keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      withTimeout(
        new Promise<{ status: number; version: string; body: string }>((resolve, reject) => {
          https
            .get(`${base}${path}`, { agent }, (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, version: res.httpVersion, body }));
            })
            .on('error', reject);
        }),
        5000,
        `GET ${path} over HTTP/1.1 + TLS`,
      );
    const before = connections;
    const a = await get('/poll?channel=h2tls.h1');
    const b = await get(`/poll?channel=h2tls.h1&timeout=0`);
    expect([a.status, a.version, b.status, b.version]).toEqual([200, '1.1', 200, '1.1']);
    expect(connections - before).toBe(1); // keep-alive over TLS
    agent.destroy();

    const ws = await WsClient.connect(`wss://127.0.0.1:${ts.server.address?.port}/ws`, { ca: tls.pem });
    await ws.request({ cmd: 'subscribe', channel: 'h2tls.ws' });
    const session = await connectH2(base, { ca: tls.pem });
    await h2Request(session, 'POST', '/api/publish', { channel: 'h2tls.ws', data: 'to-ws' });
    const pub = await ws.waitFor((f) => f['push'] === 'pub', 'pub over wss');
    expect(pub['data']).toBe('to-ws');
    await ws.close();
    await closeH2(session);
  });

  it('streams SSE over HTTP/1.1 + TLS from a socket taken from node:http, never written to directly', async () => {
    const events: string[] = [];
    const req = https.get(`${base}/sse?channel=h2tls.sse`, { ca: tls.pem, agent: false }, (res) => {
      expect(res.httpVersion).toBe('1.1');
      expect(res.headers['connection']).toBe('close');
      res.setEncoding('utf8');
      res.on('data', (c: string) => events.push(c));
    });
    try {
      await until(() => events.join('').includes('event: subscribed'), 'subscribed over HTTP/1.1 + TLS');
      const client = /"client":"([^"]+)"/.exec(events.join(''))![1]!;
      const t = ts.server.hub.sessions.get(client)?.transport as { socket?: unknown; fd?: number } | undefined;
      expect(t?.socket).toBeDefined(); // detached: the stream holds the TLS socket itself
      expect(t?.fd).toBe(-1); // a TLS socket's descriptor carries encrypted records
      const session = await connectH2(base, { ca: tls.pem });
      await h2Request(session, 'POST', '/api/publish', { channel: 'h2tls.sse', data: 'over-tls' });
      await closeH2(session);
      await until(() => events.join('').includes('"data":"over-tls"'), 'the publication over HTTP/1.1 + TLS');
    } finally {
      req.destroy();
    }
  });
});

describe('HTTP/2 idle sessions', () => {
  it('closes a session idle for http.keepAliveTimeout, but not one with an open stream', async () => {
    const ts = await startServer({
      tls: { cert: tls.cert, key: tls.key },
      http: { keepAliveTimeout: 300, heartbeatInterval: 30_000 },
    });
    try {
      const base = `https://127.0.0.1:${ts.server.address?.port}`;
      const busy = await connectH2(base, { ca: tls.pem });
      const sse = h2Sse(busy, '/sse?channel=h2idle');
      await sse.events.waitFor((e) => e.event === 'subscribed', 'subscribed');
      // Opened after `busy` went quiet, so its idle timer fires after busy's did.
      const idle = await connectH2(base, { ca: tls.pem });
      expect((await h2Request(idle, 'GET', '/health')).status).toBe(200);
      await withTimeout(
        new Promise<void>((resolve) => idle.once('close', () => resolve())),
        3000,
        'the idle session to be closed',
      );
      expect(busy.closed || busy.destroyed).toBe(false);
      await publishOver(busy, 'h2idle');
      await sse.events.waitFor((e) => e.event === 'message', 'a publication on the busy session');
      busy.destroy();
    } finally {
      await ts.close();
    }
  });
});

describe('HTTP/2 flow control', () => {
  it('disconnects a stream that stops reading, without harming the other streams of its connection', async () => {
    const ts = await startServer({ http: { h2c: true, heartbeatInterval: 30_000 }, limits: { maxQueueBytes: 65_536 } });
    try {
      const session = await connectH2(ts.url);
      const slow = h2Sse(session, '/sse?channel=h2slow.a');
      const fast = h2Sse(session, '/sse?channel=h2slow.b');
      await slow.events.waitFor((e) => e.event === 'subscribed', 'slow subscribed');
      await fast.events.waitFor((e) => e.event === 'subscribed', 'fast subscribed');
      slow.stream.pause(); // stops reading: its HTTP/2 window fills, the server queues, then gives up
      const big = 'x'.repeat(8000);
      for (let i = 0; i < 40 && ts.server.metrics.value('herald_slow_disconnects_total') === 0; i++) {
        expect((await api(ts.url, 'publish', { channel: 'h2slow.a', data: big })).status).toBe(200);
      }
      await until(
        () => ts.server.metrics.value('herald_slow_disconnects_total') === 1,
        'the slow stream is disconnected',
      );
      expect(ts.server.connectionsByTransport()['sse']).toBe(1);
      await publishOver(session, 'h2slow.b');
      const e = await fast.events.waitFor((x) => x.event === 'message', 'a publication on the other stream');
      expect(JSON.parse(e.data)).toMatchObject({ channel: 'h2slow.b', offset: 1 });
      session.destroy();
    } finally {
      await ts.close();
    }
  });
});

async function publishOver(session: ClientHttp2Session, channel: string): Promise<void> {
  expect((await h2Request(session, 'POST', '/api/publish', { channel, data: 1 })).status).toBe(200);
}

describe('HTTP/2 shutdown', () => {
  it('ends open HTTP/2 streams with a disconnect and closes the sessions promptly', async () => {
    const ts = await startServer({
      tls: { cert: tls.cert, key: tls.key },
      shutdown: { timeout: 5000, reconnectJitter: 0 },
    });
    const session = await connectH2(`https://127.0.0.1:${ts.server.address?.port}`, { ca: tls.pem });
    const sse = h2Sse(session, '/sse?channel=h2down');
    await sse.events.waitFor((e) => e.event === 'subscribed', 'subscribed');
    const sessionClosed = new Promise<void>((resolve) => session.once('close', () => resolve()));
    const started = Date.now();
    await withTimeout(ts.close(), 4000, 'server close with an open HTTP/2 session');
    expect(Date.now() - started).toBeLessThan(4000);
    const d = await sse.events.waitFor((e) => e.event === 'disconnect', 'disconnect event');
    expect(JSON.parse(d.data)).toMatchObject({ push: 'disconnect', reconnect: true });
    await withTimeout(sse.ended, 2000, 'the SSE stream to end');
    await withTimeout(sessionClosed, 2000, 'the client session to close (GOAWAY)');
  });
});

const curl = findProgram('curl');
const curlH2 = curl !== undefined && /\bHTTP2\b/.test(spawnSync(curl, ['--version'], { encoding: 'utf8' }).stdout);
const curlNeed = needProgram(curlH2 ? curl : undefined, 'curl with HTTP/2', 'apt-get install -y curl');

describe('cleartext h2c (prior knowledge) beside HTTP/1.1', () => {
  let ts: TestServer;
  beforeAll(async () => {
    ts = await startServer({ http: { h2c: true, heartbeatInterval: 30_000 } });
  });
  afterAll(() => ts.close());

  it.skipIf(curlNeed.mode === 'skip')(
    curlNeed.title('curl --http2-prior-knowledge -N receives an SSE event'),
    async () => {
      if (curlNeed.mode === 'fail') throw new Error(curlNeed.missing);
      const c = new Child(curl as string, ['-sSN', '-i', '--http2-prior-knowledge', `${ts.url}/sse?channel=h2c.news`]);
      try {
        const status = await c.line((l) => l.startsWith('HTTP/'), 'the status line');
        expect(status.trim()).toBe('HTTP/2 200');
        await c.line((l) => l === 'event: subscribed', 'the subscribed event');
        const res = await fetch(`${ts.url}/api/publish`, {
          method: 'POST',
          headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ channel: 'h2c.news', data: { hello: 'h2c' } }),
        });
        expect(res.status).toBe(200);
        const data = await c.line((l) => l.startsWith('data: {"stream":"h2c.news","channel"'), 'the publication');
        expect(JSON.parse(data.slice(6))).toMatchObject({ channel: 'h2c.news', offset: 1, data: { hello: 'h2c' } });
      } finally {
        await c.stop();
      }
    },
  );

  it('publishes over h2c with the Node http2 client, and HTTP/1.1 + WebSocket share the port', async () => {
    let connections = 0;
    ts.server.httpServer?.on('connection', () => connections++);
    const ws = await WsClient.connect(ts.wsUrl);
    await ws.request({ cmd: 'subscribe', channel: 'h2c.mixed' });
    const session = await connectH2(ts.url);
    const pubs = [];
    for (let i = 0; i < 5; i++)
      pubs.push(await h2Request(session, 'POST', '/api/publish', { channel: 'h2c.mixed', data: i }));
    expect(pubs.map((p) => p.status)).toEqual([200, 200, 200, 200, 200]);
    // HTTP/1.1 with a body, twice on one keep-alive connection.
    for (const data of [5, 6]) {
      const r = await fetch(`${ts.url}/api/publish`, {
        method: 'POST',
        headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ channel: 'h2c.mixed', data }),
      });
      expect(r.status).toBe(200);
    }
    const got = await ws.waitForCount((f) => f['push'] === 'pub', 7, 'seven pubs over ws');
    expect(got.map((f) => f['data'])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(connections).toBe(3); // ws, h2c, and one keep-alive HTTP/1.1 connection
    await ws.close();
    await closeH2(session);
  });

  it('streams SSE over HTTP/1.1 on the h2c port from a socket taken from node:http', async () => {
    const c = new RawConnection(ts.server.address!.port);
    try {
      c.socket.write('GET /sse?channel=h2c.h1 HTTP/1.1\r\nHost: t\r\n\r\n');
      await c.until((t) => t.includes('event: subscribed'), 'subscribed over HTTP/1.1 on the h2c port');
      expect(c.text).toMatch(/\r\nconnection: close\r\n/i);
      const client = /"client":"([^"]+)"/.exec(c.text)![1]!;
      const t = ts.server.hub.sessions.get(client)?.transport as { socket?: unknown; fd?: number } | undefined;
      expect(t?.socket).toBeDefined();
      expect(t?.fd).toBeGreaterThan(2);
      const session = await connectH2(ts.url);
      await h2Request(session, 'POST', '/api/publish', { channel: 'h2c.h1', data: 'to-h1' });
      await closeH2(session);
      await c.until((text) => text.includes('"data":"to-h1"'), 'the publication over HTTP/1.1');
    } finally {
      c.socket.destroy();
    }
  });
});

describe('config: tls and http.h2c', () => {
  it('reads tls.cert/tls.key (files) and http.h2c from a file, the environment and resolveConfig', async () => {
    const env = { HERALD_TLS_CERT: tls.cert, HERALD_TLS_KEY: tls.key, HERALD_HTTP_H2C: 'true' };
    const loaded = await loadConfig({ env });
    expect(loaded.config.tls).toEqual({ cert: tls.cert, key: tls.key });
    expect(loaded.warnings.join('\n')).toMatch(/http\.h2c is ignored with TLS/);
    expect(resolveConfig({ http: { h2c: 'yes' } }).config.http.h2c).toBe(true);
    expect(resolveConfig({}).config.tls).toEqual({ cert: '', key: '' });
  });

  it('refuses half a TLS setup, missing files, non-PEM files and a key that is not the certificate’s', () => {
    const issues = (input: Parameters<typeof resolveConfig>[0]): string => {
      try {
        resolveConfig(input);
      } catch (err) {
        if (err instanceof ConfigError) return err.message;
        throw err;
      }
      return '';
    };
    expect(issues({ tls: { cert: tls.cert } })).toMatch(/^tls\.key: is needed too: tls\.cert is set/);
    expect(issues({ tls: { cert: join(dir.path, 'nope.pem'), key: tls.key } })).toMatch(/tls\.cert: .*does not exist/);
    expect(issues({ tls: { cert: tls.key, key: tls.key } })).toMatch(/tls\.cert: .*holds no PEM certificate/);
    expect(issues({ tls: { cert: tls.cert, key: tls.cert } })).toMatch(/tls\.key: .*holds no PEM private key/);
    const other = tempDir('h2-other');
    try {
      const second = selfSignedCert(other.path);
      expect(issues({ tls: { cert: tls.cert, key: second.key } })).toMatch(
        /tls\.key: is not the private key of the certificate/,
      );
      writeFileSync(join(other.path, 'garbage.pem'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      expect(issues({ tls: { cert: join(other.path, 'garbage.pem'), key: tls.key } })).toMatch(/cannot be parsed/);
    } finally {
      other.remove();
    }
    expect(issues({ http: { h2c: 'maybe' } })).toMatch(/^http\.h2c: must be true or false/);
  });
});
