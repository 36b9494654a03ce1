import http, { type ServerResponse } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedHeaderBlock } from '../src/http/shared-header.js';

type WithHeader = ServerResponse & { _header?: unknown };

/** The raw bytes of a response to `GET path` on a fresh connection. */
function rawGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.end(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

// An open stream's header block is swapped for an equal string shared with other streams: the
// bytes on the wire are those Node would have sent.
describe('SharedHeaderBlock', () => {
  const block = new SharedHeaderBlock();
  const seen: Array<{ before: unknown; after: unknown }> = [];
  let server: http.Server;
  let port: number;

  beforeAll(async () => {
    server = http.createServer((req, res: WithHeader) => {
      res.sendDate = false; // the same bytes on every response
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Latin1': 'caf\u00e9' });
      if (req.url === '/shared') {
        const before = res._header;
        block.share(res);
        seen.push({ before, after: res._header });
      }
      res.write('first ');
      res.end('last');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends the bytes Node would have sent, and keeps an equal header block', async () => {
    const plain = await rawGet(port, '/plain');
    expect(plain).toContain('X-Latin1: caf\u00e9\r\n');
    expect(plain).toContain('\r\n6\r\nfirst \r\n4\r\nlast\r\n0\r\n');
    expect(await rawGet(port, '/shared')).toBe(plain);
    expect(await rawGet(port, '/shared')).toBe(plain);
    expect(seen).toHaveLength(2);
    for (const { before, after } of seen) {
      expect(typeof after).toBe('string');
      expect(after).toBe(before);
    }
  });

  it('leaves a response without a string header block alone', () => {
    const res = {} as WithHeader;
    block.share(res);
    expect(res._header).toBeUndefined();
  });
});
