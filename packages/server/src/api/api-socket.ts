/**
 * `GET /api/ws`: the server API over one long-lived WebSocket, so that a backend publishing one
 * event at a time pays for a frame instead of an HTTP request (head parsing, API-key hash, response
 * head) per publication. The API key is checked once, at the upgrade.
 *
 * - A request is `{"id":N,"method":"publish","params":{...}}` (a frame may also hold a JSON array of
 *   requests); the answer is `{"id":N,"result":...}` or `{"id":N,"error":{code,message}}`, the same
 *   JSON the HTTP method answers. Answers ready in the same turn of the event loop go out together:
 *   one frame holding one answer object, or an array of them. They may come in any order: match `id`.
 * - Every method runs exactly as `POST /api/<method>` (same validation, limits, idempotency keys):
 *   a `publish` is answered only once the engine has stored it. Requests start in the order they
 *   arrive, so publications to one channel get offsets in frame order (see batch.ts for why).
 * - Bounds: at most `maxInFlight` requests run at once per connection; at that point the socket is
 *   no longer read (TCP back-pressure) and requests already read wait their turn (at most
 *   10,000, past that they are refused with HERALD_ERR_TOO_MANY_COMMANDS). A frame larger than
 *   `maxFrameSize` closes the connection with 1009. Answers the backend does not read pile up in the
 *   socket; past `maxQueueBytes` the connection is closed with 3002 SLOW (in-flight publications are
 *   still applied: resend them with their idempotency keys). Pinged every `pingInterval` (or
 *   `pingTimeout`, if longer); a connection that sent nothing, pongs included, from one ping to the
 *   next is dropped.
 * - At shutdown (`shutdown()`), requests already running are answered, later ones are refused with
 *   HERALD_ERR_SHUTTING_DOWN, then the connection is closed with 3001.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { DisconnectCodes } from '@herald/protocol';
import type { Logger } from '../core/logger.js';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { rejectUpgrade } from '../http/admission.js';
import type { ApiMethod } from './batch.js';
import { ApiConnection, ApiWebSocket, type ApiConnectionOwner } from './api-connection.js';

export { API_SOCKET_MAX_BATCH } from './api-connection.js';

/** Requests of one connection that may run at once (default of `maxInFlight`). */
export const API_SOCKET_MAX_IN_FLIGHT = 1000;

export interface ApiSocketOptions {
  /** The method called `name`, or undefined when there is none. */
  readonly methodOf: (name: string) => ApiMethod | undefined;
  /** Whether an `Authorization` header carries a valid API key. */
  readonly authorized: (header: string | undefined) => boolean;
  /** Counts a finished request by method and status (the code's HTTP status), with its latency. */
  readonly observe: (method: string, status: number, start: number) => void;
  readonly shuttingDown: () => boolean;
  readonly logger: Logger;
  /** Largest frame in bytes (limits.maxApiBodySize, the HTTP body limit). */
  readonly maxFrameSize: number;
  /** Unsent answer bytes beyond which the connection is closed (limits.maxQueueBytes). */
  readonly maxQueueBytes: number;
  readonly pingInterval: number;
  readonly pingTimeout: number;
  readonly maxInFlight?: number;
  readonly clock?: Clock;
}

export class ApiSocket implements ApiConnectionOwner {
  readonly logger: Logger;
  readonly maxInFlight: number;
  readonly maxQueueBytes: number;
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<ApiConnection>();
  private readonly heartbeat: TimerHandle;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly opts: ApiSocketOptions) {
    this.logger = opts.logger;
    this.maxInFlight = opts.maxInFlight ?? API_SOCKET_MAX_IN_FLIGHT;
    this.maxQueueBytes = opts.maxQueueBytes;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameSize,
      perMessageDeflate: false,
      clientTracking: false,
      autoPong: false,
      WebSocket: ApiWebSocket,
    });
    // The 101 says the limits, so that a client sizes its frames and window to them.
    this.wss.on('headers', (headers: string[]) => {
      headers.push(`Herald-Max-Frame-Bytes: ${opts.maxFrameSize}`, `Herald-Max-In-Flight: ${this.maxInFlight}`);
    });
    const clock = opts.clock ?? systemClock;
    this.heartbeat = clock.setInterval(() => this.ping(), Math.max(opts.pingInterval, opts.pingTimeout));
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  methodOf(name: string): ApiMethod | undefined {
    return this.opts.methodOf(name);
  }

  observe(name: string, status: number, start: number): void {
    this.opts.observe(name, status, start);
  }

  /** The upgrade of `GET /api/ws`: refused (401, 503) unless the key is right and the server runs. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.opts.shuttingDown()) {
      rejectUpgrade(socket, {
        status: 503,
        error: { code: 'HERALD_ERR_SHUTTING_DOWN', message: 'the server is shutting down' },
      });
      return;
    }
    if (!this.opts.authorized(req.headers.authorization)) {
      this.logger.info(
        { code: 'HERALD_ERR_API_UNAUTHORIZED', method: 'ws', ip: req.socket.remoteAddress },
        'api: unauthorized',
      );
      rejectUpgrade(socket, {
        status: 401,
        error: {
          code: 'HERALD_ERR_API_UNAUTHORIZED',
          message: 'missing or wrong API key (Authorization: apikey <key>, or Bearer <key>)',
        },
      });
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new ApiConnection(ws as ApiWebSocket, socket, this);
      (ws as ApiWebSocket).conn = conn;
      this.conns.add(conn);
      if (this.opts.shuttingDown()) conn.drain();
    });
  }

  /** A connection ended (either side). */
  forget(conn: ApiConnection): void {
    conn.closed();
    this.conns.delete(conn);
    if (this.conns.size === 0) for (const w of this.drainWaiters.splice(0)) w();
  }

  /** Every connection answers what runs and closes (3001); resolves once all have closed. */
  shutdown(): Promise<void> {
    for (const conn of this.conns) conn.drain();
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Drops every connection still open. */
  close(): void {
    this.heartbeat.cancel();
    for (const conn of this.conns) conn.ws.terminate();
    this.wss.close();
  }

  /** Pings every connection; ends those silent since the last ping (unless the server stopped reading them). */
  private ping(): void {
    for (const conn of this.conns) {
      if (!conn.alive && !conn.isPaused) {
        this.logger.info({ code: DisconnectCodes.STALE.code }, 'api socket: no pong within pingTimeout, dropped');
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      if (conn.ws.readyState === 1) conn.ws.ping();
    }
  }
}
