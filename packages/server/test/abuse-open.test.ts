/**
 * Abuse suite: requests whose connection or stream is gone before their asynchronous open resumes,
 * and pipelined HTTP/1.1 requests. Each attack runs at the frame or byte level while 20 honest
 * WebSocket subscribers must keep receiving every publication, and afterwards the server must hold
 * nothing for the attacker (no session, no stream connection, no poll).
 */
import { createServer, type Server } from 'node:http';
import http2, { type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCert, tempDir, until, withTimeout } from '@herald/test-support';
import { api, API_KEY, connectH2, startServer, type TestServer } from '@herald/test-support/server';
import {
  HonestSubscribers,
  backToBaseline,
  closedOf,
  duringAttack,
  h2Get,
  h2Open,
  h2PostHead,
  h2Reset,
  rawConnect,
} from './support/abuse.js';
import { hmacToken } from './support/tokens.js';

const HONEST = 20;
const SECRET = 'abuse-suite-hmac-secret-0123456789abcdef';

interface SlowHookBackend {
  url: string;
  /** Hook calls received, and answered. */
  received: number;
  answered: number;
  close(): Promise<void>;
}

/** A backend whose connect hook answers after `delayMs`: the open waits that long. */
async function slowHookBackend(delayMs: number): Promise<SlowHookBackend> {
  const backend: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      state.received += 1;
      setTimeout(() => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"allow":true}', () => (state.answered += 1));
      }, delayMs);
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const state: SlowHookBackend = {
    url: `http://127.0.0.1:${(backend.address() as AddressInfo).port}`,
    received: 0,
    answered: 0,
    close: () =>
      new Promise<void>((r) => {
        backend.closeAllConnections();
        backend.close(() => r());
      }),
  };
  return state;
}

/** Connect hook calls a server has completed (whatever their outcome). */
function hookCalls(srv: TestServer): number {
  return ['allowed', 'denied', 'timeout', 'failure'].reduce(
    (n, outcome) => n + srv.server.metrics.value('herald_hook_calls_total', { event: 'connect', outcome }),
    0,
  );
}

/** Opens `path` on `session` and resets the stream after `afterMs`; resolves when it has closed. */
function openThenReset(session: ClientHttp2Session, path: string, afterMs: number): Promise<void> {
  const stream = session.request({ ':path': path });
  stream.on('error', () => undefined);
  stream.resume();
  setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), afterMs);
  return withTimeout(new Promise<void>((r) => stream.once('close', () => r())), 5000, `${path} to close`);
}

const PATHS = [
  '/sse?channel=evil.a',
  '/stream?channel=evil.b',
  '/poll?channel=evil.c',
  '/poll?channel=evil.d&backlog=5',
];

describe('HTTP/2 streams reset before their open resumes (h2c, raw frames)', () => {
  let srv: TestServer;
  let honest: HonestSubscribers;
  beforeAll(async () => {
    srv = await startServer({ http: { h2c: true, heartbeatInterval: 30_000 } });
    honest = await HonestSubscribers.start(srv, HONEST);
  });
  afterAll(async () => {
    await honest.close();
    await srv.close();
  });

  it('HEADERS + RST_STREAM in one write, 2,000 times on 4 connections: no crash, nothing held', async () => {
    const port = srv.server.address?.port as number;
    const attack = async (): Promise<void> => {
      for (let c = 0; c < 4; c++) {
        const socket = await rawConnect(port);
        const frames: Buffer[] = [h2Open()];
        for (let i = 0; i < 500; i++) {
          const id = 1 + 2 * i;
          frames.push(Buffer.concat([h2Get(id, PATHS[i % PATHS.length] as string), h2Reset(id)]));
        }
        socket.write(Buffer.concat(frames));
        await new Promise((r) => setTimeout(r, 50));
        socket.destroy();
        await closedOf(socket);
      }
    };
    await duringAttack(honest, attack());
    await backToBaseline(srv, HONEST);
  });

  it('POST requests (server API, /send) reset before their body came: no crash, nothing held', async () => {
    const port = srv.server.address?.port as number;
    const socket = await rawConnect(port);
    const frames: Buffer[] = [h2Open()];
    const posts = ['/api/publish', '/api/history', '/api/batch', '/send?session=x'];
    for (let i = 0; i < 400; i++) {
      const id = 1 + 2 * i;
      frames.push(h2PostHead(id, posts[i % posts.length] as string, API_KEY), h2Reset(id));
    }
    socket.write(Buffer.concat(frames));
    await honest.publish(1);
    await honest.verify();
    await backToBaseline(srv, HONEST);
    socket.destroy();
  });

  it('one stream reset after every write of the frames: nothing held', async () => {
    const port = srv.server.address?.port as number;
    const socket = await rawConnect(port);
    socket.write(h2Open());
    for (let i = 0; i < 200; i++) {
      const id = 1 + 2 * i;
      socket.write(h2Get(id, PATHS[i % PATHS.length] as string));
      socket.write(h2Reset(id));
    }
    await honest.publish(1);
    await honest.verify();
    await backToBaseline(srv, HONEST);
    socket.destroy();
  });
});

describe('streams closed while a slow connect hook runs', () => {
  let backend: SlowHookBackend;
  let h2c: TestServer;
  let tlsSrv: TestServer;
  let dir: { path: string; remove(): void };
  beforeAll(async () => {
    backend = await slowHookBackend(100);
    dir = tempDir('abuse-tls');
    const cert = selfSignedCert(dir.path);
    const auth = { hmacSecret: SECRET, hooks: { url: backend.url, connect: true } };
    h2c = await startServer({ http: { h2c: true, heartbeatInterval: 30_000 }, auth });
    tlsSrv = await startServer({ tls: { cert: cert.cert, key: cert.key }, http: { heartbeatInterval: 30_000 }, auth });
  });
  afterAll(async () => {
    await h2c.close();
    await tlsSrv.close();
    await backend.close();
    dir.remove();
  });

  it('h2c, anonymous: every transport, closed after 20 ms of a 100 ms open', async () => {
    const session = await connectH2(h2c.url);
    await Promise.all(PATHS.flatMap((p) => [0, 1, 2, 3, 4].map(() => openThenReset(session, p, 20))));
    session.destroy();
    await backToBaseline(h2c, 0);
    // The server still serves: a stream that stays gets its subscription.
    const ok = await connectH2(h2c.url);
    const s = ok.request({ ':path': '/stream?channel=evil.ok' });
    s.setEncoding('utf8');
    let text = '';
    s.on('data', (d: string) => (text += d));
    await until(() => text.includes('"subscribed"'), 'the honest stream to be subscribed');
    ok.destroy();
  });

  it('TLS with a valid token: every transport, closed after 20 ms of a 100 ms open', async () => {
    const token = hmacToken(
      { alg: 'HS256', typ: 'JWT' },
      { sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 },
      SECRET,
    );
    const port = tlsSrv.server.address?.port as number;
    const session = await connectH2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    await Promise.all(PATHS.flatMap((p) => [0, 1, 2].map(() => openThenReset(session, `${p}&token=${token}`, 20))));
    session.destroy();
    await backToBaseline(tlsSrv, 0);
  });

  it('raw HEADERS + RST_STREAM over TLS (ALPN h2) while the hook runs', async () => {
    const port = tlsSrv.server.address?.port as number;
    const socket = await rawConnect(port, { alpn: 'h2' });
    const frames: Buffer[] = [h2Open()];
    for (let i = 0; i < 100; i++) {
      const id = 1 + 2 * i;
      frames.push(h2Get(id, PATHS[i % PATHS.length] as string, 'https'), h2Reset(id));
    }
    // The opens of the tests before may still wait for their hook: start once every call has ended.
    await until(
      () => backend.answered === backend.received && hookCalls(h2c) + hookCalls(tlsSrv) === backend.answered,
      'the hook calls of the tests before to end',
    );
    const before = hookCalls(tlsSrv);
    socket.write(Buffer.concat(frames));
    // Every open resumes once its connect hook call is answered (100 ms each, 32 at a time), to find
    // its stream gone: await all 100 calls, then nothing may be held.
    await until(() => hookCalls(tlsSrv) - before === 100, 'the connect hook to answer all 100 opens');
    await backToBaseline(tlsSrv, 0);
    socket.destroy();
  });
});

describe('HTTP/1.1 pipelining', () => {
  let srv: TestServer;
  let honest: HonestSubscribers;
  beforeAll(async () => {
    srv = await startServer({ http: { heartbeatInterval: 30_000 } });
    honest = await HonestSubscribers.start(srv, HONEST);
    // History for the backlog polls below: 100 publications of ~1 KB.
    for (let i = 0; i < 100; i++) {
      const r = await api(srv.url, 'publish', { channel: 'piped.big', data: 'x'.repeat(1000) });
      expect(r.status).toBe(200);
    }
  });
  afterAll(async () => {
    await honest.close();
    await srv.close();
  });

  it('1,200 pipelined GET /sse on one connection: the connection is closed, nothing held', async () => {
    const socket = await rawConnect(srv.server.address?.port as number);
    const attack = async (): Promise<void> => {
      socket.write('GET /sse?channel=piped.a HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(1200));
      await closedOf(socket, 5000, 'the server to close the pipelining connection');
    };
    await duringAttack(honest, attack());
    await backToBaseline(srv, HONEST);
  });

  it('a few pipelined GET /sse, then the client leaves: nothing held', async () => {
    for (let round = 0; round < 20; round++) {
      const socket = await rawConnect(srv.server.address?.port as number);
      socket.write('GET /sse?channel=piped.b HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(10));
      await until(() => srv.server.sse.connectionCount === 1, 'the first stream to open');
      socket.destroy();
      await backToBaseline(srv, HONEST);
    }
  });

  it('a request pipelined behind a short one is served after it, in order', async () => {
    const socket = await rawConnect(srv.server.address?.port as number);
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n' + 'GET /stream?channel=piped.c HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => text.includes('"subscribed"'), 'the pipelined stream to start');
    expect(text.indexOf('"status":"ok"')).toBeGreaterThan(0);
    expect(text.indexOf('"status":"ok"')).toBeLessThan(text.indexOf('"subscribed"'));
    await api(srv.url, 'publish', { channel: 'piped.c', data: 'after' });
    await until(() => text.includes('"after"'), 'a publication on the pipelined stream');
    socket.destroy();
    await backToBaseline(srv, HONEST);
  });

  it('pipelined GET /poll?backlog=100 by a client that never reads: one answer at a time, released at close', async () => {
    const socket = await rawConnect(srv.server.address?.port as number);
    socket.removeAllListeners('data');
    socket.pause(); // never reads
    const heapBefore = process.memoryUsage().heapUsed;
    const attack = async (): Promise<void> => {
      socket.write('GET /poll?channel=piped.big&backlog=100 HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(16));
      // The answers (each ~100 KB) go out one after another until the kernel's buffers are full;
      // meanwhile the server keeps serving everyone else.
      await new Promise((r) => setTimeout(r, 300));
    };
    await duringAttack(honest, attack());
    expect(srv.server.poll.connectionCount).toBeLessThanOrEqual(1);
    socket.destroy();
    await backToBaseline(srv, HONEST);
    // 16 answers of ~100 KB built at once would be ~1.6 MB of buffers per connection; loose bound.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(64 * 1024 * 1024);

    const flood = await rawConnect(srv.server.address?.port as number);
    flood.pause();
    flood.write('GET /poll?channel=piped.big&backlog=100 HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(1000));
    await closedOf(flood, 5000, 'the server to close a connection pipelining 1,000 polls');
    await backToBaseline(srv, HONEST);
  });
});

describe('HTTP/2 stream of a slow consumer', () => {
  it('is reset (RST_STREAM CANCEL) when it does not take its last bytes, not left open', async () => {
    const srv = await startServer({
      http: { h2c: true, heartbeatInterval: 30_000 },
      limits: { maxQueueBytes: 65_536 },
    });
    try {
      const session = await connectH2(srv.url);
      const stream = session.request({ ':path': '/sse?channel=zombie.a' });
      stream.on('error', () => undefined);
      let text = '';
      stream.setEncoding('utf8');
      const onData = (d: string): void => void (text += d);
      stream.on('data', onData);
      await until(() => text.includes('event: subscribed'), 'subscribed');
      stream.off('data', onData);
      stream.pause(); // stops reading: its window fills, then the server gives up on it
      const closed = new Promise<number>((r) => stream.once('close', () => r(stream.rstCode ?? -1)));
      const big = 'x'.repeat(8000);
      for (let i = 0; i < 60 && srv.server.metrics.value('herald_slow_disconnects_total') === 0; i++) {
        expect((await api(srv.url, 'publish', { channel: 'zombie.a', data: big })).status).toBe(200);
      }
      await until(
        () => srv.server.metrics.value('herald_slow_disconnects_total') === 1,
        'the slow stream is disconnected',
      );
      // The transport's close timeout is 5 s.
      const code = await withTimeout(closed, 9000, 'the zombie stream to be reset');
      expect(code).toBe(http2.constants.NGHTTP2_CANCEL);
      await backToBaseline(srv, 0);
      session.destroy();
    } finally {
      await srv.close();
    }
  });
});
