/**
 * One connection of `GET /api/ws` (api-socket.ts): reads request frames, runs them through the
 * server API's methods within the in-flight bound, and writes the answers of each turn of the event
 * loop together. `ApiSocket` accepts the connections and keeps them (`ApiConnectionOwner`).
 */
import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import { DisconnectCodes, ErrorCodes, type ErrorBody, type ErrorCode } from '@herald/protocol';
import { toErrorBody } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { directFd, writeFrame } from '../transports/socket-write.js';
import { textFrameOfString } from '../transports/ws-frame.js';
import type { ApiMethod, ApiParams } from './batch.js';

/** Requests already read, waiting for an in-flight slot, beyond which more are refused. */
const MAX_WAITING = 10_000;
/** Requests one frame may hold as an array (as many as a `POST /api/batch`). */
export const API_SOCKET_MAX_BATCH = 1000;
/** Answers are grouped into frames of about this many characters (one bigger answer is a frame alone). */
const FRAME_GROUP_BYTES = 64 * 1024;
/** Longest `id` string echoed back. */
const MAX_ID_LENGTH = 128;

/** What a connection needs from the side that accepted it (`ApiSocket`). */
export interface ApiConnectionOwner {
  readonly logger: Logger;
  /** Requests of one connection that may run at once. */
  readonly maxInFlight: number;
  /** Unsent answer bytes beyond which the connection is closed. */
  readonly maxQueueBytes: number;
  methodOf(name: string): ApiMethod | undefined;
  /** Counts a finished request by method and status, with its latency from `start`. */
  observe(name: string, status: number, start: number): void;
  /** The connection's socket closed. */
  forget(conn: ApiConnection): void;
}

/** A request read but not started: it waits for an in-flight slot. */
interface Waiting {
  readonly id: string;
  readonly name: string;
  readonly method: ApiMethod;
  readonly params: ApiParams;
  /** When its frame arrived (performance.now()). */
  readonly start: number;
}

const ConnState = { open: 0, draining: 1, closed: 2 } as const;
type ConnState = (typeof ConnState)[keyof typeof ConnState];

/** `ws`'s socket with events dispatched by overriding `emit` (no listener objects per connection). */
export class ApiWebSocket extends WebSocket {
  conn: ApiConnection | undefined;

  override emit(event: string | symbol, a?: unknown): boolean {
    const conn = this.conn;
    if (conn === undefined) return false;
    switch (event) {
      case 'message':
        conn.alive = true;
        try {
          conn.message(a as RawData);
        } catch (err) {
          // A bug, not the client's input (that is answered with a code): this connection ends, not the process.
          conn.owner.logger.error({ err }, 'api socket: request handling failed');
          conn.close(DisconnectCodes.INTERNAL.code, 'internal error');
        }
        break;
      case 'ping':
        conn.alive = true;
        if (this.readyState === 1) this.pong(a as Buffer, false);
        break;
      case 'pong':
        conn.alive = true;
        break;
      case 'error': {
        const err = a as Error & { code?: string };
        conn.owner.logger.info({ code: err.code, err: err.message }, 'api socket: error');
        break;
      }
      case 'close':
        conn.owner.forget(conn);
        break;
    }
    return true;
  }
}

export class ApiConnection {
  state: ConnState = ConnState.open;
  /** Something arrived since the last heartbeat. */
  alive = true;
  private inFlight = 0;
  private readonly waiting: Waiting[] = [];
  /** Answers ready, written together at the end of this turn of the event loop. */
  private replies: string[] = [];
  private flushing = false;
  private paused = false;
  private badFrames = 0;
  private readonly fd: number;

  constructor(
    readonly ws: ApiWebSocket,
    private readonly socket: Duplex,
    readonly owner: ApiConnectionOwner,
  ) {
    this.fd = directFd(socket);
  }

  /** Reading stopped because `maxInFlight` requests run: pongs are not read either. */
  get isPaused(): boolean {
    return this.paused;
  }

  message(data: RawData): void {
    if (this.state === ConnState.closed) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawToString(data));
    } catch {
      this.refuse('null', 'HERALD_ERR_PROTOCOL_MALFORMED', 'the frame is not valid JSON');
      return;
    }
    // Latency counts from the frame's arrival (for every request it holds: one clock read).
    const start = performance.now();
    if (!Array.isArray(parsed)) {
      this.request(parsed, start);
      return;
    }
    if (parsed.length === 0 || parsed.length > API_SOCKET_MAX_BATCH) {
      this.refuse(
        'null',
        'HERALD_ERR_PROTOCOL_MALFORMED',
        `a frame holds one request or an array of 1 to ${API_SOCKET_MAX_BATCH} (got ${parsed.length})`,
      );
      return;
    }
    for (const r of parsed as unknown[]) this.request(r, start);
  }

  private request(r: unknown, start: number): void {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) {
      this.refuse('null', 'HERALD_ERR_PROTOCOL_MALFORMED', 'a request is a JSON object {"id","method","params"}');
      return;
    }
    const req = r as Record<string, unknown>;
    const rawId = req['id'];
    const id =
      typeof rawId === 'number' && Number.isSafeInteger(rawId)
        ? String(rawId)
        : typeof rawId === 'string' && rawId.length <= MAX_ID_LENGTH
          ? JSON.stringify(rawId)
          : undefined;
    if (id === undefined) {
      this.refuse(
        'null',
        'HERALD_ERR_PROTOCOL_BAD_FIELD',
        `"id" must be an integer or a string of at most ${MAX_ID_LENGTH} characters`,
      );
      return;
    }
    const name = req['method'];
    const method = typeof name === 'string' ? this.owner.methodOf(name) : undefined;
    if (method === undefined) {
      const shown = typeof name === 'string' ? `no API method "${name.slice(0, 64)}"` : '"method" must be a string';
      this.refuse(id, 'HERALD_ERR_API_NOT_FOUND', shown);
      return;
    }
    const params = req['params'] ?? {};
    if (typeof params !== 'object' || params === null || Array.isArray(params)) {
      this.refuse(id, 'HERALD_ERR_API_BAD_REQUEST', '"params" must be a JSON object (the body of POST /api/<method>)');
      return;
    }
    if (this.state !== ConnState.open) {
      this.answer(
        id,
        name as string,
        'HERALD_ERR_SHUTTING_DOWN',
        'the server is shutting down: send it again elsewhere',
      );
      return;
    }
    if (this.inFlight >= this.owner.maxInFlight || this.waiting.length > 0) {
      if (this.waiting.length >= MAX_WAITING) {
        this.answer(
          id,
          name as string,
          'HERALD_ERR_TOO_MANY_COMMANDS',
          `more than ${this.owner.maxInFlight} requests in flight and ${MAX_WAITING} waiting on this connection`,
        );
        return;
      }
      this.waiting.push({ id, name: name as string, method, params: params as ApiParams, start });
      this.pause();
      return;
    }
    this.start(id, name as string, method, params as ApiParams, start);
  }

  private start(id: string, name: string, method: ApiMethod, params: ApiParams, start: number): void {
    this.inFlight++;
    let run: Promise<string>;
    try {
      run = method(params);
    } catch (err) {
      // Some methods check their params before they return a promise.
      run = Promise.reject(err);
    }
    run.then(
      (text) => {
        this.owner.observe(name, 200, start);
        this.finished(`{"id":${id},"result":${text}}`);
      },
      (err: unknown) => {
        const body = toErrorBody(err, this.owner.logger);
        this.owner.observe(name, ErrorCodes[body.code].status, start);
        this.finished(errorReply(id, body));
      },
    );
  }

  /** A request ended: its answer goes out, and a waiting request takes its slot. */
  private finished(reply: string): void {
    this.inFlight--;
    this.queue(reply);
    if (this.state === ConnState.closed) return;
    while (this.inFlight < this.owner.maxInFlight && this.waiting.length > 0) {
      const w = this.waiting.shift() as Waiting;
      if (this.state === ConnState.open) this.start(w.id, w.name, w.method, w.params, w.start);
      else
        this.answer(w.id, w.name, 'HERALD_ERR_SHUTTING_DOWN', 'the server is shutting down: send it again elsewhere');
    }
    if (this.paused && this.waiting.length === 0) this.resume();
  }

  /** An answer that refuses a request without running it (counted under its method). */
  private answer(id: string, name: string, code: ErrorCode, message: string): void {
    this.owner.observe(name, ErrorCodes[code].status, performance.now());
    this.queue(errorReply(id, { code, message }));
  }

  /** A frame that is not a request: answered, logged once per connection (then at debug). */
  private refuse(id: string, code: ErrorCode, message: string): void {
    const logger = this.owner.logger;
    if (this.badFrames++ === 0) logger.info({ code, message }, 'api socket: bad request frame');
    else logger.debug({ code, message }, 'api socket: bad request frame');
    this.owner.observe('unknown', ErrorCodes[code].status, performance.now());
    this.queue(errorReply(id, { code, message }));
  }

  private queue(reply: string): void {
    if (this.state === ConnState.closed) return;
    this.replies.push(reply);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(flushConnection, this);
  }

  /** Writes the answers of this turn as one frame; closes a connection that does not read them. */
  flush(): void {
    this.flushing = false;
    const replies = this.replies;
    if (replies.length === 0 || this.state === ConnState.closed || this.ws.readyState !== 1) return;
    this.replies = [];
    // Small answers share a frame; a group is cut at FRAME_GROUP_BYTES, so that big answers (a
    // history) are never joined into one huge string, and an unread connection is caught between them.
    let from = 0;
    let bytes = 0;
    for (let i = 0; i <= replies.length; i++) {
      const size = i < replies.length ? (replies[i] as string).length : 0;
      if (i < replies.length && (i === from || bytes + size <= FRAME_GROUP_BYTES)) {
        bytes += size;
        continue;
      }
      const text = i - from === 1 ? (replies[from] as string) : `[${replies.slice(from, i).join(',')}]`;
      writeFrame(this.socket, textFrameOfString(text), this.fd);
      if (this.socket.writableLength > this.owner.maxQueueBytes) {
        this.owner.logger.info(
          { code: DisconnectCodes.SLOW.code, queued: this.socket.writableLength },
          'api socket: answers not read, closed',
        );
        this.close(DisconnectCodes.SLOW.code, 'answers are not read: the send queue is full');
        return;
      }
      from = i;
      bytes = size;
    }
    if (this.state === ConnState.draining) this.closeIfDone();
  }

  /** Shutdown: answers what runs, refuses the rest, then closes with 3001. */
  drain(): void {
    if (this.state !== ConnState.open) return;
    this.state = ConnState.draining;
    // Read on, so that requests already sent are refused (and resent elsewhere) rather than lost.
    if (this.paused) this.resume();
    this.closeIfDone();
  }

  private closeIfDone(): void {
    if (this.inFlight > 0 || this.waiting.length > 0 || this.flushing) return;
    this.close(DisconnectCodes.SHUTDOWN.code, 'the server is shutting down');
  }

  /** Closes with `code`: nothing more is run or answered on this connection. */
  close(code: number, reason: string): void {
    this.closed();
    if (this.ws.readyState >= 2) return;
    // Read again (reading may have been paused): the close handshake needs it.
    if (this.ws.isPaused) this.ws.resume();
    this.ws.close(code, reason);
  }

  /** The socket closed: nothing more is written; requests still running finish unanswered. */
  closed(): void {
    this.state = ConnState.closed;
    this.replies = [];
    this.waiting.length = 0;
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.ws.pause();
  }

  private resume(): void {
    this.paused = false;
    this.ws.resume();
  }
}

function flushConnection(conn: ApiConnection): void {
  conn.flush();
}

function errorReply(id: string, body: ErrorBody): string {
  return `{"id":${id},"error":${JSON.stringify(body)}}`;
}

function rawToString(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
