/**
 * The SDK's `format: 'msgpack'` against a real server: the WebSocket negotiates `herald.msgpack`
 * and speaks MessagePack (checked on the server's side of the connection), publications, history,
 * recovery after a server-side drop, commands (publish of bytes, ping, rpc-less calls), and binary
 * payloads delivered as `Uint8Array` on every transport, MessagePack and JSON alike.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Herald, type Publication, type TransportName } from '@herald/client';
import { until } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { collect, count, gapless, next, publisher } from './support/helpers.js';

let srv: TestServer;
const clients: Herald[] = [];
beforeAll(async () => {
  srv = await startServer({ namespaces: { pub: { clientPublish: true, historySize: 5000 } } });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(() => srv.close());

function client(opts: ConstructorParameters<typeof Herald>[1]): Herald {
  const h = new Herald(srv.url, { timeout: 3000, ...opts });
  clients.push(h);
  return h;
}

const BYTES = Uint8Array.from([0, 1, 2, 250, 255, 10, 13, 0]);
const B64 = Buffer.from(BYTES).toString('base64');

/** What the server holds for the client's connection: its transport and the encoder's name. */
function serverSide(h: Herald): { transport: string; binary: unknown } {
  const s = srv.server.hub.sessions.get(h.client as string);
  if (s === undefined) throw new Error(`no session ${h.client}`);
  return { transport: s.transport.name, binary: (s.transport as unknown as { binary: unknown }).binary };
}

describe("format: 'msgpack'", () => {
  it('speaks MessagePack on the WebSocket: publications, history, publish of values and bytes', async () => {
    const h = client({ format: 'msgpack', transports: ['websocket'] });
    const sub = h.subscribe<unknown>('pub.mp.live', { backlog: 5 });
    const got = collect(sub);
    await sub.ready();
    expect(serverSide(h)).toEqual({ transport: 'websocket', binary: true });
    await api(srv.url, 'publish', { channel: 'pub.mp.live', data: { text: 'héllo', n: [1, 2.5, null] } });
    await api(srv.url, 'publish', { channel: 'pub.mp.live', b64data: B64 });
    const r = await h.publish('pub.mp.live', Uint8Array.from([7, 7]));
    expect(r).toMatchObject({ offset: 3, duplicate: false });
    await h.publish('pub.mp.live', 'plain');
    await count(sub, got, 4);
    expect(got.map((p) => p.data)).toEqual([
      { text: 'héllo', n: [1, 2.5, null] },
      BYTES,
      Uint8Array.from([7, 7]),
      'plain',
    ]);
    expect(got[1]!.data).toBeInstanceOf(Uint8Array);
    // Over HTTP the bytes published from the SDK read back as base64.
    const viaApi = await api(srv.url, 'history', { channel: 'pub.mp.live' });
    expect(viaApi.body.publications[2].b64data).toBe('Bwc=');
    const hist = await h.history('pub.mp.live', { limit: 10 });
    expect(hist.publications.map((p) => p.data)).toEqual(got.map((p) => p.data));
    // Commands whose options are left undefined (history above), and ping, go through MessagePack too.
    expect(await h.ping()).toBeGreaterThanOrEqual(0);
  });

  it('recovers a server-side drop while a publisher never stops: no gap, no duplicate', async () => {
    const h = client({ format: 'msgpack', transports: ['websocket'] });
    const sub = h.subscribe<{ n: number }>('pub.mp.drop');
    const got: Publication<{ n: number }>[] = collect(sub);
    await sub.ready();
    const pub = publisher(srv.url, 'pub.mp.drop');
    await count(sub, got, 20);
    const first = h.client as string;
    const back = next(h, 'state', (s) => s.state === 'connected', 8000);
    await until(
      async () => (await api(srv.url, 'disconnect', { client: first, reconnect: true })).body.disconnected > 0,
      'the server to drop the client',
    );
    await back;
    expect(serverSide(h).binary).toBe(true);
    await count(sub, got, got.length + 20);
    const sent = await pub.stop();
    await count(sub, got, sent);
    expect(gapless(got.map((p) => p.offset))).toBeUndefined();
    expect(got.map((p) => p.data.n)).toEqual(got.map((p) => p.offset));
  });

  it('falls back to JSON transports, where bytes still arrive as a Uint8Array', async () => {
    await api(srv.url, 'publish', { channel: 'pub.mp.fallback', b64data: B64 });
    const h = client({ format: 'msgpack', transports: ['sse'] });
    const sub = h.subscribe('pub.mp.fallback', { backlog: 1 });
    const got = collect(sub);
    await sub.ready();
    await count(sub, got, 1);
    expect(got[0]!.data).toEqual(BYTES);
  });
});

describe.each(['websocket', 'http-stream', 'sse', 'long-poll'] as const)('JSON over %s', (transport: TransportName) => {
  it('delivers binary payloads as Uint8Array: backlog, live, history', async () => {
    const ch = `pub.bin.${transport}`;
    await api(srv.url, 'publish', { channel: ch, b64data: B64 });
    const h = client({ transports: [transport] });
    const sub = h.subscribe(ch, { backlog: 1 });
    const got = collect(sub);
    await sub.ready();
    await api(srv.url, 'publish', { channel: ch, b64data: 'AQI=' });
    await api(srv.url, 'publish', { channel: ch, data: { json: true } });
    await count(sub, got, 3);
    expect(got.map((p) => p.data)).toEqual([BYTES, Uint8Array.from([1, 2]), { json: true }]);
    expect(got[0]!.data).toBeInstanceOf(Uint8Array);
    expect(got.some((p) => 'b64data' in p)).toBe(false);
    const hist = await h.history(ch);
    expect(hist.publications.map((p) => p.data)).toEqual([BYTES, Uint8Array.from([1, 2]), { json: true }]);
  });
});
