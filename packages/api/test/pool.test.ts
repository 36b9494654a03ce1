/**
 * The connection pool against a real server: many publishes over at most `connections` sockets,
 * and connections the server closes while the client idles (its keep-alive timeout, or all idle
 * connections at once as at a shutdown), which must cost the caller nothing.
 */
import type { Server as HttpServer } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { API_KEY, startServer, type TestServer } from '@herald/test-support/server';
import { HeraldApi, type RetryEvent } from '@herald/api';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { countConnections, type ConnectionCounter } from './support/servers.js';

describe('a pool of 4 connections', () => {
  let ts: TestServer;
  let conns: ConnectionCounter;
  let client: HeraldApi;
  const retries: RetryEvent[] = [];

  beforeAll(async () => {
    ts = await startServer({ namespaces: { bulk: { historySize: 10_000 } } });
    conns = countConnections(ts.server.httpServer);
    // The time limit of an attempt counts the time it waits in the pool's queue: 10,000 calls made at
    // once on a busy machine may wait longer than the default 10 s, and would then be retried.
    client = new HeraldApi({
      url: ts.url,
      apiKey: API_KEY,
      connections: 4,
      // The pool is what is tested: publish over it, not over /api/ws.
      publishOver: 'http',
      timeout: 60_000,
      onRetry: (e) => retries.push(e),
    });
  });
  afterAll(async () => {
    await client.close();
    await ts.close();
  });

  it('makes 10,000 concurrent publishes over at most 4 TCP connections, each applied once', async () => {
    const N = 10_000;
    const results = await Promise.all(Array.from({ length: N }, (_, i) => client.publish('bulk.feed', { i })));
    expect(conns.accepted.length).toBeGreaterThanOrEqual(1);
    expect(conns.accepted.length).toBeLessThanOrEqual(4);
    expect(conns.requests).toBe(N);
    expect(retries).toEqual([]);

    const offsets = results.map((r) => r.offset);
    expect(new Set(offsets).size).toBe(N);
    expect([...offsets].sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(results.every((r) => r.channel === 'bulk.feed' && !r.duplicate && r.epoch === results[0]?.epoch)).toBe(true);

    const h = await client.history<{ i: number }>('bulk.feed', { limit: N });
    expect(h.offset).toBe(N);
    expect(h.truncated).toBeUndefined();
    expect(h.publications).toHaveLength(N);
    // Each publication is in history once, at the offset its publish call returned.
    const offsetOf = new Map(h.publications.map((p) => [p.data.i, p.offset]));
    expect(offsetOf.size).toBe(N);
    results.forEach((r, i) => expect(offsetOf.get(i)).toBe(r.offset));
  }, 60_000);
});

describe('connections the server closes while the client idles', () => {
  let ts: TestServer;
  let proxy: FaultProxy | undefined;
  let client: HeraldApi | undefined;

  afterEach(async () => {
    await client?.close();
    await proxy?.close();
    await ts.close();
    client = undefined;
    proxy = undefined;
  });

  it('publishes once on a new connection after the keep-alive timeout closed the idle one', async () => {
    // A proxy drops the `Keep-Alive: timeout` hint (it is hop-by-hop, and load balancers drop it), so
    // the client keeps its idle connection (4 s without a hint) longer than the server (300 ms).
    ts = await startServer({ http: { keepAliveTimeout: 300 } });
    const conns = countConnections(ts.server.httpServer);
    proxy = await startFaultProxy(ts.server.address?.port ?? 0, { stripKeepAlive: true });
    const retries: RetryEvent[] = [];
    client = new HeraldApi({
      url: proxy.url,
      apiKey: API_KEY,
      connections: 1,
      publishOver: 'http',
      onRetry: (e) => retries.push(e),
    });

    const first = await client.publish('idle.a', 'first');
    expect(first.offset).toBe(1);
    expect(conns.accepted).toHaveLength(1);
    // The server closes the idle connection; the proxy passes the close on to the client.
    await withTimeout(conns.closed(1), 5000, "the server's keep-alive timeout to close the connection");
    const clientSide = proxy.clientSockets[0];
    if (clientSide === undefined) throw new Error('the client never connected through the proxy');
    if (!clientSide.closed) {
      await withTimeout(
        new Promise((resolve) => clientSide.once('close', resolve)),
        5000,
        'the proxy to close the client side',
      );
    }

    const second = await client.publish('idle.a', 'second');
    expect(second).toMatchObject({ offset: 2, duplicate: false });
    expect(conns.accepted).toHaveLength(2);
    const h = await client.history('idle.a');
    expect(h.publications.map((p) => p.data)).toEqual(['first', 'second']);
    expect(retries).toEqual([]);
  });

  it('publishes once when the server closed every idle connection (as at a shutdown), even right after', async () => {
    ts = await startServer();
    const conns = countConnections(ts.server.httpServer);
    client = new HeraldApi({ url: ts.url, apiKey: API_KEY, connections: 4, publishOver: 'http' });
    const http = ts.server.httpServer as HttpServer;

    for (let round = 1; round <= 20; round++) {
      await client.publish('idle.b', round);
      const before = conns.accepted.length;
      http.closeIdleConnections();
      for (let n = 1; n <= before; n++) await withTimeout(conns.closed(n), 5000, `connection ${n} to close`);
      // No wait for the client to see the FIN: the next request may race it, and must not fail.
    }
    const h = await client.history('idle.b');
    expect(h.publications.map((p) => p.data)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(h.offset).toBe(20);
  });
});
