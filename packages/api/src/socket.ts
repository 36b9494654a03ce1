/**
 * A minimal WebSocket client for Herald's `GET /api/ws` (RFC 6455, text frames, no extensions): the
 * upgrade goes through `node:http`/`node:https`, so that a refused upgrade keeps its HTTP status and
 * Herald's JSON error body (401 wrong key, 404 an older server); then frames are read and written
 * on the socket directly. Text written in one turn of the event loop leaves in one socket write.
 *
 * Client frames are masked as the RFC requires, each with a fresh random key, taken from a pool of
 * random bytes refilled 8 KiB at a time (as `ws` does).
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';

export interface SocketEvents {
  /** A text frame arrived. */
  message(text: string): void;
  /** The connection ended (either side, or an error); `reason` for humans, `code` the server's close code. */
  closed(reason: string, code: number | undefined): void;
}

/** The upgrade was answered with an HTTP status other than 101. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`the upgrade was answered with HTTP ${status}`);
  }
}

export interface OpenOptions {
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  /** Time limit of the upgrade, in ms. */
  readonly timeout: number;
  /** TLS options for https URLs (ca, servername, ...). */
  readonly tls?: https.RequestOptions | undefined;
}

/** Opens the WebSocket; rejects with UpgradeRefused or the connection's error. */
export function openSocket(opts: OpenOptions, events: SocketEvents): Promise<ApiWebSocket> {
  const secure = opts.url.protocol === 'https:';
  const key = randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request({
      ...(secure ? (opts.tls ?? {}) : {}),
      host: opts.url.hostname,
      port: opts.url.port,
      path: opts.url.pathname,
      method: 'GET',
      agent: false,
      timeout: opts.timeout,
      headers: {
        ...opts.headers,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-key': key,
        'sec-websocket-version': '13',
      },
    });
    req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      // The request's `timeout` stays set on the socket after the upgrade: an idle connection is fine.
      socket.setTimeout(0);
      socket.setNoDelay(true);
      const limits = {
        maxFrameBytes: positive(res.headers['herald-max-frame-bytes']),
        maxInFlight: positive(res.headers['herald-max-in-flight']),
      };
      resolve(new ApiWebSocket(socket, head, events, limits));
    });
    req.on('response', (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 4096) body += chunk;
      });
      res.on('end', () => reject(new UpgradeRefused(res.statusCode ?? 0, body)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('the upgrade timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}

/** A header's value as a positive integer, or undefined. */
function positive(value: string | string[] | undefined): number | undefined {
  const n = Number(Array.isArray(value) ? value[0] : value);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** What the server said in its 101: its `limits.maxApiBodySize` and in-flight bound. */
export interface ServerLimits {
  readonly maxFrameBytes: number | undefined;
  readonly maxInFlight: number | undefined;
}

const MAX_HEADER = 14;
const randomPool = Buffer.alloc(8192);
let randomAt = randomPool.length;

/** A fresh 4-byte mask key. */
function maskKey(): Buffer {
  if (randomAt + 4 > randomPool.length) {
    randomFillSync(randomPool);
    randomAt = 0;
  }
  randomAt += 4;
  return randomPool.subarray(randomAt - 4, randomAt);
}

export class ApiWebSocket {
  private buf: Buffer = Buffer.alloc(0);
  private out: string[] = [];
  private flushing = false;
  private ended = false;
  /** Pieces of a fragmented message. */
  private fragments: Buffer[] = [];

  constructor(
    private readonly socket: Socket,
    head: Buffer,
    private readonly events: SocketEvents,
    readonly limits: ServerLimits = { maxFrameBytes: undefined, maxInFlight: undefined },
  ) {
    socket.on('data', (chunk: Buffer) => this.data(chunk));
    socket.on('error', (err) => this.end(`connection error: ${err.message}`));
    socket.on('close', () => this.end('the connection closed'));
    if (head.length > 0) this.data(head);
  }

  get open(): boolean {
    return !this.ended;
  }

  /** Queues a text frame; the frames of this turn leave together. */
  send(text: string): void {
    if (this.ended) return;
    this.out.push(text);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  /** Keeps the process alive (requests in flight) or not (idle). */
  ref(on: boolean): void {
    if (on) this.socket.ref();
    else this.socket.unref();
  }

  /** Closes with 1000 and ends the socket. */
  close(): void {
    if (this.ended) return;
    this.flush();
    // The close frame (1000) and a FIN; the socket is destroyed if the server does not close its side soon.
    this.socket.end(this.frame(0x8, Buffer.from([0x03, 0xe8])));
    const socket = this.socket;
    setTimeout(() => socket.destroy(), 1000).unref();
    this.end('closed by the client', undefined, false);
  }

  destroy(): void {
    this.socket.destroy();
    this.end('destroyed by the client');
  }

  private flush(): void {
    this.flushing = false;
    if (this.ended || this.out.length === 0) return;
    const frames = this.out.map((t) => this.frame(0x1, Buffer.from(t)));
    this.out = [];
    this.socket.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames));
  }

  private end(reason: string, code?: number, destroy = true): void {
    if (this.ended) return;
    this.ended = true;
    this.out = [];
    if (destroy) this.socket.destroy();
    this.events.closed(reason, code);
  }

  private data(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (!this.ended) {
      const buf = this.buf;
      if (buf.length < 2) return;
      const b0 = buf[0] as number;
      const b1 = buf[1] as number;
      let len = b1 & 0x7f;
      let start = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        start = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = buf.readUInt32BE(2) * 2 ** 32 + buf.readUInt32BE(6);
        start = 10;
      }
      if ((b1 & 0x80) !== 0 || start > MAX_HEADER) {
        this.end('the server sent a masked frame');
        return;
      }
      if (buf.length < start + len) return;
      const payload = buf.subarray(start, start + len);
      this.buf = buf.subarray(start + len);
      this.frameIn(b0 & 0x0f, (b0 & 0x80) !== 0, payload);
    }
  }

  private frameIn(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case 0x0:
      case 0x1:
      case 0x2:
        this.fragments.push(payload);
        if (!fin) return;
        {
          const whole = this.fragments.length === 1 ? payload : Buffer.concat(this.fragments);
          this.fragments = [];
          this.events.message(whole.toString('utf8'));
        }
        return;
      case 0x8: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        const why = payload.subarray(2).toString('utf8');
        // Echo the close frame, then the server closes the TCP connection (or the timer does).
        const socket = this.socket;
        if (!socket.destroyed) socket.end(this.frame(0x8, payload.subarray(0, 2)));
        setTimeout(() => socket.destroy(), 1000).unref();
        this.end(`the server closed the connection (${code}${why !== '' ? ` ${why}` : ''})`, code, false);
        return;
      }
      case 0x9:
        this.socket.write(this.frame(0xa, payload));
        return;
      default:
        return; // pong
    }
  }

  /** A final client frame: header, mask key, masked payload. */
  private frame(opcode: number, payload: Buffer): Buffer {
    const len = payload.length;
    const headerLen = len < 126 ? 2 : len < 65_536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(headerLen + 4 + len);
    frame[0] = 0x80 | opcode;
    if (len < 126) frame[1] = 0x80 | len;
    else if (len < 65_536) {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    } else {
      frame[1] = 0x80 | 127;
      frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
      frame.writeUInt32BE(len >>> 0, 6);
    }
    const mask = maskKey();
    mask.copy(frame, headerLen);
    const at = headerLen + 4;
    for (let i = 0; i < len; i++) frame[at + i] = (payload[i] as number) ^ (mask[i & 3] as number);
    return frame;
  }
}
