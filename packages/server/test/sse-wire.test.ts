/**
 * The bytes of HTTP/1.1 SSE responses on a raw TCP connection. Streams write their chunks straight to
 * the socket (not through `res.write`) once the header is out: the chunk framing must stay exact,
 * a pipelined stream must wait for the response before it, and a stream the server ends must leave
 * the connection reusable.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, withTimeout, type TestServer } from './support/harness.js';
import { waitUntil } from './support/inbox.js';

/** Everything a raw connection received, as latin1 text, with a way to await a pattern. */
class RawConnection {
  text = '';
  private waiters: Array<() => void> = [];
  readonly socket: Socket;

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async until(pred: (text: string) => boolean, what: string): Promise<void> {
    await withTimeout(
      (async () => {
        while (!pred(this.text)) await new Promise<void>((resolve) => this.waiters.push(resolve));
      })(),
      5000,
      what,
    );
  }
}

/**
 * Decodes a chunked body from `from`: the data of each complete chunk, and whether the last chunk
 * (size 0) was seen. Throws on any framing error.
 */
function dechunk(text: string, from: number): { chunks: string[]; ended: boolean; next: number } {
  const chunks: string[] = [];
  let i = from;
  for (;;) {
    const eol = text.indexOf('\r\n', i);
    if (eol === -1) return { chunks, ended: false, next: i };
    const sizeText = text.slice(i, eol);
    if (!/^[0-9a-f]+$/.test(sizeText)) throw new Error(`bad chunk size line ${JSON.stringify(sizeText)}`);
    const size = parseInt(sizeText, 16);
    if (size === 0) {
      if (text.length < eol + 4) return { chunks, ended: false, next: i };
      if (text.slice(eol + 2, eol + 4) !== '\r\n') throw new Error('bad last chunk');
      return { chunks, ended: true, next: eol + 4 };
    }
    const end = eol + 2 + size;
    if (text.length < end + 2) return { chunks, ended: false, next: i };
    if (text.slice(end, end + 2) !== '\r\n') throw new Error(`chunk of ${size} bytes not followed by CRLF`);
    chunks.push(text.slice(eol + 2, end));
    i = end + 2;
  }
}

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

  it('frames every event as an exact chunk, behind a pipelined response, and leaves the connection reusable', async () => {
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

    for (let i = 1; i <= 3; i++) {
      const r = await api(srv.url, 'publish', { channel: 'wire.a', data: { i, pad: 'x'.repeat(i * 700) } });
      expect(r.status).toBe(200);
    }
    await c.until(() => body(c, headerEnd).includes('"offset":3,'), 'three publications');
    const events = body(c, headerEnd);
    expect(events).toMatch(/^id: wire\.a;[^;\n]+;3\ndata: \{"stream":"wire\.a".*"offset":3,.*"i":3/m);

    // The server ends the stream (disconnect): the last chunk comes, the connection stays open.
    const connected = /event: connected\ndata: (.*)\n/.exec(events);
    const client = (JSON.parse(connected![1]!) as { client: string }).client;
    expect((await api(srv.url, 'disconnect', { client })).status).toBe(200);
    await c.until(() => dechunk(c.text, headerEnd).ended, 'the last chunk');
    const after = dechunk(c.text, headerEnd).next;
    expect(body(c, headerEnd)).toMatch(/event: disconnect/);
    c.socket.write('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
    await c.until((t) => t.indexOf('HTTP/1.1 200', after) === after, 'a third response on the same connection');
    c.socket.destroy();
  });

  it('writes through Node when a stream waits behind a response still being written', async () => {
    // A held long-poll answers only when a publication comes; the SSE request pipelined after it
    // must wait, then stream normally on the same connection.
    const first = (await (await fetch(`${srv.url}/poll?channel=wire.b`)).json()) as { cursor: string };
    const epoch = first.cursor.split(';')[1]!;
    const c = new RawConnection(port);
    c.socket.write(
      `GET /poll?channel=wire.b&cursor=${epoch}:0 HTTP/1.1\r\nHost: t\r\n\r\n` +
        'GET /sse?channel=wire.c HTTP/1.1\r\nHost: t\r\n\r\n',
    );
    await waitUntil(() => srv.server.hub.sessions.size >= 2, 'both requests are being served');
    expect((await api(srv.url, 'publish', { channel: 'wire.c', data: 'early' })).status).toBe(200);
    expect((await api(srv.url, 'publish', { channel: 'wire.b', data: 'poll' })).status).toBe(200);
    await c.until((t) => t.includes('"data":"early"'), 'the stream after the poll');
    const second = c.text.indexOf('HTTP/1.1 200', 1);
    expect(c.text.slice(0, second)).toContain('"data":"poll"');
    const headerEnd = c.text.indexOf('\r\n\r\n', second) + 4;
    expect((await api(srv.url, 'publish', { channel: 'wire.c', data: 'late' })).status).toBe(200);
    await c.until(() => body(c, headerEnd).includes('"data":"late"'), 'a later publication');
    expect(body(c, headerEnd)).toMatch(/"data":"early"[\s\S]*"data":"late"/);
    c.socket.destroy();
  });
});
