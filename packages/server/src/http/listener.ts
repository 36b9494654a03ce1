/**
 * The socket side of `HeraldServer.listen()`: which Node server accepts the connections, and how
 * they are closed at shutdown. Three modes, one port each:
 *
 * - `http`: HTTP/1.1 (`node:http`).
 * - `https`: TLS with ALPN: `h2`, falling back to `http/1.1` (where WebSocket upgrades live, since
 *   browsers open WebSockets over HTTP/1.1).
 * - `h2c`: cleartext HTTP/2 by prior knowledge *and* HTTP/1.1 on the same port: the first bytes of a
 *   connection tell them apart (the HTTP/2 connection preface is `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`).
 *
 * Every mode hands the same `request`/`upgrade` handlers the request: over HTTP/2 it is Node's
 * compatibility request/response (`Http2ServerRequest`/`Http2ServerResponse`), which has the part of
 * the `IncomingMessage`/`ServerResponse` API the transports use (test/http2.test.ts runs them all).
 *
 * Every mode also bounds what a socket may hold before it asks for anything (docs/configuration.md,
 * "Connection limit"; test/abuse-sockets.test.ts): at most `maxSockets` are open at once (more are
 * closed as they are accepted), one that has not sent a request head (or HTTP/2 preface) within
 * `headersTimeout` of being accepted is destroyed (pending-sockets.ts), and a socket whose request
 * is malformed or too slow is answered (HTTP/1 only) and destroyed, never left half-closed.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { noMetrics, type Metrics } from '../core/metrics.js';
import { PendingSockets } from './pending-sockets.js';

export type ListenerMode = 'http' | 'https' | 'h2c';

export interface ListenerHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * A malformed or timed-out HTTP/1 request, or a failed TLS handshake: for logging. The listener
   * answers (HTTP/1 only) and destroys the socket itself.
   */
  clientError(err: Error & { code?: string }, socket: Duplex): void;
  /** A handler threw: the response was answered with a 500 (or reset) already. */
  handlerError(err: unknown): void;
}

export interface ListenerOptions {
  /** PEM certificate chain and private key: TLS with ALPN h2 + http/1.1. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
  /** Without TLS: also accept cleartext HTTP/2 (prior knowledge) beside HTTP/1.1. */
  readonly h2c: boolean;
  /** Idle time after which a keep-alive HTTP/1.1 connection or an HTTP/2 session without streams is closed, in ms. */
  readonly keepAliveTimeout: number;
  /**
   * From accept, the time a socket has to send its first request head (HTTP/2: its preface), TLS
   * handshake included; and an HTTP/1.1 request its headers. In ms.
   */
  readonly headersTimeout: number;
  /** The time an HTTP/1.1 request has to arrive whole, body included, in ms (raised to `headersTimeout` if lower). */
  readonly requestTimeout: number;
  /** Sockets open at once, every protocol; one accepted past it is closed at once. */
  readonly maxSockets: number;
  readonly handlers: ListenerHandlers;
  /** Where the socket counts go (`herald_sockets_*`); nothing is kept when not given. */
  readonly metrics?: Metrics;
}

/** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const H2_MAX_CONCURRENT_STREAMS = 256;

/**
 * The sockets a port holds at most for `maxConnections` client connections: 10% more (64 at least),
 * so that the server API, health checks and the 503 that tells a client "too many connections" still
 * get through when the clients fill `limits.maxConnections`.
 */
export function socketLimit(maxConnections: number): number {
  return maxConnections + Math.max(64, Math.ceil(maxConnections / 10));
}

/**
 * The listener's metrics: `herald_sockets_open` (every protocol) and `herald_sockets_pending` (not
 * past their first request head yet; counted against limits.maxConnections) now;
 * `herald_sockets_refused_total` (closed at accept because `maxSockets` were open) and
 * `herald_sockets_timed_out_total` (asked for nothing within `headersTimeout` of being accepted).
 */
export const SOCKET_METRICS = {
  open: 'herald_sockets_open',
  pending: 'herald_sockets_pending',
  refused: 'herald_sockets_refused_total',
  timedOut: 'herald_sockets_timed_out_total',
} as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export class HttpListener {
  /** The server that accepts the TCP connections: it emits `connection` once per connection. */
  readonly server: net.Server;
  readonly mode: ListenerMode;
  /** h2c: the HTTP/1.1 side, fed the connections that do not start with the HTTP/2 preface. */
  private readonly h1: http.Server | undefined;
  /** The HTTP/2 sessions open now, with their open stream count. */
  private readonly sessions = new Map<http2.ServerHttp2Session, { streams: number }>();
  private readonly sockets = new Set<net.Socket>();
  private readonly pending: PendingSockets;

  constructor(private readonly opts: ListenerOptions) {
    const h = opts.handlers;
    const m = opts.metrics ?? noMetrics;
    const refused = m.counter(SOCKET_METRICS.refused, 'Sockets closed at accept: the listener held its most');
    const timedOut = m.counter(SOCKET_METRICS.timedOut, 'Sockets destroyed: no request head within headersTimeout');
    m.gauge(SOCKET_METRICS.open, 'TCP connections open, every protocol', () => this.sockets.size);
    m.gauge(SOCKET_METRICS.pending, 'TCP connections open that have not sent a request yet', () => this.pending.count);
    const pending = new PendingSockets(opts.headersTimeout, timedOut);
    this.pending = pending;
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      try {
        h.request(req, res);
      } catch (err) {
        h.handlerError(err);
        if (!res.headersSent) {
          res.writeHead(500, { 'Content-Type': 'application/json' });
          res.end('{"error":{"code":"HERALD_ERR_INTERNAL","message":"internal error"}}');
        } else res.destroy();
      }
    };
    // Over HTTP/2 the compatibility objects stand in for IncomingMessage/ServerResponse (see above).
    const onH2Request = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void =>
      onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse);
    // An HTTP/1 request head arrived: its socket is no longer pending (a no-op after the first).
    const onH1Request = (req: IncomingMessage, res: ServerResponse): void => {
      pending.settle(req.socket);
      onRequest(req, res);
    };
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      pending.settle(socket);
      h.upgrade(req, socket, head);
    };
    const onClientError = (err: Error & { code?: string }, socket: Duplex): void => {
      h.clientError(err, socket);
      answerClientError(err, socket);
    };
    const h2Options = { settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS } };
    const h1Timeouts = {
      keepAliveTimeout: opts.keepAliveTimeout,
      headersTimeout: opts.headersTimeout,
      // Node refuses a requestTimeout below headersTimeout (the config check says so first).
      requestTimeout: Math.max(opts.requestTimeout, opts.headersTimeout),
      // How often Node looks for HTTP/1 requests past those timeouts: a quarter of the shorter one.
      connectionsCheckingInterval: Math.min(30_000, Math.max(25, Math.floor(opts.headersTimeout / 4))),
    };

    if (opts.tls !== undefined) {
      this.mode = 'https';
      const server = http2.createSecureServer({
        ...h2Options,
        cert: opts.tls.cert,
        key: opts.tls.key,
        allowHTTP1: true,
        // The pending deadline closes a handshake that stalls, `headersTimeout` from accept; Node's
        // own handshake timer (reported through clientError, below) is only a backstop behind it.
        handshakeTimeout: opts.headersTimeout * 2,
      });
      // The HTTP/1.1 fallback is Node's http connection handling; it reads these from the server
      // (connectionsCheckingInterval when it starts listening).
      Object.assign(server, h1Timeouts);
      server.on(
        'request',
        (req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse) => {
          if (req instanceof http2.Http2ServerRequest) onH2Request(req, res as http2.Http2ServerResponse);
          else onH1Request(req, res as ServerResponse);
        },
      );
      server.on('upgrade', onUpgrade);
      // Node's HTTP/2 TLS server reports TLS errors (the handshake timeout among them) here too.
      server.on('clientError', onClientError);
      server.on('session', (session) => {
        this.track(session);
        // Pending until the client's preface and SETTINGS arrive, not just the TLS handshake.
        const tcp = tcpSocketOfTlsSession(session);
        if (tcp !== undefined) session.once('remoteSettings', () => pending.settle(tcp));
      });
      this.server = server;
      this.h1 = undefined;
    } else if (opts.h2c) {
      this.mode = 'h2c';
      const h1 = http.createServer(h1Timeouts);
      h1.on('request', onH1Request);
      h1.on('upgrade', onUpgrade);
      h1.on('clientError', onClientError);
      // h1 never listens itself; its connection tracking (closeIdleConnections, request timeouts)
      // starts on 'listening'.
      h1.emit('listening');
      const h2 = http2.createServer(h2Options);
      h2.on('request', onH2Request);
      h2.on('session', (session) => this.track(session));
      this.h1 = h1;
      this.server = net.createServer((socket) => {
        // A socket that never says enough to be told apart is destroyed by its pending deadline.
        sniff(socket, (isH2) => {
          if (isH2) {
            pending.settle(socket); // the preface is its first request
            h2.emit('connection', socket);
          } else h1.emit('connection', socket);
        });
      });
    } else {
      this.mode = 'http';
      const server = http.createServer(h1Timeouts);
      server.on('request', onH1Request);
      server.on('upgrade', onUpgrade);
      server.on('clientError', onClientError);
      this.server = server;
      this.h1 = server;
    }
    // Node closes a connection accepted past this at once (and emits 'drop').
    this.server.maxConnections = opts.maxSockets;
    this.server.on('drop', () => refused.inc());
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      pending.add(socket);
      (socket as TrackedSocket)[TRACKED_BY] = this;
      // A shared listener, not a closure per socket: idle memory per connection counts.
      socket.on('close', untrack);
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    const server = this.server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  get address(): AddressInfo | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  /** Open TCP connections (every protocol). */
  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Open TCP connections that have not sent their first request head (or HTTP/2 preface) yet. */
  get pendingCount(): number {
    return this.pending.count;
  }

  /** A socket closed: it is neither open nor pending any more. */
  forget(socket: net.Socket): void {
    this.sockets.delete(socket);
    this.pending.settle(socket);
  }

  /** Stops accepting connections; resolves once every connection has closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      if (this.h1 !== undefined && this.h1 !== this.server) this.h1.close();
    });
  }

  /**
   * Closes what is not busy: idle HTTP/1.1 keep-alive connections and connections that have sent
   * nothing yet now, and every HTTP/2 session gracefully (GOAWAY: its open streams finish, no new
   * ones start).
   */
  closeIdleConnections(): void {
    // The TLS server's HTTP/1.1 fallback has it too (Node >= 18.19).
    (this.server as net.Server & { closeIdleConnections?: () => void }).closeIdleConnections?.();
    if (this.h1 !== undefined && this.h1 !== this.server) this.h1.closeIdleConnections();
    for (const session of this.sessions.keys()) session.close();
    // Node counts a connection that has not sent a request yet as busy (its headersTimeout runs), so
    // one that has sent nothing at all would hold a shutdown for its whole timeout.
    for (const socket of this.sockets) if (socket.bytesRead === 0) socket.destroy();
  }

  /** Drops every connection. */
  closeAllConnections(): void {
    for (const session of this.sessions.keys()) session.destroy();
    for (const socket of this.sockets) socket.destroy();
  }

  /** Counts a session's streams, and closes it after `keepAliveTimeout` idle with none open. */
  private track(session: http2.ServerHttp2Session): void {
    const state = { streams: 0 };
    this.sessions.set(session, state);
    session.on('stream', (stream) => {
      state.streams++;
      stream.once('close', () => state.streams--);
    });
    session.once('close', () => this.sessions.delete(session));
    session.on('error', () => undefined); // reported as 'sessionError' on the server; the session closes
    session.setTimeout(this.opts.keepAliveTimeout, () => {
      if (state.streams === 0) session.close();
    });
  }
}

/**
 * Reads the first bytes of a cleartext connection until they match the HTTP/2 preface or cannot,
 * then gives the socket (with those bytes put back) to `route`. A connection that says nothing is
 * closed by its pending deadline (pending-sockets.ts).
 */
function sniff(socket: net.Socket, route: (isH2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const cleanup = (): void => {
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('end', onError);
  };
  const onError = (): void => {
    cleanup();
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    const isH2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
    if (isH2 && n < PREFACE.length) return; // could still be either
    cleanup();
    socket.pause();
    socket.unshift(seen);
    route(isH2);
    // The HTTP/2 session reads the put-back bytes itself; the HTTP/1 parser gets them as 'data'.
    if (!isH2) socket.resume();
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('end', onError);
}

/**
 * Answers a malformed or timed-out HTTP/1 request the way Node does by default (400, 408 or 431)
 * and destroys the socket: `end()` alone would leave it open for as long as the client keeps its
 * side open. A TLS socket that has not completed its handshake (Node reports TLS errors, its
 * handshake timeout among them, as `clientError` on an HTTP/2 server) or that speaks HTTP/2 gets no
 * HTTP/1 bytes: they could not be delivered, and would wait forever in its write buffer.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  // alpnProtocol: null until the handshake completes, false when no protocol was negotiated.
  const isH1 =
    !(socket instanceof tls.TLSSocket) || socket.alpnProtocol === 'http/1.1' || socket.alpnProtocol === false;
  const response = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (isH1 && socket.writable && response?.headersSent !== true) {
    socket.write(`HTTP/1.1 ${statusLineOf(err.code)}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }
  socket.destroy();
}

/** Node's answers to its HTTP/1 parser errors; any other is 400. */
const CLIENT_ERROR_STATUS: ReadonlyMap<string | undefined, string> = new Map([
  ['ERR_HTTP_REQUEST_TIMEOUT', '408 Request Timeout'],
  ['HPE_HEADER_OVERFLOW', '431 Request Header Fields Too Large'],
]);

function statusLineOf(code: string | undefined): string {
  return CLIENT_ERROR_STATUS.get(code) ?? '400 Bad Request';
}

/** The TCP socket under an HTTP/2 session over TLS (see acceptedSocketOf in pending-sockets.ts). */
function tcpSocketOfTlsSession(session: http2.ServerHttp2Session): net.Socket | undefined {
  // session.socket is a proxy of the TLS socket; reading a property reads the TLS socket's.
  const parent = (session.socket as unknown as { _parent?: unknown })._parent;
  return parent instanceof net.Socket ? parent : undefined;
}

const TRACKED_BY = Symbol('herald.trackedBy');
type TrackedSocket = net.Socket & { [TRACKED_BY]?: HttpListener };

function untrack(this: net.Socket): void {
  (this as TrackedSocket)[TRACKED_BY]?.forget(this);
}
