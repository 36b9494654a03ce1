/**
 * The WebSocket of Herald's `GET /api/ws` (socket-caller.ts), on `ws`: text frames, no extensions.
 * A refused upgrade keeps its HTTP status and Herald's JSON error body (401 wrong key, 404 an older
 * server), read from `ws`'s `unexpected-response`. Text sent in one turn of the event loop leaves in
 * one socket write: the socket is corked from the first send of a turn until `setImmediate`.
 */
import type { IncomingMessage } from 'node:http';
import type { RequestOptions } from 'node:https';
import type { Socket } from 'node:net';
import { WebSocket, type ClientOptions, type RawData } from 'ws';

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
  readonly tls?: RequestOptions | undefined;
}

/** What the server said in its 101: its `limits.maxApiBodySize` and in-flight bound. */
export interface ServerLimits {
  readonly maxFrameBytes: number | undefined;
  readonly maxInFlight: number | undefined;
}

/** How long a close handshake may take before the socket is destroyed, in ms. */
const CLOSE_TIMEOUT = 1000;
/** Characters of a refused upgrade's body kept. */
const MAX_REFUSAL_BODY = 4096;

/** Opens the WebSocket; rejects with UpgradeRefused or the connection's error. */
export function openSocket(opts: OpenOptions, events: SocketEvents): Promise<ApiWebSocket> {
  return new Promise((resolve, reject) => {
    // `ws` 8.23 takes `closeTimeout`; @types/ws 8.18 does not list it yet.
    const options: ClientOptions & { closeTimeout: number } = {
      ...((opts.url.protocol === 'https:' ? opts.tls : undefined) as ClientOptions | undefined),
      headers: { ...opts.headers },
      handshakeTimeout: opts.timeout,
      perMessageDeflate: false,
      closeTimeout: CLOSE_TIMEOUT,
    };
    const ws = new WebSocket(opts.url, options);
    let upgrade: IncomingMessage | undefined;
    let error: Error | undefined;
    ws.on('upgrade', (res: IncomingMessage) => (upgrade = res));
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < MAX_REFUSAL_BODY) body += chunk;
      });
      res.on('end', () => {
        reject(new UpgradeRefused(res.statusCode ?? 0, body));
        ws.terminate();
      });
      res.on('error', (err) => {
        reject(err);
        ws.terminate();
      });
    });
    ws.on('error', (err) => (error ??= err));
    ws.on('close', () => reject(error ?? new Error('the connection closed during the upgrade')));
    ws.on('open', () => {
      ws.removeAllListeners();
      const res = upgrade as IncomingMessage; // 'upgrade' comes before 'open'
      resolve(new ApiWebSocket(ws, res.socket, events, limitsOf(res)));
    });
  });
}

/** The limits the 101 names (`Herald-Max-Frame-Bytes`, `Herald-Max-In-Flight`). */
function limitsOf(res: IncomingMessage): ServerLimits {
  return {
    maxFrameBytes: positive(res.headers['herald-max-frame-bytes']),
    maxInFlight: positive(res.headers['herald-max-in-flight']),
  };
}

/** A header's value as a positive integer, or undefined. */
function positive(value: string | string[] | undefined): number | undefined {
  const n = Number(Array.isArray(value) ? value[0] : value);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

export class ApiWebSocket {
  /** The socket is corked until the end of this turn of the event loop. */
  private corked = false;
  /** Why the connection ends, when this side ended it or the socket failed first. */
  private why: string | undefined;

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded socket under `ws`: corked to batch a turn's frames, unreferenced when idle. */
    private readonly socket: Socket,
    events: SocketEvents,
    readonly limits: ServerLimits,
  ) {
    const failed = (err: Error): void => {
      this.why ??= `connection error: ${err.message}`;
    };
    // `binaryType` is 'nodebuffer': a message is one Buffer, its fragments joined.
    ws.on('message', (data: RawData) => events.message((data as Buffer).toString()));
    // `ws` reports a socket error only as an abnormal close (1006): the socket says what it was.
    socket.on('error', failed);
    ws.on('error', failed);
    ws.on('close', (code: number, reason: Buffer) => {
      const abnormal = code === 1006;
      const why = reason.length > 0 ? ` ${reason.toString()}` : '';
      events.closed(
        this.why ?? (abnormal ? 'the connection closed' : `the server closed the connection (${code}${why})`),
        abnormal ? undefined : code,
      );
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends a text frame; the frames of this turn leave together. */
  send(text: string): void {
    if (!this.open) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.ws.send(text);
  }

  /** Keeps the process alive (requests in flight) or not (idle). */
  ref(on: boolean): void {
    if (on) this.socket.ref();
    else this.socket.unref();
  }

  /** Closes with 1000; the socket is destroyed if the server does not close its side soon. */
  close(): void {
    if (!this.open) return;
    this.why ??= 'closed by the client';
    this.ws.close(1000);
  }

  destroy(): void {
    this.why ??= 'destroyed by the client';
    this.ws.terminate();
  }
}
