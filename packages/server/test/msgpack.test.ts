/**
 * Herald's MessagePack protocol on `GET /ws` (subprotocol `herald.msgpack` or `?format=msgpack`):
 * negotiation, subscribe, publications, history and recovery, binary payloads end to end (published
 * over HTTP with `b64data` and over a MessagePack WebSocket; received as bytes on MessagePack and as
 * `b64data` on JSON WebSocket and SSE), malformed input, and JSON and MessagePack subscribers of one
 * channel side by side. Real sockets, a raw `ws` client that speaks MessagePack.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeMulti, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Inbox, SseParser, withTimeout, type SseEvent } from '@herald/test-support';
import { api, refusedUpgrade, startServer, WsClient, type Frame, type TestServer } from '@herald/test-support/server';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    limits: { maxFrameSize: 65_536 },
    namespaces: { chat: { clientPublish: true }, small: { maxMessageSize: 8, clientPublish: true } },
  });
});
afterAll(async () => {
  await srv.close();
});

/** A raw MessagePack client: every value received is kept in `frames.items`, in order. */
class MsgpackClient {
  readonly frames = new Inbox<Frame>();
  readonly ws: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Whether every message came as a binary frame. */
  allBinary = true;
  private nextId = 1;

  constructor(url: string, protocols: string[] = ['herald.msgpack']) {
    this.ws = new WebSocket(url, protocols);
    this.ws.on('error', () => undefined);
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) this.allBinary = false;
      // As a plain Uint8Array (a browser's view): bins then decode as Uint8Array, not Buffer.
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      for (const v of decodeMulti(bytes)) this.frames.push(v as Frame);
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  static async connect(url: string, protocols?: string[]): Promise<MsgpackClient> {
    const c = new MsgpackClient(url, protocols);
    await c.frames.waitFor((f) => f['push'] === 'connected', 'connected push');
    return c;
  }

  send(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  request(cmd: Frame): Promise<Frame> {
    const id = this.nextId++;
    this.send(encode({ id, ...cmd }));
    return this.frames.waitFor((f) => f['id'] === id, `reply to ${String(cmd['cmd'])} #${id}`);
  }

  pubs(stream: string): Frame[] {
    return this.frames.items.filter((f) => f['push'] === 'pub' && f['stream'] === stream);
  }

  close(): Promise<unknown> {
    this.ws.close();
    return withTimeout(this.closed, 5000, 'close');
  }
}

/** An SSE connection to `channel`; events land in the inbox. */
async function sse(channel: string): Promise<{ events: Inbox<SseEvent>; abort: () => void }> {
  const ac = new AbortController();
  const res = await fetch(`${srv.url}/sse?channel=${channel}`, { signal: ac.signal });
  const events = new Inbox<SseEvent>();
  const parser = new SseParser((e) => events.push(e));
  const body = res.body;
  if (body === null) throw new Error('no body');
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
    } catch {
      // aborted
    }
  })();
  await events.waitFor((e) => e.event === 'subscribed', 'sse subscribed');
  return { events, abort: () => ac.abort() };
}

const BYTES = Uint8Array.from([0, 1, 2, 250, 255, 10, 13, 0]);
const B64 = Buffer.from(BYTES).toString('base64');

describe('MessagePack WebSocket', () => {
  it('is chosen by the herald.msgpack subprotocol or ?format=msgpack; JSON stays the default', async () => {
    const a = await MsgpackClient.connect(srv.wsUrl);
    expect(a.ws.protocol).toBe('herald.msgpack');
    expect(a.frames.items[0]).toMatchObject({ push: 'connected', version: 1 });
    // Offered among others, it still wins.
    const b = await MsgpackClient.connect(srv.wsUrl, ['herald.json', 'herald.msgpack']);
    expect(b.ws.protocol).toBe('herald.msgpack');
    const c = await MsgpackClient.connect(`${srv.wsUrl}?format=msgpack`, []);
    expect(c.ws.protocol).toBe('');
    expect((await c.request({ cmd: 'ping' }))['result']).toEqual({});
    expect(a.allBinary && b.allBinary && c.allBinary).toBe(true);
    const json = await WsClient.connect(srv.wsUrl);
    expect((await json.request({ cmd: 'ping' }))['result']).toEqual({});
    const refused = await refusedUpgrade(`${srv.wsUrl}?format=xml`);
    expect(refused.status).toBe(400);
    expect(refused.body['error']).toMatchObject({ code: 'HERALD_ERR_PROTOCOL_BAD_FIELD' });
    await Promise.all([a.close(), b.close(), c.close(), json.close()]);
  });

  it('subscribes and receives publications as MessagePack maps, in order', async () => {
    const c = await MsgpackClient.connect(srv.wsUrl);
    const r = await c.request({ cmd: 'subscribe', channel: 'news.mp' });
    expect(r['result']).toMatchObject({ stream: 'news.mp', offset: 0, publications: [] });
    for (let i = 1; i <= 3; i++) {
      expect((await api(srv.url, 'publish', { channel: 'news.mp', data: { n: i, s: 'é' } })).status).toBe(200);
    }
    const pubs = await c.frames.waitForCount((f) => f['push'] === 'pub', 3, 'pubs');
    expect(pubs.map((p) => p['data'])).toEqual([1, 2, 3].map((n) => ({ n, s: 'é' })));
    expect(pubs.map((p) => p['offset'])).toEqual([1, 2, 3]);
    expect(pubs[0]).toMatchObject({ stream: 'news.mp', channel: 'news.mp', epoch: r['result'].epoch });
    await c.close();
  });

  it('answers history and recovers with publications carrying values and bytes', async () => {
    await api(srv.url, 'publish', { channel: 'news.hist', data: 'one' });
    await api(srv.url, 'publish', { channel: 'news.hist', b64data: B64 });
    await api(srv.url, 'publish', { channel: 'news.hist', data: [3] });
    const c = await MsgpackClient.connect(srv.wsUrl);
    const h = await c.request({ cmd: 'history', channel: 'news.hist' });
    expect(h['result']['publications'].map((p: Frame) => p['data'])).toEqual(['one', BYTES, [3]]);
    expect(h['result']['publications'][1]['data']).toBeInstanceOf(Uint8Array);
    const epoch = h['result']['epoch'] as string;
    const s = await c.request({ cmd: 'subscribe', channel: 'news.hist', since: { epoch, offset: 1 } });
    expect(s['result']).toMatchObject({ recovered: true, offset: 3 });
    expect(s['result']['publications'].map((p: Frame) => p['offset'])).toEqual([2, 3]);
    expect(s['result']['publications'][0]['data']).toEqual(BYTES);
    // The server API's history gives the bytes as b64data.
    const viaApi = await api(srv.url, 'history', { channel: 'news.hist' });
    expect(viaApi.body.publications[1]).toEqual({ channel: 'news.hist', offset: 2, b64data: B64 });
    await c.close();
  });

  it('delivers a binary payload as bytes on MessagePack and as b64data on JSON and SSE', async () => {
    const mp = await MsgpackClient.connect(srv.wsUrl);
    await mp.request({ cmd: 'subscribe', channel: 'chat.bin' });
    const json = await WsClient.subscribed(srv.wsUrl, 'chat.bin');
    const events = await sse('chat.bin');
    // Over HTTP, then from the MessagePack client itself (a bin as the publish's data).
    const p1 = await api(srv.url, 'publish', { channel: 'chat.bin', b64data: B64 });
    expect(p1.body).toMatchObject({ offset: 1 });
    const sent = Uint8Array.from([9, 8, 7]);
    const p2 = await mp.request({ cmd: 'publish', channel: 'chat.bin', data: sent });
    expect(p2['result']).toMatchObject({ offset: 2, duplicate: false });

    const got = await mp.frames.waitForCount((f) => f['push'] === 'pub', 2, 'binary pubs');
    expect(got.map((p) => p['data'])).toEqual([BYTES, sent]);
    expect(got[0]!['data']).toBeInstanceOf(Uint8Array);
    const jsonPubs = await json.waitForCount((f) => f['push'] === 'pub', 2, 'json pubs');
    expect(jsonPubs.map((p) => [p['b64data'], 'data' in p])).toEqual([
      [B64, false],
      ['CQgH', false],
    ]);
    const sseEvents = await events.events.waitForCount((e) => e.event === 'message', 2, 'sse pubs');
    expect(sseEvents.map((e) => (JSON.parse(e.data) as Frame)['b64data'])).toEqual([B64, 'CQgH']);
    events.abort();
    await Promise.all([mp.close(), json.close()]);
  });

  it('checks b64data: not with data, standard base64 only, maxMessageSize counts the bytes', async () => {
    const both = await api(srv.url, 'publish', { channel: 'chat.x', data: 1, b64data: B64 });
    expect(both.status).toBe(400);
    expect(both.body.error.message).toContain('not both');
    const bad = await api(srv.url, 'publish', { channel: 'chat.x', b64data: 'not base64!' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'HERALD_ERR_PROTOCOL_BAD_FIELD' });
    // `small` allows 8 bytes: 8 bytes of binary fit (12 characters of base64), 9 do not.
    expect((await api(srv.url, 'publish', { channel: 'small.x', b64data: B64 })).status).toBe(200);
    const nine = Buffer.alloc(9).toString('base64');
    const big = await api(srv.url, 'publish', { channel: 'small.x', b64data: nine });
    expect(big.body.error).toMatchObject({ code: 'HERALD_ERR_MESSAGE_TOO_LARGE' });
    const broadcast = await api(srv.url, 'broadcast', { channels: ['chat.b1', 'chat.b2'], b64data: B64 });
    expect(broadcast.body.results).toHaveLength(2);
    const h = await api(srv.url, 'history', { channel: 'chat.b2' });
    expect(h.body.publications[0].b64data).toBe(B64);
  });

  it('answers malformed MessagePack with a coded error and keeps the connection', async () => {
    const c = await MsgpackClient.connect(srv.wsUrl);
    c.send(Uint8Array.from([0xc1])); // never used in MessagePack
    const e1 = await c.frames.waitFor((f) => f['error'] !== undefined, 'malformed error');
    expect(e1).toEqual({ error: { code: 'HERALD_ERR_PROTOCOL_MALFORMED', message: expect.any(String) as string } });
    c.send(Uint8Array.from([0x92, 0x01])); // an array of 2 with one element: truncated
    c.send(encode({ id: 7, cmd: 'publish', channel: 'chat.x', data: { nested: Uint8Array.from([1]) } }));
    c.send(encode('just a string'));
    const errors = await c.frames.waitForCount((f) => f['error'] !== undefined, 4, 'errors');
    expect(errors.map((f) => f['error'].code)).toEqual([
      'HERALD_ERR_PROTOCOL_MALFORMED',
      'HERALD_ERR_PROTOCOL_MALFORMED',
      'HERALD_ERR_PROTOCOL_MALFORMED',
      'HERALD_ERR_PROTOCOL_MALFORMED',
    ]);
    expect(errors[2]!['error'].message).toContain('whole "data" of a publish');
    // Nothing of the refused publish was stored; the connection still answers.
    expect((await c.request({ cmd: 'history', channel: 'chat.x' }))['result']['offset']).toBe(0);
    await c.close();
  });

  it('runs several commands sent in one message, and closes 3501 on a text frame', async () => {
    const c = await MsgpackClient.connect(srv.wsUrl);
    const two = Buffer.concat([encode({ id: 101, cmd: 'ping' }), encode({ id: 102, cmd: 'ping' })]);
    c.send(two);
    await c.frames.waitForCount((f) => f['id'] === 101 || f['id'] === 102, 2, 'both replies');
    c.ws.send('{"id":1,"cmd":"ping"}');
    expect((await c.closed).code).toBe(3501);
  });

  it('gives JSON and MessagePack subscribers of one channel every publication once, in order', async () => {
    const N = 30;
    const mps = await Promise.all([0, 1].map(() => MsgpackClient.connect(srv.wsUrl)));
    for (const m of mps) await m.request({ cmd: 'subscribe', channel: 'chat.mixed' });
    const jsons = await Promise.all([0, 1].map(() => WsClient.subscribed(srv.wsUrl, 'chat.mixed')));
    for (let i = 1; i <= N; i++) {
      const body = i % 3 === 0 ? { channel: 'chat.mixed', b64data: B64 } : { channel: 'chat.mixed', data: { i } };
      await api(srv.url, 'publish', body);
    }
    await api(srv.url, 'publish', { channel: 'chat.mixed', data: 'sentinel' });
    const want = Array.from({ length: N + 1 }, (_, k) => k + 1);
    for (const m of mps) {
      await m.frames.waitFor((f) => f['data'] === 'sentinel', 'sentinel (msgpack)');
      expect(m.pubs('chat.mixed').map((p) => p['offset'])).toEqual(want);
      expect(m.pubs('chat.mixed')[2]!['data']).toEqual(BYTES);
      expect(m.pubs('chat.mixed')[3]!['data']).toEqual({ i: 4 });
    }
    for (const j of jsons) {
      await j.waitFor((f) => f['data'] === 'sentinel', 'sentinel (json)');
      expect(j.pubs('chat.mixed').map((p) => p['offset'])).toEqual(want);
      expect(j.pubs('chat.mixed')[2]!['b64data']).toBe(B64);
    }
    await Promise.all([...mps.map((m) => m.close()), ...jsons.map((j) => j.close())]);
  });
});

describe('a publish of bytes through a publish hook', () => {
  let backend: Server;
  let hooked: TestServer;
  const bodies: Frame[] = [];
  beforeAll(async () => {
    backend = createServer((req, res) => {
      let raw = '';
      req.on('data', (d: Buffer) => (raw += d.toString()));
      req.on('end', () => {
        bodies.push(JSON.parse(raw) as Frame);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"allow":true}');
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const port = (backend.address() as AddressInfo).port;
    hooked = await startServer({
      auth: { hooks: { url: `http://127.0.0.1:${port}` } },
      namespaces: { game: { clientPublish: true, hooks: ['publish'] } },
    });
  });
  afterAll(async () => {
    await hooked.close();
    await new Promise((r) => backend.close(r));
  });

  it('shows the backend the bytes as b64data, and publishes them as bytes', async () => {
    const c = await MsgpackClient.connect(hooked.wsUrl);
    await c.request({ cmd: 'subscribe', channel: 'game.1' });
    const r = await c.request({ cmd: 'publish', channel: 'game.1', data: BYTES });
    expect(r['result']).toMatchObject({ offset: 1 });
    expect(bodies).toHaveLength(1);
    expect(bodies[0]).toMatchObject({ event: 'publish', channel: 'game.1', b64data: B64 });
    expect('data' in bodies[0]!).toBe(false);
    const pub = await c.frames.waitFor((f) => f['push'] === 'pub', 'pub');
    expect(pub['data']).toEqual(BYTES);
    await c.close();
  });
});
