/**
 * Coded errors: what the server refuses comes back with its code and status and is not retried;
 * what the network does (nothing listening, nothing answering, not Herald) comes back with a code
 * of the table after the retries, in bounded time; the client's own state (closed, aborted).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@herald/test-support';
import { API_KEY, startServer, type TestServer } from '@herald/test-support/server';
import { HeraldError } from '@herald/protocol';
import { HeraldApi, HeraldApiError, type RetryEvent } from '@herald/api';
import { countConnections, type ConnectionCounter } from './support/servers.js';

let ts: TestServer;
let conns: ConnectionCounter;
let client: HeraldApi;
const retries: RetryEvent[] = [];

beforeAll(async () => {
  ts = await startServer({ namespaces: { nohist: { historySize: 0 }, small: { maxMessageSize: 100 } } });
  conns = countConnections(ts.server.httpServer);
  // Over HTTP: these tests count requests (socket.test.ts covers the WebSocket path's errors).
  client = new HeraldApi({ url: ts.url, apiKey: API_KEY, publishOver: 'http', onRetry: (e) => retries.push(e) });
});
afterAll(async () => {
  await client.close();
  await ts.close();
});

/** The call's rejection (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<HeraldApiError> {
  const err = await p.then(
    (v) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HeraldApiError);
  return err as HeraldApiError;
}

describe('errors the server answers', () => {
  it('a wrong API key: HERALD_ERR_API_UNAUTHORIZED (401), one request, not retried', async () => {
    const before = conns.requests;
    const wrong = new HeraldApi({
      url: ts.url,
      apiKey: 'not-the-key',
      publishOver: 'http',
      onRetry: (e) => retries.push(e),
    });
    const err = await rejection(wrong.publish('a.b', 1));
    expect(err).toMatchObject({
      name: 'HeraldApiError',
      code: 'HERALD_ERR_API_UNAUTHORIZED',
      status: 401,
      retriable: false,
      attempts: 1,
      method: 'publish',
    });
    expect(err).toBeInstanceOf(HeraldError);
    expect(err.message).toMatch(/API key/);
    expect(JSON.parse(JSON.stringify(err))).toMatchObject({ code: 'HERALD_ERR_API_UNAUTHORIZED', status: 401 });
    expect(conns.requests - before).toBe(1);
    expect(retries).toEqual([]);
    await wrong.close();
  });

  it('bad input: the method’s code and status, not retried', async () => {
    const before = conns.requests;
    const cases: Array<[Promise<unknown>, string, number]> = [
      [client.publish('bad..channel', 1), 'HERALD_ERR_CHANNEL_INVALID', 400],
      [client.publish('a.**', 1), 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED', 400],
      [client.publish('a.b', undefined), 'HERALD_ERR_PROTOCOL_BAD_FIELD', 400],
      [client.publish('small.x', 'x'.repeat(200)), 'HERALD_ERR_MESSAGE_TOO_LARGE', 413],
      [client.publish('a.b', 1, { idempotencyKey: 'k'.repeat(129) }), 'HERALD_ERR_API_BAD_REQUEST', 400],
      [client.history('nohist.x'), 'HERALD_ERR_HISTORY_DISABLED', 400],
      [client.history('a.b', { since: 'not-a-cursor' }), 'HERALD_ERR_CURSOR_INVALID', 400],
      [client.history('a.b', { limit: -1 }), 'HERALD_ERR_API_BAD_REQUEST', 400],
      [client.presence('a.b'), 'HERALD_ERR_PRESENCE_DISABLED', 400],
      [client.channels({ limit: 0 }), 'HERALD_ERR_API_BAD_REQUEST', 400],
      [client.disconnect({}), 'HERALD_ERR_API_BAD_REQUEST', 400],
      [client.broadcast([], 1), 'HERALD_ERR_API_BAD_REQUEST', 400],
    ];
    for (const [p, code, status] of cases) {
      expect(await rejection(p), code).toMatchObject({ code, status, retriable: false, attempts: 1 });
    }
    expect(conns.requests - before).toBe(cases.length);
    expect(retries).toEqual([]);
  });
});

describe('errors of the network', () => {
  it('nothing listening: HERALD_ERR_CLIENT_DISCONNECTED after every retry, in bounded time', async () => {
    const port = await freePort();
    const seen: RetryEvent[] = [];
    const c = new HeraldApi({
      url: `http://127.0.0.1:${port}`,
      apiKey: API_KEY,
      retries: 3,
      backoff: { initial: 50, max: 200 },
      onRetry: (e) => seen.push(e),
    });
    const start = Date.now();
    const err = await rejection(c.publish('a.b', 1));
    const took = Date.now() - start;
    expect(err).toMatchObject({ code: 'HERALD_ERR_CLIENT_DISCONNECTED', status: 0, retriable: true, attempts: 4 });
    expect(err.message).toMatch(/cannot connect .*ECONNREFUSED/);
    expect(seen.map((e) => e.attempt)).toEqual([1, 2, 3]);
    // Waits of 25-50, 50-100 and 100-200 ms: at least 175 ms, and far less than a second plus slack.
    const waited = seen.reduce((sum, e) => sum + e.delay, 0);
    expect(waited).toBeGreaterThanOrEqual(175);
    expect(waited).toBeLessThanOrEqual(350);
    expect(took).toBeGreaterThanOrEqual(waited);
    expect(took).toBeLessThan(waited + 2000);
    await c.close();
  });

  it('a server that accepts and never answers: HERALD_ERR_TIMEOUT after every retry, in bounded time', async () => {
    const sockets: Socket[] = [];
    const silent: TcpServer = createTcpServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const c = new HeraldApi({
      url: `http://127.0.0.1:${port}`,
      apiKey: API_KEY,
      timeout: 200,
      retries: 2,
      backoff: { initial: 10, max: 20 },
    });
    const start = Date.now();
    const err = await rejection(c.info());
    expect(err).toMatchObject({ code: 'HERALD_ERR_TIMEOUT', status: 0, retriable: true, attempts: 3 });
    expect(Date.now() - start).toBeGreaterThanOrEqual(600);
    expect(Date.now() - start).toBeLessThan(600 + 40 + 2000);
    // Each timed-out attempt gave up its socket.
    expect(sockets.length).toBe(3);
    await c.close();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('a URL that is not Herald: a coded error naming the problem, not retried', async () => {
    let requests = 0;
    const other: HttpServer = createHttpServer((_req, res) => {
      requests++;
      res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>hello</html>');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const port = (other.address() as { port: number }).port;
    const c = new HeraldApi({ url: `http://127.0.0.1:${port}`, apiKey: API_KEY, publishOver: 'http' });
    const err = await rejection(c.publish('a.b', 1));
    expect(err).toMatchObject({ code: 'HERALD_ERR_API_NOT_FOUND', status: 200, retriable: false, attempts: 1 });
    expect(err.message).toMatch(/not JSON/);
    expect(requests).toBe(1);
    await c.close();
    await new Promise((resolve) => other.close(resolve));
  });

  it('a path prefix in the URL is kept (a Herald behind /herald/ on a proxy)', async () => {
    const c = new HeraldApi({ url: `${ts.url}/nothing-here/`, apiKey: API_KEY });
    // Herald serves /api/ only at its root: /nothing-here/api/info is not an API method.
    const err = await rejection(c.info());
    expect(err).toMatchObject({ code: 'HERALD_ERR_API_NOT_FOUND', status: 404, attempts: 1 });
    await c.close();
  });
});

describe('the client itself', () => {
  it('refuses calls after close(), which waits for the calls in flight', async () => {
    const c = new HeraldApi({ url: ts.url, apiKey: API_KEY });
    const inFlight = c.publishMany(Array.from({ length: 50 }, (_, i) => ({ channel: 'closing.a', data: i })));
    const closing = c.close();
    expect(c.closed).toBe(true);
    const err = await rejection(c.publish('closing.a', 'late'));
    expect(err).toMatchObject({ code: 'HERALD_ERR_CLIENT_CLOSED', retriable: false, attempts: 0 });
    const out = await inFlight;
    expect(out.every((o) => o.ok)).toBe(true);
    await closing;
  });

  it('destroy() fails the calls in flight at once', async () => {
    const sockets: Socket[] = [];
    const silent = createTcpServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const c = new HeraldApi({
      url: `http://127.0.0.1:${(silent.address() as { port: number }).port}`,
      apiKey: API_KEY,
    });
    const pending = c.publish('a.b', 1);
    await new Promise<void>((resolve) => silent.once('connection', () => resolve()));
    await c.destroy();
    expect(await rejection(pending)).toMatchObject({ code: 'HERALD_ERR_CLIENT_CLOSED', attempts: 1 });
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('an aborted signal rejects with its reason, and is not retried', async () => {
    const ac = new AbortController();
    const reason = new Error('caller gave up');
    ac.abort(reason);
    await expect(client.info({ signal: ac.signal })).rejects.toBe(reason);
  });

  it('checks its options', () => {
    const bad = [
      { url: 'ftp://x', apiKey: 'k' },
      { url: 'not a url', apiKey: 'k' },
      { url: 'http://x?y=1', apiKey: 'k' },
      { url: 'http://x', apiKey: '' },
      { url: 'http://x', apiKey: 'a b' },
      { url: 'http://x', apiKey: 'k', connections: 0 },
      { url: 'http://x', apiKey: 'k', retries: -1 },
      { url: 'http://x', apiKey: 'k', timeout: 1.5 },
      { url: 'http://x', apiKey: 'k', batchSize: 1001 },
      { url: 'http://x', apiKey: 'k', backoff: { initial: 100, max: 10 } },
    ];
    for (const options of bad) expect(() => new HeraldApi(options), JSON.stringify(options)).toThrow(TypeError);
  });
});
