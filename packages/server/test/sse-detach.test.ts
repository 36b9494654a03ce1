/**
 * HTTP/1.x streams take their socket from node:http once the header is out (http/detach.ts): the
 * socket must then hold nothing of node:http (no parser, none of its listeners, no response), and
 * the connection must still end the way a client expects: when the client closes, when the server
 * ends the stream, and when a client stops reading. A Node version whose internals differ would
 * make the stream fall back to node:http, and the first test here fail.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { dechunk, RawConnection } from './support/raw-http.js';

type ServerSocket = Socket & { parser?: unknown; _httpMessage?: unknown };

let srv: TestServer;
let port: number;
beforeAll(async () => {
  srv = await startServer({ limits: { maxQueueBytes: 256 * 1024 }, namespaces: { big: { maxMessageSize: 65_536 } } });
  port = srv.server.address!.port;
});
afterAll(() => srv.close());

/** Opens a raw stream and returns it with its client id, once it is subscribed. */
async function openStream(path: string, version = '1.1'): Promise<{ c: RawConnection; client: string }> {
  const c = new RawConnection(port);
  c.socket.write(`GET ${path} HTTP/${version}\r\nHost: t\r\n\r\n`);
  await c.until((t) => /"client":"[^"]+"/.test(t) && t.includes('subscribed'), 'the stream to subscribe');
  const client = /"client":"([^"]+)"/.exec(c.text)![1]!;
  return { c, client };
}

function transportOf(client: string): { socket?: ServerSocket; res?: ServerResponse } {
  const session = srv.server.hub.sessions.get(client);
  expect(session).toBeDefined();
  return session!.transport as { socket?: ServerSocket; res?: ServerResponse };
}

/** The names of the listeners node:http (Node 20) puts on a connection's socket. */
const NODE_HTTP_LISTENERS = new Set(
  ['socketOnData', 'socketOnEnd', 'socketOnClose', 'socketOnDrain']
    .map((n) => `bound ${n}`)
    .concat(['socketOnError', 'socketOnTimeout', 'onSocketResume', 'onSocketPause', 'onServerResponseClose']),
);

function nodeHttpListeners(socket: Socket): string[] {
  const names: string[] = [];
  for (const event of ['data', 'end', 'close', 'drain', 'error', 'timeout', 'resume', 'pause']) {
    for (const fn of socket.listeners(event)) if (NODE_HTTP_LISTENERS.has(fn.name)) names.push(fn.name);
  }
  return names;
}

describe('HTTP/1.x streams detached from node:http', () => {
  it.each([
    ['/sse?channel=det.a', 'sse'],
    ['/stream?channel=det.b', 'http-stream'],
  ])('%s holds its socket alone: no parser, no node:http listener, no response', async (path) => {
    const { c, client } = await openStream(path);
    const t = transportOf(client);
    expect(t.res).toBeUndefined();
    const socket = t.socket!;
    expect(socket).toBeDefined();
    expect(socket.parser ?? null).toBeNull();
    expect(socket._httpMessage ?? null).toBeNull();
    expect(nodeHttpListeners(socket)).toEqual([]);
    // A plain TCP socket: frames go to its descriptor while nothing is queued (transports/socket-write.ts).
    expect((t as { fd?: number }).fd).toBeGreaterThan(2);
    expect(c.text).toMatch(/\r\nconnection: close\r\n/i);
    // And it still streams.
    expect((await api(srv.url, 'publish', { channel: path.split('=')[1], data: 'after' })).status).toBe(200);
    await c.until((text) => text.includes('"data":"after"'), 'a publication');
    c.socket.destroy();
  });

  it('ends the session when the client closes its side', async () => {
    const { c, client } = await openStream('/sse?channel=det.c');
    c.socket.end(); // FIN, as an EventSource that is closed sends
    await until(() => !srv.server.hub.sessions.has(client), 'the session to end');
    await c.until(() => c.closed, 'the server to close the connection');
  });

  it('serves HTTP/1.0 without chunk framing, the body ending at close', async () => {
    const { c, client } = await openStream('/sse?channel=det.d', '1.0');
    expect(c.text).toMatch(/^HTTP\/1\.1 200/);
    expect(c.text).not.toMatch(/transfer-encoding/i);
    expect(transportOf(client).socket).toBeDefined();
    expect((await api(srv.url, 'publish', { channel: 'det.d', data: 'plain' })).status).toBe(200);
    await c.until((t) => t.includes('"data":"plain"'), 'a publication');
    expect(c.text).toMatch(/\n\nid: det\.d;[^\n]+\ndata: \{[^\n]*"data":"plain"\}\n\n/);
    expect((await api(srv.url, 'disconnect', { client })).status).toBe(200);
    await c.until(() => c.closed, 'the server to close the connection');
    expect(c.text.endsWith('\n\n')).toBe(true);
  });

  it('keeps node:http for a stream with a request pipelined after it', async () => {
    const c = new RawConnection(port);
    c.socket.write('GET /sse?channel=det.e HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n');
    await c.until((t) => t.includes('subscribed'), 'the stream to subscribe');
    const client = /"client":"([^"]+)"/.exec(c.text)![1]!;
    const t = transportOf(client);
    expect(t.socket).toBeUndefined();
    expect(t.res).toBeDefined();
    expect(c.text).toMatch(/\r\nconnection: keep-alive\r\n/i);
    // The pipelined request is answered after the stream, as HTTP/1.1 orders responses.
    const headerEnd = c.text.indexOf('\r\n\r\n') + 4;
    expect((await api(srv.url, 'disconnect', { client })).status).toBe(200);
    await c.until(() => dechunk(c.text, headerEnd).ended, 'the last chunk');
    const after = dechunk(c.text, headerEnd).next;
    await c.until((text) => text.indexOf('HTTP/1.1 200', after) === after, 'the pipelined response');
    c.socket.destroy();
  });

  it('drops a slow client that does not read the end of its stream', async () => {
    const sse = srv.server.sse as unknown as { closeTimeout: number; connectionCount: number };
    sse.closeTimeout = 300;
    const others = sse.connectionCount;
    const { c, client } = await openStream('/sse?channel=big.slow');
    c.socket.pause(); // stop reading: the kernel buffers fill, then the server's queue
    const payload = 'x'.repeat(16 * 1024);
    for (let n = 0; n < 400 && srv.server.hub.sessions.has(client); n++) {
      expect((await api(srv.url, 'publish', { channel: 'big.slow', data: { n, payload } })).status).toBe(200);
    }
    expect(srv.server.hub.sessions.has(client)).toBe(false);
    // The server could not write its last bytes: it drops the socket after closeTimeout.
    await withTimeout(
      until(() => sse.connectionCount === others, 'the slow stream to be dropped'),
      5000,
      'the slow stream to be dropped',
    );
    c.socket.destroy();
  }, 30_000);
});
