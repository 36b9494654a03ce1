/**
 * `writeFrame` writes to a plain TCP socket's descriptor while nothing is queued, and through
 * `socket.write` otherwise: on real sockets, the bytes must arrive whole and in order across the
 * switch (a reader that stops until the kernel's buffers are full, then reads everything), and a TLS
 * socket must never be written to directly.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { directFd, writeFrame } from '../src/transports/socket-write.js';
import { selfSignedCert, tempDir, withTimeout } from '@herald/test-support';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A listening server and a connected client; resolves with the server's side of the connection. */
async function pair(): Promise<{ serverSide: Socket; client: Socket; server: Server }> {
  const server: Server = createServer();
  closers.push(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect({ host: '127.0.0.1', port });
  const serverSide = await withTimeout(accepted, 5000, 'the connection');
  closers.push(() => {
    client.destroy();
    serverSide.destroy();
  });
  return { serverSide, client, server };
}

describe('writeFrame', () => {
  it('keeps every byte in order when a reader stops and the socket fills, then drains', async () => {
    const { serverSide, client } = await pair();
    const fd = directFd(serverSide);
    expect(fd).toBeGreaterThan(2);
    client.pause(); // the reader stops: the kernel's buffers fill, then direct writes give way
    const frame = (i: number): Buffer => Buffer.from(`${String(i).padStart(8, '0')}:${'x'.repeat(1000 + (i % 7))}\n`);
    let i = 0;
    let expected = 0;
    // Write until the socket queues (the kernel took no more), then as many again through the queue.
    while (serverSide.writableLength === 0 && i < 100_000) {
      const f = frame(i++);
      expected += f.length;
      writeFrame(serverSide, f, fd);
    }
    expect(serverSide.writableLength).toBeGreaterThan(0);
    const queuedAt = i;
    for (let k = 0; k < queuedAt; k++) {
      const f = frame(i++);
      expected += f.length;
      writeFrame(serverSide, f, fd);
    }
    const chunks: Buffer[] = [];
    let got = 0;
    const all = new Promise<void>((resolve) => {
      client.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got >= expected) resolve();
      });
    });
    client.resume();
    await withTimeout(all, 20_000, 'every byte');
    const lines = Buffer.concat(chunks).toString('latin1').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(i);
    lines.forEach((line, n) => expect(line).toBe(frame(n).toString('latin1').slice(0, -1)));
  }, 30_000);

  it('goes through socket.write once the stream is ended', async () => {
    const { serverSide, client } = await pair();
    const received = new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (c: Buffer) => (text += c.toString()));
      client.on('end', () => resolve(text));
    });
    const fd = directFd(serverSide);
    expect(writeFrame(serverSide, Buffer.from('first'), fd)).toBe(true);
    serverSide.end();
    const errors: Error[] = [];
    serverSide.on('error', (e) => errors.push(e));
    expect(writeFrame(serverSide, Buffer.from('after the end'), fd)).toBe(false);
    expect(await withTimeout(received, 5000, 'the end of the stream')).toBe('first');
    await withTimeout(
      new Promise<void>((resolve) => (errors.length > 0 ? resolve() : serverSide.once('error', () => resolve()))),
      5000,
      'the write-after-end error',
    );
    expect(errors[0]?.message).toMatch(/after end/i);
  });

  it('never writes directly to a TLS socket', async () => {
    const dir = tempDir('socket-write');
    closers.push(() => dir.remove());
    const cert = selfSignedCert(dir.path);
    const server = createTlsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) });
    closers.push(() => server.close());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const accepted = new Promise<TLSSocket>((resolve) => server.once('secureConnection', resolve));
    const client = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    closers.push(() => client.destroy());
    const serverSide = await withTimeout(accepted, 5000, 'the TLS connection');
    expect(directFd(serverSide)).toBe(-1);
    const text = new Promise<string>((resolve) => client.once('data', (c: Buffer) => resolve(c.toString())));
    expect(writeFrame(serverSide, Buffer.from('through TLS'), directFd(serverSide))).toBe(false);
    expect(await withTimeout(text, 5000, 'the TLS data')).toBe('through TLS');
    serverSide.destroy();
  });

  it("never writes to a destroyed socket's descriptor once another socket has its number", async () => {
    const { serverSide, server } = await pair();
    const fd = directFd(serverSide);
    serverSide.destroy(); // closes the descriptor in this same step
    // POSIX hands out the lowest free number: the next socket opened here gets the same one.
    const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
    const fresh = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port });
    closers.push(() => fresh.destroy());
    await withTimeout(new Promise((resolve) => fresh.once('connect', resolve)), 5000, 'the second connection');
    const peer = await withTimeout(accepted, 5000, 'the second connection accepted');
    closers.push(() => peer.destroy());
    expect(directFd(fresh), "the second socket has the first one's descriptor number").toBe(fd);
    // A destroyed stream drops the write (no error event: it has already closed).
    expect(writeFrame(serverSide, Buffer.from('stale'), fd)).toBe(false);
    // Whatever reaches the second connection's peer comes before this marker.
    const text = new Promise<string>((resolve) => {
      let got = '';
      peer.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.endsWith('marker')) resolve(got);
      });
    });
    fresh.write('marker');
    expect(await withTimeout(text, 5000, 'the marker')).toBe('marker');
  });
});
