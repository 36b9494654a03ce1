/**
 * WebSocket transport (`GET /ws`): Herald's JSON protocol over `ws`, or its MessagePack protocol when
 * the client asks for the `herald.msgpack` subprotocol (or `?format=msgpack`). Reads frames and hands them to
 * the session; writes the session's batches; pings every `pingInterval` and reaps connections that
 * did not answer within `pingTimeout`. Embeddable: `handleUpgrade` takes any http.Server's upgrade.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { PROTOCOL_VERSION, DisconnectCodes, ErrorCodes } from '@herald/protocol';
import type { SessionIdentity } from '../core/identity.js';
import { toErrorBody } from '../core/errors.js';
import { requestToken } from '../http/token.js';
import { decodeMsgpackCommands } from '../core/msgpack-encoder.js';
import { wsFrameEncoder, wsMsgpackFrameEncoder } from './ws-frame.js';
import { directFd, writeFrame, writeFrames } from './socket-write.js';
import { DrainWaiters } from './drain-waiters.js';
import type { Hub } from '../core/hub.js';
import type { Logger } from '../core/logger.js';
import type { Session } from '../core/session.js';
import type { TransportConnection, TransportTraits } from '../core/transport.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { rejectUpgrade, type Admission } from '../http/admission.js';

export interface WebSocketTransportOptions {
  readonly hub: Hub;
  readonly logger: Logger;
  readonly admission: Admission;
  /** Largest incoming message in bytes; larger ones close the connection with 1009. */
  readonly maxFrameSize: number;
  readonly pingInterval: number;
  readonly pingTimeout: number;
  /** Grace for the close handshake before the socket is destroyed. */
  readonly closeTimeout?: number;
  readonly clock?: Clock;
}

/**
 * Herald's `ws` socket: events are dispatched by overriding `emit` instead of registering listeners.
 * An EventEmitter's `_events` object is a dictionary-mode object in V8 (a few hundred bytes once it
 * holds four listeners); with no listeners it stays empty. Idle memory per connection counts at
 * 100k connections (docs/performance.md).
 */
class HeraldWebSocket extends WebSocket {
  conn: WsConnection | undefined;

  override emit(event: string | symbol, a?: unknown, b?: unknown): boolean {
    const conn = this.conn;
    if (conn === undefined) return false;
    switch (event) {
      case 'message':
        conn.message(a as RawData, b as boolean);
        break;
      case 'ping':
        // autoPong is off (it keeps a closure per socket): answer here, unless the client pings
        // faster than it reads our answers.
        conn.awaitingRound = 0;
        if (this.readyState !== 1) break;
        if (conn.bufferedAmount() > MAX_PONG_BACKLOG) {
          conn.session?.logger.info({ code: DisconnectCodes.SLOW.code }, 'pings faster than it reads: closed');
          this.terminate();
        } else this.pong(a as Buffer, false);
        break;
      case 'pong':
        conn.awaitingRound = 0;
        break;
      case 'error': {
        const err = a as Error & { code?: string };
        conn.session?.logger.info({ code: err.code, err: err.message }, 'websocket error');
        break;
      }
      case 'close':
        conn.transport.forget(conn);
        break;
    }
    return true;
  }
}

/** The subprotocol of Herald's MessagePack protocol (docs/protocol.md). */
export const MSGPACK_PROTOCOL = 'herald.msgpack';

/** Wire formats of a WebSocket connection. */
export type WsFormat = 'json' | 'msgpack';

/** The wire format a client asks for: the `herald.msgpack` subprotocol, else `?format=`, else JSON. */
export function requestedFormat(req: IncomingMessage): WsFormat | undefined {
  const offered = req.headers['sec-websocket-protocol'];
  if (offered !== undefined && offered.split(',').some((p) => p.trim() === MSGPACK_PROTOCOL)) return 'msgpack';
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const format = q === -1 ? null : new URLSearchParams(url.slice(q + 1)).get('format');
  if (format === null || format === 'json') return 'json';
  return format === 'msgpack' ? 'msgpack' : undefined;
}

/**
 * The subprotocol answered: `herald.msgpack` when offered, else the first offered one (what `ws`
 * answers by default, so clients that offer a protocol of their own keep working, on JSON).
 */
function selectProtocol(protocols: Set<string>): string | false {
  if (protocols.has(MSGPACK_PROTOCOL)) return MSGPACK_PROTOCOL;
  const first = protocols.values().next();
  return first.done === true ? false : first.value;
}

/** A WebSocket reads its client's commands itself. */
const WS_TRAITS: TransportTraits = { readsCommands: true, sendCommands: false, stateless: false };

/** Pings written per turn of the event loop (see `WebSocketTransport.sendPings`). */
const PING_BATCH = 500;

/** At most this many heartbeat ticks per ping interval (see `WebSocketTransport.heartbeat`). */
const MAX_TICKS = 60;

/** Bytes of unsent output beyond which a client's pings are no longer answered but end the connection. */
const MAX_PONG_BACKLOG = 1 << 20;

/** A ping frame with no payload (FIN, opcode 9, unmasked, length 0): the same bytes for every connection. */
const PING_FRAME = Buffer.from([0x89, 0x00]);

class WsConnection implements TransportConnection {
  /** The heartbeat round whose ping this connection has not answered yet; 0 when none is pending. */
  awaitingRound = 0;
  session: Session | undefined;
  private closeTimer: TimerHandle | undefined;
  /** See `writeFrame`. */
  private readonly fd: number;

  constructor(
    readonly ws: HeraldWebSocket,
    /** The upgraded socket: frames from `wsFrameEncoder` are complete, so they are written as is. */
    private readonly socket: Duplex,
    readonly transport: WebSocketTransport,
    /** MessagePack: the client's messages are binary frames. */
    private readonly binary: boolean,
  ) {
    this.fd = directFd(socket);
  }

  get name(): string {
    return 'websocket';
  }

  get traits(): TransportTraits {
    return WS_TRAITS;
  }

  write(data: Uint8Array): void {
    if (this.ws.readyState !== 1) return;
    // ws writes its own frames (pings, close) synchronously and whole (no compression is
    // negotiated), so frames written here never interleave with them.
    writeFrame(this.socket, data, this.fd);
  }

  writeFrames(frames: readonly Uint8Array[]): void {
    if (this.ws.readyState !== 1) return;
    writeFrames(this.socket, frames, this.fd);
  }

  /** A heartbeat ping: one prebuilt frame through `writeFrame` (ws.ping() costs a header, two writes and a writev). */
  ping(): void {
    if (this.ws.readyState === 1) writeFrame(this.socket, PING_FRAME, this.fd);
  }

  bufferedAmount(): number {
    // What ws.bufferedAmount would say without its getter's indirections: ws queues nothing itself
    // (no compression is negotiated), so everything unsent is in the socket.
    return this.socket.writableLength;
  }

  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  onDrained(drained: () => void): boolean {
    if (!this.socket.writableNeedDrain || this.ws.readyState !== 1) return false;
    this.socket.once('drain', drained);
    return true;
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState >= 2) return;
    // Read again (a session may have stopped reading this client): the close handshake needs it.
    if (this.ws.isPaused) this.ws.resume();
    this.ws.close(code, reason.slice(0, 120));
    const ws = this.ws;
    this.closeTimer = this.transport.clock.setTimeout(() => ws.terminate(), this.transport.closeTimeout);
  }

  closed(): void {
    this.closeTimer?.cancel();
  }

  message(data: RawData, isBinary: boolean): void {
    const session = this.session;
    this.awaitingRound = 0;
    if (session === undefined) return;
    if (isBinary !== this.binary) {
      const what = isBinary ? 'binary frame on a JSON connection' : 'text frame on a MessagePack connection';
      session.logger.info({ code: DisconnectCodes.BAD_REQUEST.code }, what);
      const reason = isBinary ? 'binary frames are not supported' : 'text frames are not supported on herald.msgpack';
      session.disconnect('BAD_REQUEST', { reason });
      return;
    }
    if (!isBinary) {
      session.handleMessage(rawToString(data));
      return;
    }
    const decoded = decodeMsgpackCommands(rawToBuffer(data));
    if (decoded.ok) session.handleValues(decoded.values);
    else session.malformed(decoded.message);
  }
}

export class WebSocketTransport {
  /** Its connections' `name` (logs, metrics, hooks). */
  readonly name = 'websocket';
  private readonly wss: WebSocketServer;
  private readonly conns = new Set<WsConnection>();
  private readonly drain = new DrainWaiters();
  readonly clock: Clock;
  readonly closeTimeout: number;
  private readonly pingTimer: TimerHandle;
  /** One reap per heartbeat round still within its pingTimeout (several when pingTimeout > pingInterval). */
  private readonly reapTimers = new Set<TimerHandle>();
  private round = 0;
  /** Heartbeat ticks per ping interval (about one a second): each pings its share of the connections. */
  private readonly ticks: number;
  /** Where the current sweep over the connections is; a sweep takes one ping interval. */
  private sweep: Iterator<WsConnection> | undefined;

  constructor(private readonly opts: WebSocketTransportOptions) {
    this.clock = opts.clock ?? systemClock;
    this.closeTimeout = opts.closeTimeout ?? 5_000;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxFrameSize,
      perMessageDeflate: false,
      clientTracking: false,
      autoPong: false,
      handleProtocols: selectProtocol,
      WebSocket: HeraldWebSocket,
    });
    this.ticks = Math.max(1, Math.min(MAX_TICKS, Math.round(opts.pingInterval / 1000)));
    this.pingTimer = this.clock.setInterval(() => this.heartbeat(), opts.pingInterval / this.ticks);
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Resolves once no connection is open. */
  drained(): Promise<void> {
    return this.drain.wait(this.conns.size);
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refusal = this.opts.admission.check(req);
    if (refusal !== undefined) {
      rejectUpgrade(socket, refusal);
      return;
    }
    const format = requestedFormat(req);
    if (format === undefined) {
      const error = { code: 'HERALD_ERR_PROTOCOL_BAD_FIELD', message: '"format" must be json or msgpack' } as const;
      this.opts.hub.logger.info({ code: error.code, transport: 'websocket' }, 'connection refused');
      rejectUpgrade(socket, { status: 400, error });
      return;
    }
    const hub = this.opts.hub;
    const clientId = hub.newClientId();
    const remoteAddress = req.socket.remoteAddress;
    hub.authorizer.connect(requestToken(req), { clientId, transport: 'websocket', remoteAddress }).then(
      (identity) => {
        if (socket.destroyed) return;
        this.wss.handleUpgrade(req, socket, head, (ws) =>
          this.onConnection(ws as HeraldWebSocket, socket, clientId, identity, remoteAddress, format),
        );
      },
      (err: unknown) => {
        const error = toErrorBody(err, hub.logger);
        hub.logger.info({ code: error.code, transport: 'websocket' }, 'connection refused');
        rejectUpgrade(socket, { status: ErrorCodes[error.code].status, error });
      },
    );
  }

  private onConnection(
    ws: HeraldWebSocket,
    socket: Duplex,
    clientId: string,
    identity: SessionIdentity,
    remoteAddress: string | undefined,
    format: WsFormat,
  ): void {
    const binary = format === 'msgpack';
    const conn = new WsConnection(ws, socket, this, binary);
    this.conns.add(conn);
    const encoder = binary ? wsMsgpackFrameEncoder : wsFrameEncoder;
    const session = this.opts.hub.createSession(conn, encoder, { id: clientId, identity, remoteAddress });
    conn.session = session;
    ws.conn = conn;
    session.sendPush({
      push: 'connected',
      client: session.id,
      version: PROTOCOL_VERSION,
      pingInterval: this.opts.pingInterval,
    });
  }

  /**
   * One heartbeat tick: pings the next `1/ticks` of the connections (those with no unanswered ping)
   * and reaps this tick's silent ones after pingTimeout, so that every connection is pinged about
   * once per pingInterval but the pings, and their pongs, come spread over the interval rather than
   * 10,000 at once: a burst of pings on the server's or the clients' core delayed the publications
   * fanned out meanwhile (S1/S2 in docs/performance.md). A connection still awaiting an earlier tick's answer keeps that
   * tick's deadline (so a pingTimeout longer than pingInterval does not postpone the reap forever).
   */
  private heartbeat(): void {
    this.round += 1;
    const round = this.round;
    const due: WsConnection[] = [];
    const quota = Math.ceil(this.conns.size / this.ticks);
    let restarted = false;
    for (let visited = 0; visited < quota; visited++) {
      let next = this.sweep?.next();
      if (next === undefined || next.done === true) {
        if (restarted) break; // every connection visited in this tick already
        restarted = true;
        this.sweep = this.conns.values();
        next = this.sweep.next();
        if (next.done === true) break;
      }
      const conn = next.value;
      if (conn.awaitingRound !== 0) continue;
      conn.awaitingRound = round;
      due.push(conn);
    }
    if (due.length === 0) return;
    this.sendPings(due, 0);
    const timer = this.clock.setTimeout(() => {
      this.reapTimers.delete(timer);
      this.reap(due, round);
    }, this.opts.pingTimeout);
    this.reapTimers.add(timer);
  }

  /**
   * A tick's pings (every connection's when pingInterval is under 1.5 s: one tick per interval) go
   * out `PING_BATCH` at a time, one batch per turn of the event loop: 10,000 pings written at once
   * would hold the loop for tens of milliseconds, and every publication fanned out meanwhile would
   * wait (it showed in the benchmark's p99 latency).
   */
  private sendPings(conns: readonly WsConnection[], from: number): void {
    const end = Math.min(conns.length, from + PING_BATCH);
    for (let i = from; i < end; i++) {
      (conns[i] as WsConnection).ping();
    }
    if (end < conns.length) setImmediate(() => this.sendPings(conns, end));
  }

  /** Ends the connections pinged in `round` (`pinged`) that have not answered since. */
  private reap(pinged: readonly WsConnection[], round: number): void {
    for (const conn of pinged) {
      if (conn.awaitingRound !== round || !this.conns.has(conn)) continue;
      conn.session?.disconnect('STALE', { reason: 'no pong within pingTimeout' });
      conn.ws.terminate();
    }
  }

  /** A connection ended (either side). */
  forget(conn: WsConnection): void {
    conn.closed();
    this.conns.delete(conn);
    this.drain.removed(this.conns.size);
    conn.session?.transportClosed();
  }

  /** Destroys every socket that is still open (end of a graceful shutdown). */
  terminateAll(): void {
    for (const conn of this.conns) conn.ws.terminate();
  }

  close(): void {
    this.pingTimer.cancel();
    for (const timer of this.reapTimers) timer.cancel();
    this.reapTimers.clear();
    this.terminateAll();
    this.wss.close();
  }
}

function rawToString(data: RawData): string {
  return rawToBuffer(data).toString('utf8');
}

function rawToBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
