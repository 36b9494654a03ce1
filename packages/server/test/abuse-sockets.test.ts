/**
 * Abuse suite, sockets (issue 14, sections 3 and 5): what an anonymous client gets by opening
 * connections and saying nothing, stalling a TLS handshake, or never finishing a request. On every
 * listener mode (HTTP/1.1, h2c beside it, TLS with ALPN h2 + http/1.1): such a socket is closed by the
 * server within `http.headersTimeout` of being accepted (awaited, with a timeout that fails the test),
 * counts against `limits.maxConnections` until then, never gets HTTP/1 bytes on an unfinished TLS
 * handshake; sockets past the port's limit are closed at accept; honest long-lived connections
 * outlive those timeouts; and the process keeps serving.
 */
import http2, { type ClientHttp2Session } from 'node:http2';
import https from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { socketLimit } from '../src/http/listener.js';
import { resolveConfig } from '../src/config/load-config.js';
import { ConfigError } from '../src/config/schema.js';
import { Inbox, selfSignedCert, SseParser, tempDir, until, withTimeout, type SseEvent } from '@herald/test-support';
import {
  api,
  refusedUpgrade,
  startServer,
  WsClient,
  type TestConfigInput,
  type TestServer,
} from '@herald/test-support/server';
import { HonestSubscribers, duringAttack, h2Open } from './support/abuse.js';

const dir = tempDir('abuse-sockets');
const cert = selfSignedCert(dir.path);
afterAll(() => dir.remove());

type Mode = 'http' | 'h2c' | 'https';
const MODES: readonly Mode[] = ['http', 'h2c', 'https'];

/** Short enough for a quick suite, long enough that an honest client's request head is never late. */
const HEADERS_TIMEOUT = 300;

let srv: TestServer | undefined;
const opened: Socket[] = [];
afterEach(async () => {
  for (const s of opened.splice(0)) s.destroy();
  await srv?.close();
  srv = undefined;
});

function modeConfig(mode: Mode, over: TestConfigInput = {}): TestConfigInput {
  return {
    ...over,
    http: { headersTimeout: HEADERS_TIMEOUT, ...(over.http ?? {}), h2c: mode === 'h2c' },
    ...(mode === 'https' ? { tls: { cert: cert.cert, key: cert.key } } : {}),
  };
}

async function start(mode: Mode, over: TestConfigInput = {}): Promise<TestServer> {
  srv = await startServer(modeConfig(mode, over));
  return srv;
}

function portOf(s: TestServer): number {
  return s.server.address?.port ?? 0;
}

/** The `sockets` figures of `GET /api/info`. */
interface SocketStats {
  readonly open: number;
  readonly pending: number;
  readonly refused: number;
  readonly timedOut: number;
}

function socketStats(s: TestServer): SocketStats {
  return s.server.info()['sockets'] as SocketStats;
}

/** A TCP connection that sends `first` (if any) and then nothing; resolves once connected. */
function tcp(port: number, first?: string | Buffer, allowHalfOpen = false): Promise<Socket> {
  return withTimeout(
    new Promise<Socket>((resolve, reject) => {
      const s = netConnect({ host: '127.0.0.1', port, allowHalfOpen }, () => {
        if (first !== undefined) s.write(first);
        resolve(s);
      });
      opened.push(s);
      s.on('error', () => undefined);
      s.once('error', reject);
    }),
    5000,
    'a TCP connection',
  );
}

/** A TLS connection offering `alpn` that completes its handshake and then says nothing. */
function tlsSilent(port: number, alpn: string): Promise<Socket> {
  return withTimeout(
    new Promise<Socket>((resolve, reject) => {
      const s = tlsConnect(
        { host: '127.0.0.1', port, ALPNProtocols: [alpn], ca: cert.pem, servername: 'localhost' },
        () => resolve(s),
      );
      opened.push(s);
      s.on('error', () => undefined);
      s.once('error', reject);
    }),
    5000,
    'a TLS handshake',
  );
}

/** What the server sent on `socket`, and when (ms after `since`) it closed; fails after `ms`. */
function closedByServer(socket: Socket, since: number, ms: number): Promise<{ afterMs: number; received: string }> {
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  return withTimeout(
    new Promise((resolve) => {
      const done = (): void => resolve({ afterMs: Date.now() - since, received });
      if (socket.destroyed) done();
      else socket.once('close', done);
    }),
    ms,
    'the server to close the connection',
  );
}

/** The first bytes of a TLS ClientHello record, cut short: a handshake that starts and stalls. */
const STALLED_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x00, 0xf0, 0x01, 0x00, 0x00, 0xec, 0x03, 0x03]);

/** The server still answers: `GET /health` is 200 (over TLS on a TLS port). */
async function healthy(s: TestServer): Promise<void> {
  if (s.server.config.tls.cert === '') {
    expect((await api(s.url, 'info', {})).status).toBe(200);
    return;
  }
  const status = await withTimeout(
    new Promise<number>((resolve, reject) => {
      const req = https.get(`https://127.0.0.1:${portOf(s)}/health`, { ca: cert.pem, agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
    }),
    5000,
    'GET /health over TLS',
  );
  expect(status).toBe(200);
}

describe.each(MODES)('silent and stalled connections (%s)', (mode) => {
  it('closes connections that send nothing within http.headersTimeout of being accepted', async () => {
    const s = await start(mode);
    const port = portOf(s);
    const since = Date.now();
    const sockets = await Promise.all(Array.from({ length: 20 }, () => tcp(port)));
    const closes = await Promise.all(sockets.map((c) => closedByServer(c, since, 5000)));
    for (const c of closes) {
      expect(c.afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
      expect(c.received).toBe('');
    }
    await until(() => socketStats(s).pending === 0, 'no socket pending');
    expect(socketStats(s).timedOut).toBeGreaterThanOrEqual(20);
    await healthy(s);
  });

  it('closes a connection that sent part of a request head, counting it until then', async () => {
    const s = await start(mode);
    const port = portOf(s);
    const since = Date.now();
    // HTTP/1 headers that never end, half an HTTP/2 preface, or on the TLS port half a ClientHello.
    const firsts =
      mode === 'https'
        ? [STALLED_CLIENT_HELLO]
        : ['GET /sse?channel=abuse.half HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n', h2Open().subarray(0, 10)];
    const halves = await Promise.all(firsts.map((first) => tcp(port, first)));
    await until(() => socketStats(s).pending >= halves.length, 'each counted as pending');
    for (const c of halves) {
      const r = await closedByServer(c, since, 5000);
      expect(r.afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
      expect(r.received).not.toContain('HTTP/1.1');
    }
    await healthy(s);
  });
});

describe('TLS handshakes', () => {
  it('destroys handshakes that stall, without writing HTTP/1 bytes, even once the client has left', async () => {
    const s = await start('https');
    const port = portOf(s);
    const baseline = socketStats(s).open;
    const since = Date.now();
    const stalled = await Promise.all(Array.from({ length: 50 }, () => tcp(port, STALLED_CLIENT_HELLO)));
    const closes = await Promise.all(stalled.map((c) => closedByServer(c, since, 5000)));
    for (const c of closes) {
      expect(c.received).not.toContain('HTTP/1.1');
      expect(c.afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
    }
    await until(() => socketStats(s).open <= baseline, 'every stalled socket closed on the server');

    // Clients that leave mid-handshake: their sockets go at once, not after a timeout.
    const leaving = await Promise.all(Array.from({ length: 50 }, () => tcp(port, STALLED_CLIENT_HELLO)));
    for (const c of leaving) c.destroy();
    await until(() => socketStats(s).open <= baseline, 'every abandoned socket closed on the server', 2000);
    await healthy(s);
  });

  it.each(['http/1.1', 'h2'])('closes a connection silent after its handshake (ALPN %s)', async (alpn) => {
    const s = await start('https');
    const since = Date.now();
    const c = await tlsSilent(portOf(s), alpn);
    const r = await closedByServer(c, since, 5000);
    expect(r.afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT - 50);
    expect(r.received).not.toContain('HTTP/1.1');
    await healthy(s);
  });
});

/** A WebSocket subscriber (TLS when `mode` is https). */
async function wsSubscriber(s: TestServer, mode: Mode, channel: string): Promise<WsClient> {
  const url = mode === 'https' ? `wss://127.0.0.1:${portOf(s)}/ws` : s.wsUrl;
  const c = await WsClient.connect(url, mode === 'https' ? { ca: cert.pem } : {});
  const r = await c.request({ cmd: 'subscribe', channel });
  expect(r['result']).toBeDefined();
  return c;
}

/** An SSE subscriber over HTTP/2 (h2c by prior knowledge, or TLS). */
async function h2SseSubscriber(
  s: TestServer,
  mode: 'h2c' | 'https',
  channel: string,
): Promise<{ session: ClientHttp2Session; events: Inbox<SseEvent> }> {
  const scheme = mode === 'https' ? 'https' : 'http';
  const session = http2.connect(`${scheme}://127.0.0.1:${portOf(s)}`, mode === 'https' ? { ca: cert.pem } : {});
  session.on('error', () => undefined);
  const events = new Inbox<SseEvent>();
  const parser = new SseParser((e) => events.push(e));
  const stream = session.request({ ':path': `/sse?channel=${channel}`, accept: 'text/event-stream' });
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => parser.feed(chunk));
  stream.on('error', () => undefined);
  await withTimeout(
    new Promise((resolve) => stream.once('response', resolve)),
    5000,
    'the HTTP/2 SSE response headers',
  );
  return { session, events };
}

describe.each(MODES)('honest connections (%s)', (mode) => {
  it('outlive http.headersTimeout and keep receiving', async () => {
    const s = await start(mode);
    const ws = await wsSubscriber(s, mode, 'honest.long');
    const h2 = mode === 'http' ? undefined : await h2SseSubscriber(s, mode, 'honest.long');
    // Past every deadline a pending socket would have (the only way to see "not cut" is to wait).
    await new Promise((r) => setTimeout(r, HEADERS_TIMEOUT * 3));
    await s.server.hub.publish('honest.long', { n: 1 });
    await ws.waitFor((f) => f['push'] === 'pub' && f['stream'] === 'honest.long', 'the publication over WebSocket');
    expect(ws.closeCode).toBeUndefined();
    if (h2 !== undefined) {
      await h2.events.waitFor((e) => e.data.includes('"n":1'), 'the publication over HTTP/2 SSE');
      expect(h2.session.closed).toBe(false);
      h2.session.destroy();
    }
    await ws.close();
  });
});

describe('limits.maxConnections and sockets', () => {
  it('counts a half-open request against the limit until http.headersTimeout closes it', async () => {
    const s = await start('http', { limits: { maxConnections: 2 }, http: { headersTimeout: 600 } });
    const port = portOf(s);
    const since = Date.now();
    const halves = await Promise.all(
      [1, 2].map(() => tcp(port, 'GET /sse?channel=abuse.half HTTP/1.1\r\nHost: localhost\r\n')),
    );
    await until(() => socketStats(s).pending === 2, 'both half-open requests counted');
    const refused = await refusedUpgrade(s.wsUrl);
    expect({ status: refused.status, code: refused.body['error']?.['code'] }).toEqual({
      status: 503,
      code: 'HERALD_ERR_CONNECTION_LIMIT',
    });

    for (const h of halves) await closedByServer(h, since, 5000);
    const c = await WsClient.connect(s.wsUrl);
    expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
    await c.close();
  });

  it(`closes sockets past socketLimit(maxConnections) as they are accepted; the rest keep working`, async () => {
    // Long timeouts: what closes the extra socket must be the limit, not a deadline.
    const s = await start('http', { limits: { maxConnections: 2 }, http: { headersTimeout: 20_000 } });
    const port = portOf(s);
    const limit = socketLimit(2);
    const held = await Promise.all(Array.from({ length: limit }, () => tcp(port)));
    await until(() => socketStats(s).open === limit, `the server to hold ${limit} sockets`);
    const since = Date.now();
    const extra = await tcp(port);
    const r = await closedByServer(extra, since, 2000);
    expect(r.received).toBe('');
    expect(socketStats(s).refused).toBeGreaterThanOrEqual(1);

    for (const h of held) h.destroy();
    await until(() => socketStats(s).open === 0, 'the held sockets to close');
    const c = await WsClient.connect(s.wsUrl);
    expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
    await c.close();
  });

  it('the socket limit leaves room above maxConnections for the API and refusals', () => {
    expect(socketLimit(2)).toBe(66);
    expect(socketLimit(100_000)).toBe(110_000);
  });
});

/** An HTTP/1.1 connection (over TLS with ALPN http/1.1 on the TLS port) that has sent `first`. */
async function h1Connection(s: TestServer, mode: Mode, first: string, allowHalfOpen = false): Promise<Socket> {
  if (mode !== 'https') return tcp(portOf(s), first, allowHalfOpen);
  const c = await tlsSilent(portOf(s), 'http/1.1');
  c.write(first);
  return c;
}

describe.each(MODES)('slow and malformed HTTP/1 requests (%s)', (mode) => {
  it('answers a request whose body is too slow with 408 (http.requestTimeout) and closes it', async () => {
    const s = await start(mode, { http: { headersTimeout: 200, requestTimeout: 600 } });
    const since = Date.now();
    const c = await h1Connection(
      s,
      mode,
      'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Content-Length: 100\r\nAuthorization: apikey test-api-key-0123456789\r\n\r\n{"chan',
    );
    const r = await closedByServer(c, since, 5000);
    expect(r.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.afterMs).toBeGreaterThanOrEqual(550);
    await healthy(s);
  });

  it('answers a malformed request with 400 and destroys the socket, even if the client keeps its side open', async () => {
    const s = await start(mode);
    const baseline = socketStats(s).open;
    const c = await h1Connection(s, mode, 'NOT HTTP AT ALL\r\n\r\n', true);
    const got = await withTimeout(
      new Promise<string>((resolve) => {
        let text = '';
        c.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
          if (text.includes('\r\n\r\n')) resolve(text);
        });
      }),
      5000,
      'the 400 answer',
    );
    expect(got).toMatch(/^HTTP\/1\.1 400 /);
    // The client never ends its side: the server's socket must go anyway.
    await until(() => socketStats(s).open <= baseline, 'the server to destroy its socket');
    await healthy(s);
  });
});

describe('during an attack', () => {
  it('20 honest subscribers receive every publication while 200 silent sockets come and go', async () => {
    const s = await start('http');
    const honest = await HonestSubscribers.start(s, 20);
    const attack = (async () => {
      for (let round = 0; round < 4; round++) {
        const silent = await Promise.all(Array.from({ length: 50 }, () => tcp(portOf(s))));
        await Promise.all(silent.map((c) => closedByServer(c, Date.now(), 5000)));
      }
    })();
    await duringAttack(honest, attack);
    await until(() => socketStats(s).pending === 0, 'no socket pending');
    expect(s.server.hub.sessions.size).toBe(20);
    await honest.close();
  });
});

describe('config', () => {
  it('reads http.headersTimeout and http.requestTimeout, and refuses a requestTimeout below headersTimeout', () => {
    const { config } = resolveConfig({ http: { headersTimeout: '2s', requestTimeout: '1m' } });
    expect(config.http.headersTimeout).toBe(2000);
    expect(config.http.requestTimeout).toBe(60_000);
    expect(() => resolveConfig({ http: { headersTimeout: '20s', requestTimeout: '10s' } })).toThrow(ConfigError);
    expect(() => resolveConfig({ http: { headersTimeout: '20s', requestTimeout: '10s' } })).toThrow(
      /http\.requestTimeout: must be at least http\.headersTimeout/,
    );
  });
});
