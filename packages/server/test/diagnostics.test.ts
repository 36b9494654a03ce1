/**
 * The `node:diagnostics_channel` events for APM tools (core/diagnostics.ts): `herald:publish` for
 * every publish the engine accepted, `herald:connect` when a session is created and
 * `herald:disconnect` once when it ends, whichever side ended it.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import {
  CONNECT_CHANNEL,
  DISCONNECT_CHANNEL,
  PUBLISH_CHANNEL,
  type ConnectDiagnostic,
  type DisconnectDiagnostic,
  type PublishDiagnostic,
} from '../src/index.js';
import { SECRET, sign } from './support/tokens.js';

describe('diagnostics channels', () => {
  let srv: TestServer | undefined;
  const subscriptions: Array<[string, (msg: unknown) => void]> = [];
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
    for (const [name, fn] of subscriptions.splice(0)) diagnostics_channel.unsubscribe(name, fn);
  });

  function listen<T>(name: string): T[] {
    const got: T[] = [];
    const fn = (msg: unknown): void => void got.push(msg as T);
    diagnostics_channel.subscribe(name, fn);
    subscriptions.push([name, fn]);
    return got;
  }

  it('have no subscribers unless someone listens', () => {
    for (const name of [PUBLISH_CHANNEL, CONNECT_CHANNEL, DISCONNECT_CHANNEL]) {
      expect(diagnostics_channel.channel(name).hasSubscribers).toBe(false);
    }
    expect([PUBLISH_CHANNEL, CONNECT_CHANNEL, DISCONNECT_CHANNEL]).toEqual([
      'herald:publish',
      'herald:connect',
      'herald:disconnect',
    ]);
  });

  it('report publications, connections and disconnections, each disconnection once', async () => {
    const published = listen<PublishDiagnostic>(PUBLISH_CHANNEL);
    const connected = listen<ConnectDiagnostic>(CONNECT_CHANNEL);
    const disconnected = listen<DisconnectDiagnostic>(DISCONNECT_CHANNEL);
    srv = await startServer({ auth: { hmacSecret: SECRET } });
    const node = srv.server.hub.nodeId;
    const token = await sign({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 3600 }, SECRET);

    // A WebSocket client with a token: connect event with the user; publications with their position.
    const a = await WsClient.connect(`${srv.wsUrl}?token=${token}`);
    expect(connected).toEqual([
      { client: a.clientId, user: 'u1', transport: 'websocket', remoteAddress: expect.stringMatching(/127\.0\.0\.1/) },
    ]);
    const first = await api(srv.url, 'publish', { channel: 'diag.a', data: 1, idempotencyKey: 'k1' });
    const again = await api(srv.url, 'publish', { channel: 'diag.a', data: 1, idempotencyKey: 'k1' });
    await api(srv.url, 'publish', { channel: 'diag.b', data: 2 });
    expect(published).toEqual([
      { channel: 'diag.a', offset: 1, epoch: first.body.epoch, node, idempotencyKey: 'k1', duplicate: false },
      { channel: 'diag.a', offset: 1, epoch: again.body.epoch, node, idempotencyKey: 'k1', duplicate: true },
      { channel: 'diag.b', offset: 1, epoch: expect.any(String), node, duplicate: false },
    ]);

    // The server disconnects it: reported with the code and reason, not again when the socket closes.
    expect((await api(srv.url, 'disconnect', { client: a.clientId })).body).toEqual({ disconnected: 1 });
    expect(await withTimeout(a.closed, 5000, 'the disconnected socket to close')).toMatchObject({ code: 3500 });
    expect(disconnected).toEqual([
      { client: a.clientId, user: 'u1', transport: 'websocket', code: 3500, reason: expect.any(String) },
    ]);

    // An anonymous SSE client goes away: reported once the server sees the connection closed.
    const abort = new AbortController();
    const sse = await fetch(`${srv.url}/sse?channel=diag.a`, { signal: abort.signal });
    expect(sse.status).toBe(200);
    await until(() => connected.length === 2, 'the SSE connect event');
    const s = connected[1]!;
    expect(s).toMatchObject({ user: '', transport: 'sse' });
    abort.abort();
    await sse.body?.cancel().catch(() => undefined);
    await until(() => disconnected.length === 2, 'the SSE disconnect event');
    expect(disconnected[1]).toEqual({ client: s.client, user: '', transport: 'sse', code: 0, reason: 'closed' });

    // A client closing its socket itself, and one still open at shutdown (3001).
    const b = await WsClient.connect(srv.wsUrl);
    const c = await WsClient.connect(srv.wsUrl);
    await b.close();
    await until(() => disconnected.length === 3, 'the disconnect event of the closed socket');
    expect(disconnected[2]).toEqual({
      client: b.clientId,
      user: '',
      transport: 'websocket',
      code: 0,
      reason: 'closed',
    });
    await srv.close();
    srv = undefined;
    await withTimeout(c.closed, 5000, 'the last socket to close at shutdown');
    expect(disconnected.slice(3)).toEqual([
      { client: c.clientId, user: '', transport: 'websocket', code: 3001, reason: expect.any(String) },
    ]);
    expect(connected.map((e) => e.client)).toEqual(disconnected.map((e) => e.client));
  });
});
