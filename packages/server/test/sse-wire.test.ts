/**
 * The bytes of HTTP/1.1 SSE responses on a raw TCP connection. Streams take their socket from
 * node:http once the header is out and write their chunks straight to it: the chunk framing must
 * stay exact, a pipelined stream must wait for the response before it, and a stream the server ends
 * sends its last chunk and closes the connection, as its `Connection: close` header said. A stream
 * that Node must keep (one queued behind a pipelined response) keeps the connection reusable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { dechunk, RawConnection } from './support/raw-http.js';

function body(c: RawConnection, headerEnd: number): string {
  return dechunk(c.text, headerEnd).chunks.join('');
}

describe('SSE over HTTP/1.1, on the wire', () => {
  let srv: TestServer;
  let port: number;
  beforeAll(async () => {
    srv = await startServer();
    port = srv.server.address!.port;
  });
  afterAll(() => srv.close());

  it('frames every event as an exact chunk, behind a pipelined response, and closes the connection after the last chunk', async () => {
    const c = new RawConnection(port);
    // Two requests in one write: the stream's bytes must come after the whole first response.
    c.socket.write('GET /health HTTP/1.1\r\nHost: t\r\n\r\n' + 'GET /sse?channel=wire.a HTTP/1.1\r\nHost: t\r\n\r\n');
    await c.until((t) => t.includes('event: subscribed'), 'the stream subscribed');
    const second = c.text.indexOf('HTTP/1.1 200', 1);
    expect(c.text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(second).toBeGreaterThan(0);
    const firstResponse = c.text.slice(0, second);
    expect(firstResponse).toMatch(/\r\n\r\n/);
    const headerEnd = c.text.indexOf('\r\n\r\n', second) + 4;
    expect(c.text.slice(second, headerEnd)).toMatch(/transfer-encoding: chunked/i);
    expect(c.text.slice(second, headerEnd)).toMatch(/content-type: text\/event-stream/i);
    expect(c.text.slice(second, headerEnd)).toMatch(/\r\nconnection: close\r\n/i);

    for (let i = 1; i <= 3; i++) {
      const r = await api(srv.url, 'publish', { channel: 'wire.a', data: { i, pad: 'x'.repeat(i * 700) } });
      expect(r.status).toBe(200);
    }
    await c.until(() => body(c, headerEnd).includes('"offset":3,'), 'three publications');
    const events = body(c, headerEnd);
    expect(events).toMatch(/^id: wire\.a;[^;\n]+;3\ndata: \{"stream":"wire\.a".*"offset":3,.*"i":3/m);

    // The server ends the stream (disconnect): the last chunk comes, then the server closes.
    const connected = /event: connected\ndata: (.*)\n/.exec(events);
    const client = (JSON.parse(connected![1]!) as { client: string }).client;
    expect((await api(srv.url, 'disconnect', { client })).status).toBe(200);
    await c.until(() => dechunk(c.text, headerEnd).ended, 'the last chunk');
    expect(body(c, headerEnd)).toMatch(/event: disconnect/);
    await c.until(() => c.closed, 'the server to close the connection');
    expect(c.text.length).toBe(dechunk(c.text, headerEnd).next); // nothing after the last chunk
  });

  it('serves a stream pipelined behind a held poll once the poll has answered', async () => {
    // A held long-poll answers only when a publication comes; the SSE request pipelined after it
    // waits for its turn (nothing is opened for it meanwhile), then streams on the same connection.
    const first = (await (await fetch(`${srv.url}/poll?channel=wire.b`)).json()) as { cursor: string };
    const epoch = first.cursor.split(';')[1]!;
    const c = new RawConnection(port);
    c.socket.write(
      `GET /poll?channel=wire.b&cursor=${epoch}:0 HTTP/1.1\r\nHost: t\r\n\r\n` +
        'GET /sse?channel=wire.c HTTP/1.1\r\nHost: t\r\n\r\n',
    );
    await until(() => srv.server.poll.connectionCount === 1, 'the poll is held');
    expect(srv.server.sse.connectionCount).toBe(0); // the stream waits behind it
    expect((await api(srv.url, 'publish', { channel: 'wire.b', data: 'poll' })).status).toBe(200);
    await c.until((t) => t.includes('event: subscribed'), 'the stream after the poll');
    const second = c.text.indexOf('HTTP/1.1 200', 1);
    expect(c.text.slice(0, second)).toContain('"data":"poll"');
    const headerEnd = c.text.indexOf('\r\n\r\n', second) + 4;
    // Its turn came with the connection to itself: the stream takes the socket (Connection: close).
    expect(c.text.slice(second, headerEnd)).toMatch(/\r\nconnection: close\r\n/i);
    expect((await api(srv.url, 'publish', { channel: 'wire.c', data: 'late' })).status).toBe(200);
    await c.until(() => body(c, headerEnd).includes('"data":"late"'), 'a publication on the stream');
    const events = body(c, headerEnd);
    const client = (JSON.parse(/event: connected\ndata: (.*)\n/.exec(events)![1]!) as { client: string }).client;
    expect((await api(srv.url, 'disconnect', { client })).status).toBe(200);
    await c.until(() => dechunk(c.text, headerEnd).ended, 'the last chunk');
    await c.until(() => c.closed, 'the server to close the connection');
  });
});
