/**
 * `HeraldServer.close()` must not wait for connections that have sent nothing (Node counts them as
 * busy until their headersTimeout), while a connection with a request in flight still gets its
 * answer.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { startServer } from '@herald/test-support/server';

describe('shutdown with idle connections', () => {
  it('closes a connection that never sent a request at once, and answers a held poll', async () => {
    // A shutdown timeout far longer than the test's own: waiting for it would fail the test.
    const srv = await startServer({ shutdown: { timeout: 60_000 } });
    const port = srv.server.address!.port;
    const silent = connect({ host: '127.0.0.1', port });
    const silentClosed = new Promise<void>((resolve) => silent.on('close', () => resolve()));
    silent.on('error', () => undefined);
    // A request on another connection: once it is answered, the silent one has been accepted too.
    expect((await fetch(`${srv.url}/health`)).status).toBe(200);
    // A first poll answers at once with a cursor; the next one, from that cursor, is held.
    const first = (await (await fetch(`${srv.url}/poll?channel=idle.held`)).json()) as { cursor: string };
    const cursor = encodeURIComponent(first.cursor);
    const poll = fetch(`${srv.url}/poll?channel=idle.held&cursor=${cursor}&timeout=20`).then(
      async (r) => ({ status: r.status, body: await r.text() }),
      (err: unknown) => ({ status: 0, body: String(err) }),
    );
    await until(() => srv.server.connectionsByTransport()['long-poll'] !== 0, 'the poll to be held');
    await withTimeout(srv.close(), 10_000, 'close() with a silent connection open');
    await withTimeout(silentClosed, 5000, 'the silent connection to be closed');
    const answered = await withTimeout(poll, 5000, 'the held poll to be answered');
    expect(answered.status).toBe(200);
  }, 30_000);
});
