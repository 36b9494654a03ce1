/**
 * Long-polling (`GET /poll`): answers at once when a stream has publications after the request's
 * cursor, otherwise holds the request until one arrives or the timeout passes, and answers with the
 * cursor to send next. Stateless: the cursor (and the signed session id) is all the state, so any
 * node can answer the next poll. Each poll is a short-lived hub session subscribed from the cursor,
 * which gives it the hub's guarantees: nothing published between two polls is lost or doubled.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorBody, SubscribeResult } from '@herald/protocol';
import type { EncodeCache, FrameEncoder, NonPubPush } from '../core/encoder.js';
import { jsonEncoder } from '../core/encoder.js';
import type { Publication } from '../core/engine.js';
import { toErrorBody } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import type { Session } from '../core/session.js';
import type { TransportConnection, TransportTraits } from '../core/transport.js';
import { systemClock, type Clock, type TimerHandle } from '../core/clock.js';
import { sendJsonError, type Admission } from '../http/admission.js';
import type { Cors } from '../http/cors.js';
import { acceptTransportRequest, identify, openFailed } from '../http/accept.js';
import type { TransportQuery } from '../http/query.js';
import type { SessionTokens } from '../http/session-token.js';
import { StreamCursors } from './stream-cursors.js';
import { DrainWaiters } from './drain-waiters.js';
import { responseGone } from '../http/request-gone.js';

export interface LongPollOptions {
  readonly hub: Hub;
  readonly admission: Admission;
  readonly cors: Cors;
  readonly tokens: SessionTokens;
  /** Longest hold, in ms (a request may ask less with `timeout=<seconds>`). */
  readonly pollTimeout: number;
  readonly maxChannels: number;
  readonly clock?: Clock;
}

/** A poll's state travels with the client; its commands go to `POST /send` on any node. */
const POLL_TRAITS: TransportTraits = { readsCommands: false, sendCommands: false, stateless: true };

/** What the response says of each stream: its position (and recovery), or why it was refused. */
type StreamState = Omit<SubscribeResult, 'publications'> | { stream: string; error: ErrorBody };

/**
 * One poll request: collects publications (encoded once, shared) and answers once. A waiting poll
 * is an idle connection: its listener and timer find it through its fields, and what only the
 * answer needs (the session token) is made then. Idle memory per connection counts.
 */
class PollConnection implements TransportConnection, FrameEncoder {
  readonly pubs: Uint8Array[] = [];
  /** What the answer says of each stream, by stream name (built as the answer's `streams` object). */
  readonly streams: Record<string, StreamState> = {};
  readonly cursors = new StreamCursors();
  disconnect: NonPubPush | undefined;
  /**
   * The token expires soon (the session's `refresh` push): the poll answers at once with it, so that
   * the client renews its token and polls again with the new one, instead of being disconnected with
   * TOKEN_EXPIRED at the expiry while the poll is held. The client keeps its client id.
   */
  refresh: NonPubPush | undefined;
  answered = false;
  /** The poll's streams are subscribing: it answers once every one has (or failed). */
  opening = true;
  /** The response closed (answered, or the client went away): nothing may be held for it any more. */
  finished = false;
  session: Session | undefined;
  timer: TimerHandle | undefined;

  constructor(
    readonly clientId: string,
    readonly transport: LongPollTransport,
    private readonly res: ServerResponse,
    private readonly headers: Record<string, string>,
  ) {}

  get name(): string {
    return 'long-poll';
  }

  get traits(): TransportTraits {
    return POLL_TRAITS;
  }

  // -- TransportConnection: the session flushed what the encoder below kept -----------------------
  write(): void {
    // The frames of this write were kept, decoded, by the encoder methods below: the answer is built
    // from them (a JSON object, not a byte stream). While the poll's streams are still subscribing,
    // a publication of one of them does not answer yet: the answer's cursor would lack the others'
    // positions (see `run`).
    if (this.disconnect !== undefined) this.answer();
    else if (!this.opening && (this.pubs.length > 0 || this.refresh !== undefined)) this.answer();
  }
  bufferedAmount(): number {
    return 0;
  }
  close(): void {
    this.answer();
  }

  // -- FrameEncoder: JSON frames, each also kept for the answer -----------------------------------
  // The bytes returned are the real frames, so that the session's queue bounds count what the
  // answer will carry.
  publication(pub: Publication, cache: EncodeCache): Uint8Array {
    const bytes = jsonEncoder.publication(pub, cache);
    this.cursors.setPosition(pub.stream, pub.epoch, pub.offset);
    this.pubs.push(bytes);
    return bytes;
  }
  reply(id: number, result: object, publications?: readonly Publication[]): Uint8Array {
    return jsonEncoder.reply(id, result, publications);
  }
  error(id: number | undefined, error: ErrorBody): Uint8Array {
    return jsonEncoder.error(id, error);
  }
  push(push: NonPubPush): Uint8Array {
    if (push.push === 'disconnect') this.disconnect = push;
    else if (push.push === 'refresh') this.refresh = push;
    return jsonEncoder.push(push);
  }
  join(frames: readonly Uint8Array[]): Uint8Array {
    return jsonEncoder.join(frames);
  }

  subscribedWith(result: Omit<SubscribeResult, 'publications'>, pubs: readonly Publication[]): void {
    const start = pubs.length > 0 ? (pubs[0] as Publication).offset - 1 : result.offset;
    this.streams[result.stream] = result;
    this.cursors.setPosition(result.stream, result.epoch, start);
    for (const pub of pubs) this.publication(pub, {});
  }

  /** Answers after `ms` unless something arrives first. */
  hold(clock: Clock, ms: number): void {
    if (this.finished) return;
    this.timer = clock.setTimeout(() => this.answer(), ms);
  }

  answer(): void {
    if (this.answered) return;
    this.answered = true;
    this.timer?.cancel();
    const token = this.transport.tokens.issue(this.clientId);
    let body =
      `{"client":${JSON.stringify(this.clientId)},"session":${JSON.stringify(token)},` +
      `"cursor":${JSON.stringify(this.cursors.format())},"streams":${JSON.stringify(this.streams)},`;
    if (this.disconnect !== undefined) body += `"disconnect":${JSON.stringify(this.disconnect)},`;
    else if (this.refresh !== undefined) body += `"refresh":${JSON.stringify(this.refresh)},`;
    const pubs = Buffer.concat([Buffer.from(`${body}"publications":[`), ...join(this.pubs), Buffer.from(']}')]);
    if (!responseGone(this.res)) {
      this.res.writeHead(200, {
        'Content-Type': 'application/json',
        'Content-Length': pubs.byteLength,
        'Cache-Control': 'no-cache, no-transform',
        'X-Accel-Buffering': 'no',
        ...this.headers,
      });
      this.res.end(pubs);
    }
    this.session?.transportClosed();
  }
}

/** The poll a response answers; its 'close' listener is shared (see `PollConnection`). */
const POLL = Symbol('herald.poll');
type PollResponse = ServerResponse & { [POLL]?: PollConnection };

function onPollClose(this: PollResponse): void {
  const conn = this[POLL];
  if (conn !== undefined) conn.transport.finished(conn);
}

const COMMA = Buffer.from(',');

function join(parts: readonly Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  parts.forEach((p, i) => {
    if (i > 0) out.push(COMMA);
    out.push(p);
  });
  return out;
}

export class LongPollTransport {
  /** Its connections' `name` (logs, metrics, hooks). */
  readonly name = 'long-poll';
  private readonly clock: Clock;
  readonly tokens: SessionTokens;
  /** The open poll of each client id, so that a newer poll answers the older one. */
  private readonly open = new Map<string, PollConnection>();
  private readonly drain = new DrainWaiters();

  constructor(private readonly opts: LongPollOptions) {
    this.clock = opts.clock ?? systemClock;
    this.tokens = opts.tokens;
  }

  get connectionCount(): number {
    return this.open.size;
  }

  /** Resolves once no poll is open. */
  drained(): Promise<void> {
    return this.drain.wait(this.open.size);
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const hub = this.opts.hub;
    const accepted = acceptTransportRequest(req, res, {
      admission: this.opts.admission,
      cors: this.opts.cors,
      logger: hub.logger,
      transport: 'long-poll',
      maxChannels: this.opts.maxChannels,
      requireChannel: false,
      methods: ['GET'],
    });
    if (accepted === undefined) return;
    const { query, cors } = accepted;
    const clientId = query.session === undefined ? undefined : this.tokens.verify(query.session);
    if (query.session !== undefined && clientId === undefined) {
      sendJsonError(res, 404, { code: 'HERALD_ERR_SESSION_NOT_FOUND', message: 'unknown or invalid session id' }, cors);
      return;
    }
    this.run(req, res, query, cors, clientId ?? hub.newClientId({ stateless: true })).catch((err: unknown) =>
      openFailed(res, hub.logger, 'long-poll', err),
    );
  }

  private async run(
    req: IncomingMessage,
    res: ServerResponse,
    query: TransportQuery,
    cors: Record<string, string>,
    clientId: string,
  ): Promise<void> {
    const hub = this.opts.hub;
    // Stateless: every poll presents its token (the client id alone proves nothing about the user).
    const identity = await identify(req, res, hub, { clientId, transport: 'long-poll', queryToken: query.token, cors });
    // The stream may have been reset, or the connection closed, while the open waited: then nothing
    // is created (its 'close' has already been emitted, so nothing would ever release it).
    if (identity === undefined || responseGone(res)) return;
    this.open.get(clientId)?.answer(); // one open poll per client: the newer one takes over
    const conn = new PollConnection(clientId, this, res, cors);
    // The answer's cursor names every stream the poll asked for: a stream refused this time (the
    // engine unavailable, say) keeps the position it came with, so the next poll resumes it from
    // there instead of starting it afresh.
    query.cursors.forEach((pos, stream) => conn.cursors.setPosition(stream, pos.epoch, pos.offset));
    // Listening before anything is allocated: whatever happens next, the close releases it.
    (res as PollResponse)[POLL] = conn;
    res.on('close', onPollClose);
    this.open.set(clientId, conn);
    const session = hub.createSession(conn, conn, { id: clientId, identity, remoteAddress: req.socket.remoteAddress });
    conn.session = session;
    const hold = Math.min(query.timeoutMs ?? this.opts.pollTimeout, this.opts.pollTimeout);
    // A poll without channels is a handshake: it answers at once with a session id for /send.
    let immediate = query.streams.length === 0;
    const subscribes = query.streams.map((stream) => {
      const since = query.cursors.get(stream);
      if (since === undefined) immediate = true; // a first poll answers with the position at once
      return hub
        .subscribe(session, stream, { since, backlog: query.backlog }, (result, pubs) => {
          if (result.recovered === false) immediate = true;
          conn.subscribedWith(result, pubs);
        })
        .catch((err: unknown) => {
          immediate = true;
          conn.streams[stream] = { stream, error: toErrorBody(err, session.logger) };
        });
    });
    void Promise.all(subscribes).then(() => {
      conn.opening = false;
      if (conn.answered || conn.finished) return;
      if (immediate || conn.pubs.length > 0 || conn.refresh !== undefined || hold === 0) conn.answer();
      else conn.hold(this.clock, hold);
    });
  }

  /** A poll's response closed (answered, or the client went away). */
  finished(conn: PollConnection): void {
    conn.finished = true;
    if (this.open.get(conn.clientId) === conn) this.open.delete(conn.clientId);
    this.drain.removed(this.open.size);
    conn.timer?.cancel();
    conn.session?.transportClosed();
  }

  close(): void {
    for (const conn of this.open.values()) conn.answer();
  }
}
