/**
 * Test support for the abuse suite: raw HTTP/2 frames (what an attacker writes, with no client
 * library deciding for it), honest subscribers that must keep receiving every publication while an
 * attack runs, and the server's baseline to come back to.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { expect } from 'vitest';
import { until, withTimeout } from '@herald/test-support';
import { api, WsClient, type TestServer } from '@herald/test-support/server';

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
/** RST_STREAM error code CANCEL. */
const CANCEL = 0x8;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK literal (without indexing) whose name is the static table's entry `index`; value < 127 bytes. */
function literal(index: number, value: string): Buffer {
  const v = Buffer.from(value, 'latin1');
  if (index > 14 || v.length > 126) throw new Error('literal too long for this tiny encoder');
  return Buffer.concat([Buffer.from([index, v.length]), v]);
}

/** The client preface and an empty SETTINGS frame: what opens an HTTP/2 connection. */
export function h2Open(): Buffer {
  return Buffer.concat([H2_PREFACE, frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))]);
}

/** A GET request on `streamId` (odd, increasing) for `path`, as one HEADERS frame ending the stream. */
export function h2Get(streamId: number, path: string, scheme: 'http' | 'https' = 'http'): Buffer {
  // Static table: 2 = :method GET, 6 = :scheme http, 7 = :scheme https, 4 = :path, 1 = :authority.
  const block = Buffer.concat([
    Buffer.from([0x82, scheme === 'http' ? 0x86 : 0x87]),
    literal(4, path),
    literal(1, 'localhost'),
  ]);
  return frame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, streamId, block);
}

/**
 * A POST request on `streamId` for `path` whose body never comes (HEADERS without END_STREAM), with
 * an API key: what a client whose stream is reset mid-request leaves behind.
 */
export function h2PostHead(streamId: number, path: string, apiKey: string): Buffer {
  // Static table: 3 = :method POST, 6 = :scheme http, 4 = :path, 1 = :authority, 31 = content-type.
  const auth = Buffer.from(`apikey ${apiKey}`, 'latin1');
  const block = Buffer.concat([
    Buffer.from([0x83, 0x86]),
    literal(4, path),
    literal(1, 'localhost'),
    // A literal with a new name (authorization is static entry 23, past this encoder's 4-bit prefix).
    Buffer.from([0x00, 13]),
    Buffer.from('authorization', 'latin1'),
    Buffer.from([auth.length]),
    auth,
  ]);
  return frame(FRAME_HEADERS, FLAG_END_HEADERS, streamId, block);
}

/** RST_STREAM (CANCEL) for `streamId`. */
export function h2Reset(streamId: number): Buffer {
  const code = Buffer.alloc(4);
  code.writeUInt32BE(CANCEL, 0);
  return frame(FRAME_RST_STREAM, 0, streamId, code);
}

/** A raw connection to the server: cleartext (h2c prior knowledge or HTTP/1) or TLS with ALPN `alpn`. */
export function rawConnect(port: number, tls?: { alpn: string }): Promise<Socket> {
  return withTimeout(
    new Promise<Socket>((resolve, reject) => {
      const s =
        tls === undefined
          ? netConnect({ host: '127.0.0.1', port }, () => resolve(s))
          : tlsConnect(
              {
                host: '127.0.0.1',
                port,
                ALPNProtocols: [tls.alpn],
                rejectUnauthorized: false,
                servername: 'localhost',
              },
              () => resolve(s),
            );
      s.once('error', reject);
      s.on('data', () => undefined); // read and discard what the server says
    }),
    5000,
    'a raw connection',
  );
}

/** Resolves when `socket` has closed (either side). */
export function closedOf(socket: Socket, ms = 5000, what = 'the connection to close'): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => socket.once('close', () => resolve())), ms, what);
}

/**
 * `n` WebSocket subscribers of one channel. `publish` sends numbered publications through the
 * server API; `verify` awaits every one of them at every subscriber, in order, exactly once.
 */
export class HonestSubscribers {
  private published = 0;

  private constructor(
    private readonly srv: TestServer,
    readonly channel: string,
    readonly clients: WsClient[],
  ) {}

  static async start(srv: TestServer, n = 20, channel = 'honest.news'): Promise<HonestSubscribers> {
    const clients = await Promise.all(Array.from({ length: n }, () => WsClient.subscribed(srv.wsUrl, channel)));
    return new HonestSubscribers(srv, channel, clients);
  }

  async publish(count = 1): Promise<void> {
    for (let i = 0; i < count; i++) {
      const n = this.published++;
      const r = await api(this.srv.url, 'publish', { channel: this.channel, data: { n } });
      expect(r.status).toBe(200);
    }
  }

  async verify(ms = 10_000): Promise<void> {
    const want = Array.from({ length: this.published }, (_, i) => i);
    for (const c of this.clients) {
      const got = await c.waitForCount(
        (f) => f['push'] === 'pub' && f['stream'] === this.channel,
        this.published,
        'every publication at an honest subscriber',
        ms,
      );
      expect(got.map((f) => (f['data'] as { n: number }).n)).toEqual(want);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}

/** Publishes to the honest subscribers every `everyMs` while `attack` runs, then verifies them. */
export async function duringAttack(honest: HonestSubscribers, attack: Promise<unknown>, everyMs = 20): Promise<void> {
  let done = false;
  const publishing = (async () => {
    while (!done) {
      await honest.publish(1);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  try {
    await attack;
  } finally {
    done = true;
    await publishing;
  }
  await honest.publish(1); // the sentinel: once it arrives, everything before it must have
  await honest.verify();
}

/** Waits until the server holds no more client connections than `baseline` (the honest ones). */
export async function backToBaseline(srv: TestServer, baseline: number, ms = 10_000): Promise<void> {
  const s = srv.server;
  const held = (): string =>
    `sessions ${s.hub.sessions.size}, sse ${s.sse.connectionCount}, stream ${s.stream.connectionCount}, ` +
    `poll ${s.poll.connectionCount}`;
  const done = (): boolean =>
    s.hub.sessions.size <= baseline &&
    s.sse.connectionCount === 0 &&
    s.stream.connectionCount === 0 &&
    s.poll.connectionCount === 0;
  try {
    await until(done, 'the server to hold only the honest connections', ms);
  } catch {
    throw new Error(`after ${ms} ms the server still holds more than the ${baseline} honest connections: ${held()}`);
  }
}
