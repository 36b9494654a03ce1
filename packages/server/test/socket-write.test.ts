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
import { directWritable, writeFrame } from '../src/transports/socket-write.js';
import { withTimeout } from './support/harness.js';
import { selfSignedCert, tempDir } from './support/processes.js';

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** A listening server and a connected client; resolves with the server's side of the connection. */
async function pair(): Promise<{ serverSide: Socket; client: Socket }> {
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
  return { serverSide, client };
}

describe('writeFrame', () => {
  it('keeps every byte in order when a reader stops and the socket fills, then drains', async () => {
    const { serverSide, client } = await pair();
    expect(directWritable(serverSide)).toBe(true);
    client.pause(); // the reader stops: the kernel's buffers fill, then direct writes give way
    const frame = (i: number): Buffer => Buffer.from(`${String(i).padStart(8, '0')}:${'x'.repeat(1000 + (i % 7))}\n`);
    let i = 0;
    let expected = 0;
    // Write until the socket queues (the kernel took no more), then as many again through the queue.
    while (serverSide.writableLength === 0 && i < 100_000) {
      const f = frame(i++);
      expected += f.length;
      writeFrame(serverSide, f, true);
    }
    expect(serverSide.writableLength).toBeGreaterThan(0);
    const queuedAt = i;
    for (let k = 0; k < queuedAt; k++) {
      const f = frame(i++);
      expected += f.length;
      writeFrame(serverSide, f, true);
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
    writeFrame(serverSide, Buffer.from('first'), true);
    serverSide.end();
    const errors: Error[] = [];
    serverSide.on('error', (e) => errors.push(e));
    writeFrame(serverSide, Buffer.from('after the end'), true);
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
    expect(directWritable(serverSide)).toBe(false);
    const text = new Promise<string>((resolve) => client.once('data', (c: Buffer) => resolve(c.toString())));
    writeFrame(serverSide, Buffer.from('through TLS'), directWritable(serverSide));
    expect(await withTimeout(text, 5000, 'the TLS data')).toBe('through TLS');
    serverSide.destroy();
  });
});
