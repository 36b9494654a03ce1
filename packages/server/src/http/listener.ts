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
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

export type ListenerMode = 'http' | 'https' | 'h2c';

export interface ListenerHandlers {
  request(req: IncomingMessage, res: ServerResponse): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** A malformed HTTP/1 request (the socket is still open). */
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
  readonly handlers: ListenerHandlers;
}

/** Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const H2_MAX_CONCURRENT_STREAMS = 256;

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

  constructor(private readonly opts: ListenerOptions) {
    const h = opts.handlers;
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
    const h2Options = { settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS } };

    if (opts.tls !== undefined) {
      this.mode = 'https';
      const server = http2.createSecureServer({
        ...h2Options,
        cert: opts.tls.cert,
        key: opts.tls.key,
        allowHTTP1: true,
      });
      // The HTTP/1.1 fallback is Node's http connection handling; it reads these from the server.
      Object.assign(server, { keepAliveTimeout: opts.keepAliveTimeout });
      server.on(
        'request',
        (req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse) => {
          if (req instanceof http2.Http2ServerRequest) onH2Request(req, res as http2.Http2ServerResponse);
          else onRequest(req, res as ServerResponse);
        },
      );
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => h.upgrade(req, socket, head));
      server.on('clientError', (err: Error, socket: Duplex) => h.clientError(err, socket));
      server.on('session', (session) => this.track(session));
      this.server = server;
      this.h1 = undefined;
    } else if (opts.h2c) {
      this.mode = 'h2c';
      const h1 = http.createServer({ keepAliveTimeout: opts.keepAliveTimeout });
      h1.on('request', onRequest);
      h1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => h.upgrade(req, socket, head));
      h1.on('clientError', (err: Error, socket: Duplex) => h.clientError(err, socket));
      // h1 never listens itself; its connection tracking (closeIdleConnections, request timeouts)
      // starts on 'listening'.
      h1.emit('listening');
      const h2 = http2.createServer(h2Options);
      h2.on('request', onH2Request);
      h2.on('session', (session) => this.track(session));
      this.h1 = h1;
      this.server = net.createServer((socket) => {
        sniff(socket, this.opts.keepAliveTimeout, (isH2) => {
          if (isH2) h2.emit('connection', socket);
          else h1.emit('connection', socket);
        });
      });
    } else {
      this.mode = 'http';
      const server = http.createServer({ keepAliveTimeout: opts.keepAliveTimeout });
      server.on('request', onRequest);
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => h.upgrade(req, socket, head));
      server.on('clientError', (err: Error, socket: Duplex) => h.clientError(err, socket));
      this.server = server;
      this.h1 = server;
    }
    const sockets = this.sockets;
    this.server.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      (socket as TrackedSocket)[TRACKED_IN] = sockets;
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
 * then gives the socket (with those bytes put back) to `route`. A connection that says nothing
 * within `timeoutMs` is closed.
 */
function sniff(socket: net.Socket, timeoutMs: number, route: (isH2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const cleanup = (): void => {
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('end', onError);
    socket.setTimeout(0);
    socket.off('timeout', onError);
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
  socket.setTimeout(timeoutMs);
  socket.on('timeout', onError);
}

const TRACKED_IN = Symbol('herald.trackedIn');
type TrackedSocket = net.Socket & { [TRACKED_IN]?: Set<net.Socket> };

function untrack(this: net.Socket): void {
  (this as TrackedSocket)[TRACKED_IN]?.delete(this);
}
