/**
 * Herald embedded under `/realtime` (the `basePath` option) in an application's own server
 * (docs/embedding.md): node:http, Express (middleware, with and without a mount path), Fastify
 * (`serverFactory`, and an `onRequest` hook). Real servers on ephemeral ports: a WebSocket and an
 * SSE subscription through the prefix, publishes through the prefixed server API, `/stream`,
 * `/poll` and `POST /send` under the prefix, health/ready/metrics there too, the host's own routes
 * (and body parsers) untouched, and a graceful `close()` while the host goes on serving. The SDK with
 * a base URL that has a path: packages/client/test/base-path.test.ts.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Inbox, LineSplitter, SseParser, withTimeout, type SseEvent } from '@herald/test-support';
import { API_KEY, testConfig, WsClient, type Frame } from '@herald/test-support/server';
import { HeraldServer } from '../src/server.js';

const BASE = '/realtime';

interface Host {
  /** `http://127.0.0.1:<port>`: the host's own root. */
  url: string;
  close(): Promise<void>;
}

function newHerald(): HeraldServer {
  return new HeraldServer(testConfig({ shutdown: { timeout: 3000, reconnectJitter: 0 } }), { basePath: BASE });
}

/** The upgrade listener every host uses: Herald's upgrades to Herald, the others refused. */
function upgrades(herald: HeraldServer) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (herald.handles(req)) herald.handleUpgrade(req, socket, head);
    else socket.destroy();
  };
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}

/** A plain node:http application: `GET /hello`, `POST /echo` (reads its JSON body), else 404. */
function plainApp(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === 'GET' && req.url === '/hello') {
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('hello from the host');
    return;
  }
  if (req.method === 'POST' && req.url === '/echo') {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ echo: body }));
    });
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' }).end('host: not found');
}

async function nodeHost(herald: HeraldServer): Promise<Host> {
  const server = http.createServer((req, res) => {
    if (herald.handles(req)) herald.handleRequest(req, res);
    else plainApp(req, res);
  });
  server.on('upgrade', upgrades(herald));
  return { url: await listen(server), close: () => closeServer(server) };
}

async function expressHost(herald: HeraldServer, mountPath: boolean): Promise<Host> {
  const app = express();
  // Before any body parser: the server API reads its body itself.
  if (mountPath) app.use(BASE, herald.middleware());
  else app.use(herald.middleware());
  app.use(express.json());
  app.get('/hello', (_req, res) => {
    res.type('text/plain').send('hello from the host');
  });
  app.post('/echo', (req, res) => {
    res.json({ echo: req.body as unknown });
  });
  const server = http.createServer(app);
  server.on('upgrade', upgrades(herald));
  return { url: await listen(server), close: () => closeServer(server) };
}

async function fastifyFactoryHost(herald: HeraldServer): Promise<Host> {
  const app = Fastify({
    serverFactory: (handler) => {
      const server = http.createServer((req, res) => {
        if (herald.handles(req)) herald.handleRequest(req, res);
        else handler(req, res);
      });
      server.on('upgrade', upgrades(herald));
      return server;
    },
  });
  fastifyRoutes(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

async function fastifyHookHost(herald: HeraldServer): Promise<Host> {
  const app = Fastify();
  // onRequest runs before Fastify reads the body; a hijacked reply is left to Herald.
  app.addHook('onRequest', (request, reply, done) => {
    if (!herald.handles(request.raw)) {
      done();
      return;
    }
    reply.hijack();
    herald.handleRequest(request.raw, reply.raw);
  });
  app.server.on('upgrade', upgrades(herald));
  fastifyRoutes(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, close: () => app.close() };
}

function fastifyRoutes(app: FastifyInstance): void {
  app.get('/hello', async (_req, reply) => reply.type('text/plain').send('hello from the host'));
  app.post('/echo', async (req) => ({ echo: req.body }));
}

/** An SSE response read as it arrives. */
interface SseReader {
  events: Inbox<SseEvent>;
  ended: Promise<void>;
  close(): void;
}

async function openSse(url: string): Promise<SseReader> {
  const ctl = new AbortController();
  const res = await fetch(url, { signal: ctl.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events = new Inbox<SseEvent>();
  const parser = new SseParser((e) => events.push(e));
  const body = res.body;
  if (body === null) throw new Error('no body');
  const ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch {
      // aborted
    }
  })();
  return { events, ended, close: () => ctl.abort() };
}

async function publish(url: string, channel: string, data: unknown): Promise<{ status: number; body: Frame }> {
  const res = await fetch(`${url}${BASE}/api/publish`, {
    method: 'POST',
    headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, data }),
  });
  return { status: res.status, body: (await res.json()) as Frame };
}

async function getJson(url: string): Promise<{ status: number; body: Frame }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Frame };
}

function embeddingSuite(name: string, makeHost: (herald: HeraldServer) => Promise<Host>): void {
  describe(`embedded in ${name} under ${BASE}`, () => {
    let herald: HeraldServer;
    let host: Host;
    let ws: string;
    beforeAll(async () => {
      herald = newHerald();
      await herald.start();
      host = await makeHost(herald);
      ws = `${host.url.replace(/^http/, 'ws')}${BASE}/ws`;
    });
    afterAll(async () => {
      await herald.close();
      await host.close();
    });

    it("keeps the host's own routes and body parsing", async () => {
      const hello = await fetch(`${host.url}/hello`);
      expect([hello.status, await hello.text()]).toEqual([200, 'hello from the host']);
      const echo = await fetch(`${host.url}/echo`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ a: 1 }),
      });
      expect([echo.status, await echo.json()]).toEqual([200, { echo: { a: 1 } }]);
      // Paths outside the prefix are the host's, even ones Herald has at its root.
      const outside = await fetch(`${host.url}/health`);
      expect(outside.status).toBe(404);
      expect(await outside.text()).not.toContain('HERALD_ERR');
      const near = await fetch(`${host.url}${BASE}x/health`);
      expect(near.status).toBe(404);
      expect(await near.text()).not.toContain('HERALD_ERR');
    });

    it('serves health, ready, metrics and the index under the prefix; 404s the rest there', async () => {
      expect(await getJson(`${host.url}${BASE}/health`)).toMatchObject({ status: 200, body: { status: 'ok' } });
      expect(await getJson(`${host.url}${BASE}/ready`)).toMatchObject({ status: 200, body: { status: 'ok' } });
      const index = await getJson(`${host.url}${BASE}`);
      expect(index.body['endpoints']).toContain(`${BASE}/ws`);
      expect(index.body['endpoints']).toContain(`${BASE}/api/<method>`);
      expect((await getJson(`${host.url}${BASE}/`)).status).toBe(200);
      const metrics = await fetch(`${host.url}${BASE}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('herald_connections');
      const none = await getJson(`${host.url}${BASE}/nothing`);
      expect([none.status, none.body['error']]).toEqual([
        404,
        { code: 'HERALD_ERR_API_NOT_FOUND', message: `no route for ${BASE}/nothing` },
      ]);
      const admin = await getJson(`${host.url}${BASE}/admin/`);
      expect([admin.status, admin.body['error'].code]).toEqual([404, 'HERALD_ERR_API_NOT_FOUND']);
      expect(admin.body['error'].message).toContain('basePath');
    });

    it('takes a WebSocket and an SSE subscription through the prefix, and an API publish', async () => {
      const channel = `emb.${name.replace(/\W/g, '')}`;
      const c = await WsClient.subscribed(ws, channel);
      const sse = await openSse(`${host.url}${BASE}/sse?channel=${channel}`);
      try {
        await sse.events.waitFor((e) => e.event === 'subscribed', 'the SSE subscribed event');
        const r = await publish(host.url, channel, { hello: name });
        expect(r).toMatchObject({ status: 200, body: { channel, offset: 1 } });
        const pub = await c.waitFor((f) => f['push'] === 'pub', 'the WebSocket publication');
        expect(pub).toMatchObject({ channel, offset: 1, data: { hello: name } });
        const e = await sse.events.waitFor((x) => x.event === 'message', 'the SSE publication');
        expect(JSON.parse(e.data)).toMatchObject({ channel, offset: 1, data: { hello: name } });
      } finally {
        sse.close();
        await c.close();
      }
    });

    it("gives a WebSocket upgrade outside the prefix to the host's upgrade handling", async () => {
      const socket = new WebSocket(`${host.url.replace(/^http/, 'ws')}/ws`);
      const err = await withTimeout(
        new Promise<Error>((resolve) => socket.once('error', resolve)),
        5000,
        'the refused upgrade',
      );
      // The host's listener destroyed the socket without an answer.
      expect(err.message).toMatch(/socket hang up/);
    });

    it('serves /stream, /poll and POST /send under the prefix', async () => {
      const channel = `emb.http${name.replace(/\W/g, '')}`;
      const ctl = new AbortController();
      const res = await fetch(`${host.url}${BASE}/stream?channel=${channel}`, { signal: ctl.signal });
      expect(res.status).toBe(200);
      const lines = new Inbox<Frame>();
      const splitter = new LineSplitter((line) => lines.push(JSON.parse(line) as Frame));
      const reading = (async () => {
        const decoder = new TextDecoder();
        try {
          for await (const chunk of res.body ?? [])
            splitter.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        } catch {
          // aborted
        }
      })();
      try {
        const connected = await lines.waitFor((f) => f['push'] === 'connected', 'the connected line');
        await lines.waitFor((f) => f['push'] === 'subscribed', 'the subscribed line');
        await publish(host.url, channel, 'one');
        await publish(host.url, channel, 'two');
        await lines.waitForCount((f) => f['push'] === 'pub', 2, 'two publications');
        // A command for that session, with its body read by Herald (not by the host).
        const send = await fetch(`${host.url}${BASE}/send`, {
          method: 'POST',
          headers: { 'X-Herald-Session': connected['session'] as string },
          body: JSON.stringify({ id: 1, cmd: 'history', channel, limit: 1, latest: true }),
        });
        expect(send.status).toBe(200);
        const reply = JSON.parse((await send.text()).trim()) as Frame;
        expect(reply['result'].publications.map((p: Frame) => p['data'])).toEqual(['two']);
        // A first poll answers at once with the position; one from offset 0 with both publications.
        const first = await getJson(`${host.url}${BASE}/poll?channel=${channel}`);
        expect(first.status).toBe(200);
        const epoch = first.body['streams'][channel].epoch as string;
        const poll = await getJson(`${host.url}${BASE}/poll?channel=${channel}&cursor=${epoch}:0`);
        expect(poll.body['publications'].map((p: Frame) => p['data'])).toEqual(['one', 'two']);
      } finally {
        ctl.abort();
        await reading;
      }
    });
  });
}

embeddingSuite('node:http', nodeHost);
embeddingSuite('Express', (herald) => expressHost(herald, false));
embeddingSuite('Express (mount path)', (herald) => expressHost(herald, true));
embeddingSuite('Fastify (serverFactory)', fastifyFactoryHost);
embeddingSuite('Fastify (onRequest hook)', fastifyHookHost);

describe('embedded: graceful shutdown', () => {
  for (const [name, makeHost] of [
    ['node:http', nodeHost],
    ['Express', (h: HeraldServer) => expressHost(h, false)],
    ['Fastify', fastifyFactoryHost],
  ] as const) {
    it(`${name}: close() sends the clients away and the host goes on serving its routes`, async () => {
      const herald = newHerald();
      await herald.start();
      const host = await makeHost(herald);
      try {
        const c = await WsClient.subscribed(`${host.url.replace(/^http/, 'ws')}${BASE}/ws`, 'bye.a');
        const sse = await openSse(`${host.url}${BASE}/sse?channel=bye.a`);
        await sse.events.waitFor((e) => e.event === 'subscribed', 'the SSE subscribed event');
        const closing = herald.close();
        // The clients are told to reconnect elsewhere (3001 SHUTDOWN), and the SSE response ends.
        expect((await withTimeout(c.closed, 5000, 'the WebSocket close')).code).toBe(3001);
        const bye = await sse.events.waitFor((e) => e.event === 'disconnect', 'the SSE disconnect event');
        expect(JSON.parse(bye.data)).toMatchObject({ code: 3001 });
        await withTimeout(sse.ended, 5000, 'the SSE response to end');
        await withTimeout(closing, 5000, 'herald.close()');
        expect(herald.state).toBe('stopped');
        // The host still serves; Herald's paths say it stopped.
        const hello = await fetch(`${host.url}/hello`);
        expect(hello.status).toBe(200);
        const after = await publish(host.url, 'bye.a', 1);
        expect([after.status, after.body['error'].code]).toEqual([503, 'HERALD_ERR_SHUTTING_DOWN']);
        expect((await getJson(`${host.url}${BASE}/health`)).status).toBe(503);
      } finally {
        await herald.close();
        await withTimeout(host.close(), 5000, 'the host to close');
      }
    });
  }
});

describe('basePath option', () => {
  it('refuses a malformed prefix and drops a trailing slash', () => {
    const config = testConfig();
    for (const bad of ['realtime', '/a//b', '/a?b', '/a/../b', '/a b', '/./a']) {
      expect(() => new HeraldServer(config, { basePath: bad }), bad).toThrow(/basePath must be like/);
    }
    expect(new HeraldServer(config, { basePath: '/rt/v1/' }).basePath).toBe('/rt/v1');
    expect(new HeraldServer(config, { basePath: '/' }).basePath).toBe('');
    expect(new HeraldServer(config).basePath).toBe('');
  });
});
