/**
 * What the two streaming HTTP transports (`GET /sse`, `GET /stream`) share: admission, the query,
 * anti-buffering headers, initial padding, heartbeats on idle responses, the session, and the
 * subscriptions named in the request. Each transport brings its wire format (`StreamFormat`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { PROTOCOL_VERSION, type StreamPosition, type SubscribeResult } from '@herald/protocol';
import type { FrameEncoder } from '../core/encoder.js';
import type { Publication } from '../core/engine.js';
import { toErrorBody } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import type { Session } from '../core/session.js';
import type { TransportConnection, TransportTraits } from '../core/transport.js';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import type { Admission } from '../http/admission.js';
import type { Cors } from '../http/cors.js';
import { acceptTransportRequest, identify, openFailed } from '../http/accept.js';
import type { TransportQuery } from '../http/query.js';
import type { SessionTokens } from '../http/session-token.js';
import { SharedHeaderBlock } from '../http/shared-header.js';
import { detach, detachable } from '../http/detach.js';
import { h2Stream, responseGone } from '../http/request-gone.js';
import { directFd, writeFrame } from './socket-write.js';
import { DrainWaiters } from './drain-waiters.js';

/** An encoder for one streaming connection, with the frames only streams have. */
export interface StreamEncoder extends FrameEncoder {
  /** A subscription is active: its position, then (SSE) its recovered/backlog publications. */
  subscribed(result: Omit<SubscribeResult, 'publications'>, publications: readonly Publication[]): Uint8Array;
  /** A subscription ended (error or unsubscribe). */
  unsubscribed(stream: string, error?: { code: string; message: string }): Uint8Array;
}

/** A streaming response takes commands through `POST /send` naming its client id. */
const STREAM_TRAITS: TransportTraits = { readsCommands: false, sendCommands: true, stateless: false };

export interface StreamFormat {
  readonly name: string;
  readonly contentType: string;
  readonly heartbeat: Uint8Array;
  /** Bytes written first: `bytes` of padding (0 = none) and, for SSE, the `retry:` hint. */
  preamble(paddingBytes: number): Uint8Array;
  /**
   * The encoder of one connection (SSE tracks the connection's cursors for its event ids, starting
   * from `seed`, the cursors the request resumes from).
   */
  encoder(seed?: ReadonlyMap<string, StreamPosition>): StreamEncoder;
  /** Reads the cursor a reconnecting client sends in a header (SSE: Last-Event-ID). */
  lastEventId?(req: IncomingMessage): string | undefined;
}

export interface StreamingTransportOptions {
  readonly hub: Hub;
  readonly admission: Admission;
  readonly cors: Cors;
  readonly tokens: SessionTokens;
  readonly heartbeatInterval: number;
  readonly padding: number;
  readonly maxChannels: number;
  /** How long a closed stream's last bytes may take to be read before the socket is dropped. */
  readonly closeTimeout?: number;
  readonly clock?: Clock;
}

/** A streaming connection: what the two kinds below share. */
abstract class StreamConnection implements TransportConnection {
  lastWrite: number;
  session: Session | undefined;

  constructor(
    readonly encoder: StreamEncoder,
    readonly transport: StreamingTransport,
  ) {
    this.lastWrite = transport.clock.now();
  }

  get name(): string {
    return this.transport.format.name;
  }

  get traits(): TransportTraits {
    return STREAM_TRAITS;
  }

  abstract write(data: Uint8Array): void;
  abstract bufferedAmount(): number;
  abstract close(): void;

  subscribed(result: Omit<SubscribeResult, 'publications'>): void {
    this.session?.enqueue(this.encoder.subscribed(result, []));
  }

  unsubscribed(stream: string): void {
    this.session?.enqueue(this.encoder.unsubscribed(stream));
  }
}

/**
 * The fast path of HTTP/1.x streams: the socket, taken from node:http once the header is sent
 * (`http/detach.ts`). Frames are written straight to it, chunk-framed by the transport
 * (`StreamingTransport.chunk`): `res.write` would cost about as much CPU again as the socket write
 * itself on the fan-out path (SSE is to cost within 10 % of WebSocket, docs/performance.md), and node:http's
 * per-connection state would cost ~4 KiB per idle connection.
 */
class SocketConnection extends StreamConnection {
  private ended = false;
  private closeTimer: TimerHandle | undefined;
  /** See `writeFrame`. */
  private readonly fd: number;

  constructor(
    readonly socket: Socket,
    /** Frames each write as an HTTP/1.1 chunk (false: HTTP/1.0, the body ends at close). */
    private readonly chunked: boolean,
    encoder: StreamEncoder,
    transport: StreamingTransport,
  ) {
    super(encoder, transport);
    this.fd = directFd(socket);
  }

  write(data: Uint8Array): void {
    if (this.ended || data.byteLength === 0 || this.socket.destroyed) return;
    this.lastWrite = this.transport.clock.now();
    writeFrame(this.socket, this.chunked ? this.transport.chunk(data) : data, this.fd);
  }

  bufferedAmount(): number {
    return this.socket.writableLength;
  }

  onDrained(drained: () => void): boolean {
    if (this.ended || !this.socket.writableNeedDrain) return false;
    this.socket.once('drain', drained);
    return true;
  }

  /** Ends the body (last chunk) and the connection; a client that does not read it within closeTimeout is dropped. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    const socket = this.socket;
    if (socket.destroyed) return;
    // Closed once the last bytes are handed to the kernel, as node:http does after `Connection: close`.
    socket.once('finish', destroySocket);
    if (this.chunked) socket.end(LAST_CHUNK);
    else socket.end();
    this.closeTimer = this.transport.clock.setTimeout(() => socket.destroy(), this.transport.closeTimeout);
  }

  closed(): void {
    this.closeTimer?.cancel();
  }
}

const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/**
 * Through node:http's response: HTTP/2, and HTTP/1.x streams that could not be detached (a Node
 * version whose internals differ; pipelined requests wait for their turn, see http/pipeline.ts).
 */
class ResponseConnection extends StreamConnection {
  private closeTimer: TimerHandle | undefined;

  constructor(
    readonly res: ServerResponse,
    encoder: StreamEncoder,
    transport: StreamingTransport,
  ) {
    super(encoder, transport);
  }

  write(data: Uint8Array): void {
    if (this.res.writableEnded || data.byteLength === 0) return;
    this.lastWrite = this.transport.clock.now();
    this.res.write(data);
  }

  bufferedAmount(): number {
    return this.res.writableLength;
  }

  onDrained(drained: () => void): boolean {
    // Read as a property: an HTTP/2 response may not have it (the session then looks again later).
    if (this.res.writableEnded || (this.res as { writableNeedDrain?: boolean }).writableNeedDrain !== true)
      return false;
    this.res.once('drain', drained);
    return true;
  }

  /**
   * Ends the response; one whose client does not take the last bytes within closeTimeout (an
   * HTTP/2 stream with a zero window after a slow-consumer disconnect, say) is reset.
   */
  close(): void {
    if (this.res.writableEnded) return;
    this.res.end();
    if (responseGone(this.res)) return;
    const res = this.res;
    this.closeTimer = this.transport.clock.setTimeout(() => resetResponse(res), this.transport.closeTimeout);
  }

  closed(): void {
    this.closeTimer?.cancel();
  }
}

/** Drops a response whose client does not read: RST_STREAM (CANCEL) over HTTP/2, the connection over HTTP/1. */
function resetResponse(res: ServerResponse): void {
  const stream = h2Stream(res);
  if (stream !== undefined) {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
  } else res.destroy();
}

/**
 * Listeners are shared functions that find the connection through one property, not closures per
 * connection (each closure keeps its whole scope). Idle memory per connection counts.
 */
const CONNECTION = Symbol('herald.connection');
type StreamingResponse = ServerResponse & { [CONNECTION]?: ResponseConnection };
type StreamingSocket = Socket & { [CONNECTION]?: SocketConnection };

function onResponseClose(this: StreamingResponse): void {
  const conn = this[CONNECTION];
  if (conn === undefined) return;
  conn.closed();
  conn.transport.forget(conn);
}

function onSocketClose(this: StreamingSocket): void {
  const conn = this[CONNECTION];
  if (conn === undefined) return;
  conn.closed();
  conn.transport.forget(conn);
}

/**
 * On 'end', the client ended its side: it reads no more (an EventSource closing does this). On
 * 'finish', the server's last bytes were handed to the kernel after `close`.
 */
function destroySocket(this: Socket): void {
  this.destroy();
}

/** Bytes a client sends on a stream's connection are not requests: the response said `Connection: close`. */
function discard(): void {}

/** An 'error' without a listener would be thrown; the 'close' that follows ends the session. */
function ignoreError(): void {}

export class StreamingTransport {
  private readonly conns = new Set<StreamConnection>();
  /** Its connections' `name` (logs, metrics, hooks): the format's. */
  get name(): string {
    return this.format.name;
  }

  private readonly drain = new DrainWaiters();
  readonly clock: Clock;
  readonly closeTimeout: number;
  private readonly beat: TimerHandle;
  private readonly headerBlock = new SharedHeaderBlock();
  /** The last bytes `chunk` framed, and their framing: one publication is written N times in a row. */
  private chunkSrc: Uint8Array | undefined;
  private chunkOut: Uint8Array = new Uint8Array(0);

  constructor(
    readonly format: StreamFormat,
    private readonly opts: StreamingTransportOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.closeTimeout = opts.closeTimeout ?? 5_000;
    this.beat = this.clock.setInterval(() => this.heartbeat(), Math.max(1, Math.floor(opts.heartbeatInterval / 2)));
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Resolves once no connection is open. */
  drained(): Promise<void> {
    return this.drain.wait(this.conns.size);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const accepted = acceptTransportRequest(req, res, {
      admission: this.opts.admission,
      cors: this.opts.cors,
      logger: this.opts.hub.logger,
      transport: this.format.name,
      maxChannels: this.opts.maxChannels,
      requireChannel: false,
      methods: ['GET', 'HEAD'],
      lastEventId: this.format.lastEventId?.(req),
    });
    if (accepted === undefined) return;
    this.open(req, res, accepted.query, accepted.cors).catch((err: unknown) =>
      openFailed(res, this.opts.hub.logger, this.format.name, err),
    );
  }

  private async open(
    req: IncomingMessage,
    res: ServerResponse,
    query: TransportQuery,
    cors: Record<string, string>,
  ): Promise<void> {
    const hub = this.opts.hub;
    const clientId = hub.newClientId();
    const identity = await identify(req, res, hub, {
      clientId,
      transport: this.format.name,
      queryToken: query.token,
      cors,
    });
    // The stream may have been reset, or the connection closed, while the open waited: then nothing
    // is created (its 'close' has already been emitted, so nothing would ever release it).
    if (identity === undefined || responseGone(res)) return;
    const head = req.method === 'HEAD';
    // Decided before the header, which then says whether the connection is kept after the stream.
    const takeSocket = !head && detachable(req, res);
    const http11 = req.httpVersionMajor === 1 && req.httpVersionMinor === 1;
    res.writeHead(200, {
      'Content-Type': this.format.contentType,
      'Cache-Control': 'no-cache, no-transform',
      'X-Accel-Buffering': 'no',
      ...(http11 ? { Connection: takeSocket ? 'close' : 'keep-alive' } : {}),
      ...cors,
    });
    if (head) {
      res.end();
      return;
    }
    const chunked = (res as { chunkedEncoding?: unknown }).chunkedEncoding === true;
    const socket = takeSocket ? detach(req, res) : undefined;
    const encoder = this.format.encoder(query.cursors);
    let conn: StreamConnection;
    if (socket !== undefined) {
      const sconn = new SocketConnection(socket, chunked, encoder, this);
      (socket as StreamingSocket)[CONNECTION] = sconn;
      socket.on('data', discard);
      socket.on('end', destroySocket);
      socket.on('error', ignoreError);
      socket.on('close', onSocketClose);
      conn = sconn;
    } else {
      this.headerBlock.share(res);
      const rconn = new ResponseConnection(res, encoder, this);
      (res as StreamingResponse)[CONNECTION] = rconn;
      res.on('close', onResponseClose);
      res.on('error', ignoreError);
      conn = rconn;
    }
    const tcp = socket ?? req.socket;
    // An HTTP/2 stream shares its connection's socket (Node hands out a proxy that refuses socket
    // options): keep-alive and no-delay are set only on HTTP/1 connections.
    if (req.httpVersionMajor === 1) {
      tcp.setKeepAlive(true, 30_000);
      tcp.setNoDelay(true);
    }
    this.conns.add(conn);
    const session = hub.createSession(conn, encoder, {
      id: clientId,
      identity,
      remoteAddress: tcp.remoteAddress,
    });
    conn.session = session;
    conn.write(this.format.preamble(this.opts.padding));
    session.sendPush({
      push: 'connected',
      client: session.id,
      version: PROTOCOL_VERSION,
      pingInterval: this.opts.heartbeatInterval,
      session: this.opts.tokens.issue(session.id),
    });
    for (const stream of query.streams) {
      const since = query.cursors.get(stream);
      hub
        .subscribe(session, stream, { since, backlog: query.backlog }, (result, pubs) => {
          session.enqueue(encoder.subscribed(result, pubs), 'reply');
        })
        .catch((err: unknown) => {
          const body = toErrorBody(err, session.logger);
          session.enqueue(encoder.unsubscribed(stream, body));
          // A plain EventSource (or NDJSON reader) cannot subscribe again on this response, and it
          // only reconnects when the response ends: a stream refused for now (the engine out of
          // reach) ends the connection, so the client comes back with its cursors and loses nothing.
          if (body.code === 'HERALD_ERR_ENGINE_UNAVAILABLE') {
            session.disconnect('INSUFFICIENT_STATE', {
              reason: `could not subscribe ${stream} now: ${body.message}`,
              retryAfterMs: 1000,
              flushFirst: true,
            });
          }
        });
    }
  }

  /**
   * `data` as one HTTP/1.1 chunk (`<hex size>\r\n<data>\r\n`). A publication reaches every
   * one-stream subscriber as the same Buffer (and a heartbeat is always the same), so the framed copy
   * is built once and written to each of them.
   */
  chunk(data: Uint8Array): Uint8Array {
    if (data === this.chunkSrc) return this.chunkOut;
    const size = data.byteLength.toString(16);
    const out = Buffer.allocUnsafe(size.length + data.byteLength + 4);
    out.write(size, 0, 'latin1');
    out[size.length] = 13;
    out[size.length + 1] = 10;
    out.set(data, size.length + 2);
    out[out.length - 2] = 13;
    out[out.length - 1] = 10;
    this.chunkSrc = data;
    this.chunkOut = out;
    return out;
  }

  private heartbeat(): void {
    const due = this.clock.now() - this.opts.heartbeatInterval;
    for (const conn of this.conns) if (conn.lastWrite <= due) conn.write(this.format.heartbeat);
  }

  /** A connection ended (either side). */
  forget(conn: StreamConnection): void {
    this.conns.delete(conn);
    this.drain.removed(this.conns.size);
    conn.session?.transportClosed();
  }

  close(): void {
    this.beat.cancel();
    for (const conn of this.conns) conn.close();
  }
}
