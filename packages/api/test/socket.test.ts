/**
 * `publishOver: 'websocket'`: publishes over one `GET /api/ws` connection, with the same answers,
 * keys and retries as over HTTP. A connection reset with publications in flight, and a server killed
 * and restarted mid-stream (Redis engine), leave each publication applied exactly once; a wrong key
 * fails at once; a server without `/api/ws` is published to over HTTP.
 */
import { createServer, type Server } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, selfSignedCert, tempDir } from '@herald/test-support';
import { API_KEY, startServer, type TestConfigInput, type TestServer } from '@herald/test-support/server';
import { HeraldApi, HeraldApiError, type PublishResult, type RetryEvent } from '@herald/api';
import { dropPrefix, REDIS_URL, skipRedis, testPrefix } from './support/redis.js';
import { countConnections, onPublish, type ConnectionCounter } from './support/servers.js';

let ts: TestServer;
let conns: ConnectionCounter;
beforeAll(async () => {
  ts = await startServer({ namespaces: { sock: { historySize: 5000 } } });
  conns = countConnections(ts.server.httpServer);
});
afterAll(() => ts.close());

const client = (options: Partial<ConstructorParameters<typeof HeraldApi>[0]> = {}): HeraldApi =>
  new HeraldApi({
    url: ts.url,
    apiKey: API_KEY,
    publishOver: 'websocket',
    backoff: { initial: 10, max: 50 },
    ...options,
  });

async function historyData(channel: string, limit: number): Promise<unknown[]> {
  const reader = new HeraldApi({ url: ts.url, apiKey: API_KEY });
  try {
    const h = await reader.history(channel, { limit });
    return h.publications.map((p) => p.data);
  } finally {
    await reader.close();
  }
}

describe("publishOver: 'websocket'", () => {
  it('publishes over one connection, with no HTTP request', async () => {
    const c = client();
    const before = conns.accepted.length;
    const requests = conns.requests;
    try {
      const results = await Promise.all(Array.from({ length: 300 }, (_, i) => c.publish('sock.one', { i })));
      expect(results.map((r) => r.offset).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
      expect(results.every((r) => !r.duplicate && r.channel === 'sock.one')).toBe(true);
      const more = await c.publish('sock.one', 'last', { idempotencyKey: 'sock-last' });
      const again = await c.publish('sock.one', 'last', { idempotencyKey: 'sock-last' });
      expect(again).toEqual({ ...more, duplicate: true });
      expect(conns.accepted.length - before).toBe(1);
      expect(conns.requests - requests).toBe(0);
      expect(await historyData('sock.one', 5000)).toHaveLength(301);
    } finally {
      await c.close();
    }
  });

  it('rejects what the server refuses, with its code, without retrying', async () => {
    const retries: RetryEvent[] = [];
    const c = client({ onRetry: (e) => retries.push(e) });
    try {
      const err = await c.publish('bad channel', 1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HeraldApiError);
      expect((err as HeraldApiError).code).toBe('HERALD_ERR_CHANNEL_INVALID');
      expect((err as HeraldApiError).status).toBe(400);
      const wrong = client({ apiKey: 'wrong-key', onRetry: (e) => retries.push(e) });
      const unauthorized = await wrong.publish('sock.x', 1).catch((e: unknown) => e);
      expect((unauthorized as HeraldApiError).code).toBe('HERALD_ERR_API_UNAUTHORIZED');
      expect((unauthorized as HeraldApiError).status).toBe(401);
      await wrong.close();
      expect(retries).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it('sends the publications in flight again when the connection is reset: each applied once', async () => {
    const N = 2000;
    const retries: RetryEvent[] = [];
    const c = client({ onRetry: (e) => retries.push(e), retries: 20 });
    let applied = 0;
    let reset = false;
    const first = conns.accepted.length;
    const stop = onPublish((d) => {
      if (d.channel !== 'sock.reset' || ++applied !== N / 2 || reset) return;
      reset = true;
      // From inside the publish that reached the count: its answer, and others', are lost.
      for (const s of conns.accepted.slice(first)) s.resetAndDestroy();
    });
    try {
      const results: PublishResult[] = await Promise.all(
        Array.from({ length: N }, (_, i) => c.publish('sock.reset', i, { idempotencyKey: `reset-${i}` })),
      );
      expect(reset).toBe(true);
      expect(retries.some((e) => /dropped before the answer/.test(e.error.message))).toBe(true);
      expect(results.some((r) => r.duplicate)).toBe(true);
      expect(new Set(results.map((r) => r.offset)).size).toBe(N);
      const data = (await historyData('sock.reset', 5000)) as number[];
      expect(data).toHaveLength(N);
      expect([...data].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i));
    } finally {
      stop();
      await c.close();
    }
  });

  it("sizes its frames to the server's limit, and sends a publish too large for one over HTTP", async () => {
    const small = await startServer({
      limits: { maxApiBodySize: 20_000 },
      namespaces: { sock: { historySize: 1000, maxMessageSize: 100_000 } },
    });
    const retries: RetryEvent[] = [];
    const c = new HeraldApi({
      url: small.url,
      apiKey: API_KEY,
      publishOver: 'websocket',
      onRetry: (e) => retries.push(e),
    });
    try {
      await c.publish('sock.small', 'first'); // connected: the server's limit is known
      const text = 'x'.repeat(200);
      const results = await Promise.all(Array.from({ length: 300 }, (_, i) => c.publish('sock.small', { i, text })));
      expect(results).toHaveLength(300);
      expect(retries).toEqual([]); // no frame was refused (1009) and sent again
      const err = await c.publish('sock.small', 'y'.repeat(30_000)).catch((e: unknown) => e);
      expect((err as HeraldApiError).code).toBe('HERALD_ERR_API_BODY_TOO_LARGE');
      expect((err as HeraldApiError).status).toBe(413);
    } finally {
      await c.close();
      await small.close();
    }
  });

  it("publishes over TLS, trusting the pool's CA", async () => {
    const dir = tempDir('api-ws-tls');
    const { cert, key, pem } = selfSignedCert(dir.path);
    const secure = await startServer({ tls: { cert, key } });
    const port = secure.server.address?.port ?? 0;
    const c = new HeraldApi({
      url: `https://localhost:${port}`,
      apiKey: API_KEY,
      publishOver: 'websocket',
      pool: { connect: { ca: pem } },
    });
    const counted = countConnections(secure.server.httpServer);
    try {
      expect(await c.publish('sock.tls', 1)).toMatchObject({ channel: 'sock.tls', offset: 1 });
      expect(await c.publish('sock.tls', 2)).toMatchObject({ offset: 2 });
      expect(counted.accepted).toHaveLength(1);
      expect(counted.requests).toBe(0);
    } finally {
      await c.close();
      await secure.close();
      dir.remove();
    }
  });

  it('publishes over HTTP to a server without /api/ws', async () => {
    // A stand-in for an older server: 404 to the upgrade, Herald's answer to POST /api/publish.
    const seen: string[] = [];
    const old: Server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"channel":"sock.old","epoch":"e","offset":1,"duplicate":false}');
      });
    });
    old.on('upgrade', (req, socket) => {
      seen.push(`upgrade ${req.url}`);
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve) => old.listen(0, '127.0.0.1', resolve));
    const port = (old.address() as { port: number }).port;
    const c = client({ url: `http://127.0.0.1:${port}` });
    try {
      expect(await c.publish('sock.old', 1)).toMatchObject({ offset: 1 });
      expect(await c.publish('sock.old', 2)).toMatchObject({ offset: 1 });
      expect(seen).toEqual(['upgrade /api/ws', 'POST /api/publish', 'POST /api/publish']);
    } finally {
      await c.close();
      await new Promise<void>((resolve) => old.close(() => resolve()));
    }
  });
});

describe.skipIf(skipRedis)("publishOver: 'websocket', a server killed mid-stream and restarted (Redis engine)", () => {
  const prefix = testPrefix();
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
    await dropPrefix(prefix);
  });

  it('applies every publication exactly once', async () => {
    const port = await freePort();
    const config = {
      port,
      engine: 'redis',
      redis: { urls: [REDIS_URL], prefix },
      namespaces: { kill: { historySize: 5000 } },
    } as TestConfigInput;
    const first = await startServer(config);
    servers.push(first);
    const sockets = countConnections(first.server.httpServer);
    const N = 3000;
    let applied = 0;
    let killed: Promise<void> | undefined;
    let restarted: Promise<TestServer> | undefined;
    const stop = onPublish((d) => {
      if (d.channel !== 'kill.ws' || ++applied !== N / 2) return;
      (first.server.httpServer as HttpServer).close();
      for (const s of sockets.accepted) s.resetAndDestroy();
      killed = first.close();
    });
    const retries: RetryEvent[] = [];
    const c = new HeraldApi({
      url: `http://127.0.0.1:${port}`,
      apiKey: API_KEY,
      publishOver: 'websocket',
      retries: 50,
      backoff: { initial: 20, max: 250 },
      onRetry: (e) => {
        retries.push(e);
        if (killed === undefined || restarted !== undefined || !/ECONNREFUSED/.test(e.error.message)) return;
        restarted = killed.then(async () => {
          const second = await startServer(config);
          servers.push(second);
          return second;
        });
      },
    });
    try {
      const results = await Promise.all(Array.from({ length: N }, (_, i) => c.publish('kill.ws', i)));
      stop();
      expect(killed, 'the server was killed').toBeDefined();
      expect(restarted, 'the server was started again').toBeDefined();
      await restarted;
      const messages = retries.map((e) => e.error.message).join('\n');
      expect(messages).toMatch(/dropped before the answer/);
      expect(messages).toMatch(/ECONNREFUSED/);
      expect(new Set(results.map((r) => r.offset)).size).toBe(N);
      const reader = new HeraldApi({ url: `http://127.0.0.1:${port}`, apiKey: API_KEY });
      const h = await reader.history<number>('kill.ws', { limit: 5000 });
      await reader.close();
      expect(h.offset).toBe(N);
      expect(h.publications.map((p) => p.offset)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      expect([...h.publications.map((p) => p.data)].sort((a, b) => a - b)).toEqual(
        Array.from({ length: N }, (_, i) => i),
      );
    } finally {
      stop();
      await c.close();
    }
  }, 60_000);
});
