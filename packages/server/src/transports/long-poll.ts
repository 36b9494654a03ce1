/**
 * Long-polling (`GET /poll`): answers at once when a stream has publications after the request's
 * cursor, otherwise holds the request until one arrives or the timeout passes, and answers with the
 * cursor to send next. Stateless: the cursor (and the signed session id) is all the state, so any
 * node can answer the next poll. Each poll is a short-lived hub session subscribed from the cursor,
 * which gives it the hub's guarantees: nothing published between two polls is lost or doubled.
 *
 * Presence joins and leaves are not in history: between two polls of a client (and from its
 * `POST /send` subscribe to its first poll), those of its channels wait in its mailbox on this node
 * (`Mailbox`), and its next poll answers with them. The hand-over is exact: a channel's events go to
 * the mailbox until the next poll's subscription to it is live (its epoch set, just before its
 * reply), and to that subscription from then on.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorBody, JoinPush, LeavePush, SubscribeResult } from '@herald/protocol';
import type { EncodeCache, FrameEncoder, NonPubPush } from '../core/encoder.js';
import { jsonEncoder } from '../core/encoder.js';
import type { Publication } from '../core/engine.js';
import { toErrorBody } from '../core/errors.js';
import type { Hub, StatelessListener } from '../core/hub.js';
import type { PresenceWatcher } from '../core/node-presence.js';
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

/**
 * Joins and leaves a mailbox keeps at most (all channels of the client together): on overflow the
 * oldest go, and the client learns who is there from `presence`.
 */
export const MAILBOX_SIZE = 100;

type PresencePush = JoinPush | LeavePush;

/**
 * Since when a mailbox watches a channel: `seq` (`LongPollTransport.seq`) for a channel of a poll
 * that ended, which a later poll that leaves it out ends (the client dropped it); `sentAt` (ms, the
 * hub's clock) for a channel `POST /send` subscribed, which a poll sent before the client had that
 * reply may leave out: it waits for a poll that has it, `lingerMs` at most.
 */
interface Watch {
  readonly seq: number;
  readonly sentAt: number | undefined;
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
  /** Presence joins and leaves of the poll's channels that came while it was held: they answer it. */
  pushes: PresencePush[] | undefined;
  /** The poll's channels with joins and leaves whose subscription went live (handed over from the mailbox). */
  watched: string[] | undefined;
  /** Channels the client unsubscribed through `POST /send` while this poll was open. */
  left: Set<string> | undefined;
  /** Its channels went to the mailbox (see `LongPollTransport.ended`). */
  ended = false;
  answered = false;
  /** The poll's streams are subscribing: it answers once every one has (or failed). */
  opening = true;
  /** The response closed (answered, or the client went away): nothing may be held for it any more. */
  finished = false;
  session: Session | undefined;
  timer: TimerHandle | undefined;

  constructor(
    readonly clientId: string,
    /** When the request came (`LongPollTransport.seq`). */
    readonly started: number,
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
    else if (!this.opening && (this.pubs.length > 0 || this.refresh !== undefined || this.pushes !== undefined)) {
      this.answer();
    }
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
    else if (push.push === 'join' || push.push === 'leave') (this.pushes ??= []).push(push);
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

  /**
   * Answers the poll. `takenOver`: a newer poll of the client answers it (the client, which gave up
   * on this one, may never read it): its joins and leaves go to the newer one, through the mailbox.
   */
  answer(takenOver = false): void {
    if (this.answered) return;
    this.answered = true;
    this.timer?.cancel();
    const gone = responseGone(this.res);
    const pushes = takenOver || gone ? undefined : this.pushes;
    this.transport.ended(this, pushes === undefined ? this.pushes : undefined);
    const token = this.transport.tokens.issue(this.clientId);
    let body =
      `{"client":${JSON.stringify(this.clientId)},"session":${JSON.stringify(token)},` +
      `"cursor":${JSON.stringify(this.cursors.format())},"streams":${JSON.stringify(this.streams)},`;
    if (this.disconnect !== undefined) body += `"disconnect":${JSON.stringify(this.disconnect)},`;
    else if (this.refresh !== undefined) body += `"refresh":${JSON.stringify(this.refresh)},`;
    if (pushes !== undefined) body += `"pushes":${JSON.stringify(pushes)},`;
    const pubs = Buffer.concat([Buffer.from(`${body}"publications":[`), ...join(this.pubs), Buffer.from(']}')]);
    if (!gone) {
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

/**
 * The joins and leaves of a long-poll client's channels while none of its polls is subscribed to
 * them here: from the end of a poll (or a `POST /send` subscribe) until the next poll's subscription
 * is live. Bounded: `MAILBOX_SIZE` events (the oldest go first), the channels of its last polls and
 * `/send` subscribes (at most `maxChannels` of the latter); it goes `lingerMs` (`http.pollTimeout +
 * presence.ttl`, as long as the client's presence entry) after the client's last poll, or at once
 * when a poll answers with `disconnect`. Only for channels with joins and leaves: no mailbox is ever
 * made for a client without such channels.
 */
class Mailbox implements PresenceWatcher {
  /** The channels watched (the hub hands their events here), and since when (see `Watch`). */
  readonly channels = new Map<string, Watch>();
  events: PresencePush[] = [];
  /** When it goes, unless the client polls again (ms, the hub's clock). */
  until = 0;
  timer: TimerHandle | undefined;

  constructor(readonly client: string) {}

  presence(push: PresencePush): void {
    if (this.events.length >= MAILBOX_SIZE) this.events.shift();
    this.events.push(push);
  }
}

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

export class LongPollTransport implements StatelessListener {
  /** Its connections' `name` (logs, metrics, hooks). */
  readonly name = 'long-poll';
  private readonly clock: Clock;
  readonly tokens: SessionTokens;
  /** The open poll of each client id, so that a newer poll answers the older one. */
  private readonly open = new Map<string, PollConnection>();
  private readonly drain = new DrainWaiters();
  /** The mailbox of each client id that has one (see `Mailbox`). */
  private readonly mailboxes = new Map<string, Mailbox>();
  /** Orders poll arrivals and mailbox watches: a watch older than a poll that left it out is stale. */
  private seq = 0;
  private closed = false;

  constructor(private readonly opts: LongPollOptions) {
    this.clock = opts.clock ?? systemClock;
    this.tokens = opts.tokens;
    opts.hub.stateless = this;
  }

  /** Mailboxes, the channels they watch and the joins and leaves they hold (tests, metrics). */
  get mailboxStats(): { clients: number; channels: number; events: number } {
    let channels = 0;
    let events = 0;
    for (const box of this.mailboxes.values()) {
      channels += box.channels.size;
      events += box.events.length;
    }
    return { clients: this.mailboxes.size, channels, events };
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
    const started = ++this.seq;
    this.run(req, res, query, cors, clientId ?? hub.newClientId({ stateless: true }), started).catch((err: unknown) =>
      openFailed(res, hub.logger, 'long-poll', err),
    );
  }

  private async run(
    req: IncomingMessage,
    res: ServerResponse,
    query: TransportQuery,
    cors: Record<string, string>,
    clientId: string,
    started: number,
  ): Promise<void> {
    const hub = this.opts.hub;
    // Stateless: every poll presents its token (the client id alone proves nothing about the user).
    const identity = await identify(req, res, hub, { clientId, transport: 'long-poll', queryToken: query.token, cors });
    // The stream may have been reset, or the connection closed, while the open waited: then nothing
    // is created (its 'close' has already been emitted, so nothing would ever release it).
    if (identity === undefined || responseGone(res)) return;
    this.open.get(clientId)?.answer(true); // one open poll per client: the newer one takes over
    const conn = new PollConnection(clientId, started, this, res, cors);
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
          this.handOver(conn, stream);
        })
        .catch((err: unknown) => {
          immediate = true;
          conn.streams[stream] = { stream, error: toErrorBody(err, session.logger) };
        });
    });
    void Promise.all(subscribes).then(() => {
      conn.opening = false;
      if (conn.answered || conn.finished) return;
      this.deliver(conn, query.streams);
      if (immediate || conn.pubs.length > 0 || conn.refresh !== undefined || conn.pushes !== undefined || hold === 0) {
        conn.answer();
      } else conn.hold(this.clock, hold);
    });
  }

  /** A poll's response closed (answered, or the client went away). */
  finished(conn: PollConnection): void {
    conn.finished = true;
    if (this.open.get(conn.clientId) === conn) this.open.delete(conn.clientId);
    this.drain.removed(this.open.size);
    conn.timer?.cancel();
    this.ended(conn, conn.answered ? undefined : conn.pushes);
    conn.session?.transportClosed();
  }

  close(): void {
    this.closed = true;
    for (const conn of this.open.values()) conn.answer();
    for (const box of [...this.mailboxes.values()]) this.drop(box);
  }

  // -- Mailboxes (see `Mailbox`) ------------------------------------------------------------------

  /**
   * A poll's subscription to `stream` is live: the poll's session hears its joins and leaves from
   * now on, the mailbox no more (those it holds answer the poll: see `deliver`).
   */
  private handOver(conn: PollConnection, stream: string): void {
    const hub = this.opts.hub;
    if (conn.ended || !hub.presenceEvents(stream)) return;
    (conn.watched ??= []).push(stream);
    const box = this.mailboxes.get(conn.clientId);
    if (box !== undefined && box.channels.delete(stream)) hub.unwatchPresence(stream, box);
  }

  /**
   * The poll's streams are subscribed, and it answers them: it takes the joins and leaves the
   * mailbox kept of the channels handed over to it (before those that came since, to its live
   * subscriptions). The mailbox forgets the channels the client no longer polls: those the poll
   * asked for but could not subscribe (it was told why), and those it left out that are no longer
   * the client's (see `Watch`).
   */
  private deliver(conn: PollConnection, asked: readonly string[]): void {
    const box = this.mailboxes.get(conn.clientId);
    if (box === undefined) return;
    const oldest = this.opts.hub.clock.now() - this.opts.hub.presence.lingerMs;
    for (const [stream, w] of box.channels) {
      const stale = w.sentAt === undefined ? w.seq < conn.started : w.sentAt <= oldest;
      if (stale || asked.includes(stream)) this.unwatch(box, stream);
    }
    const taken: PresencePush[] = [];
    const kept: PresencePush[] = [];
    for (const e of box.events) {
      if (conn.watched?.includes(e.channel) === true) taken.push(e);
      else if (box.channels.has(e.channel)) kept.push(e);
    }
    box.events = kept;
    if (taken.length > 0) conn.pushes = conn.pushes === undefined ? taken : [...taken, ...conn.pushes];
    if (box.channels.size === 0 && kept.length === 0) this.drop(box);
  }

  /**
   * A poll ends (answered, taken over, or its client went away), before its session closes: its
   * live channels with joins and leaves go to the client's mailbox until its next poll, with the
   * joins and leaves the client will not read (`unsent`). A poll answered with `disconnect` (the
   * client must reconnect, or stop) drops the mailbox instead.
   */
  ended(conn: PollConnection, unsent: readonly PresencePush[] | undefined): void {
    if (conn.ended) return;
    conn.ended = true;
    let box = this.mailboxes.get(conn.clientId);
    if (this.closed || conn.disconnect !== undefined) {
      if (box !== undefined) this.drop(box);
      return;
    }
    if (conn.watched === undefined) return;
    const streams = conn.watched.filter((stream) => conn.left?.has(stream) !== true);
    if (streams.length === 0 && box === undefined) return;
    box ??= this.mailbox(conn.clientId);
    for (const stream of streams) this.watch(box, stream, undefined);
    for (const e of unsent ?? []) if (box.channels.has(e.channel)) box.presence(e);
    if (box.channels.size === 0 && box.events.length === 0) this.drop(box);
    else this.keep(box);
  }

  /** StatelessListener: a `POST /send` subscribe of a long-poll client (answered next). */
  subscribed(client: string, stream: string): void {
    if (this.closed || !this.opts.hub.presenceEvents(stream)) return;
    const conn = this.open.get(client);
    if (conn !== undefined && !conn.ended && conn.watched?.includes(stream) === true) {
      // Its open poll hears the channel (and hands it to the mailbox when it ends).
      conn.left?.delete(stream);
      return;
    }
    const box = this.mailboxes.get(client) ?? this.mailbox(client);
    if (!box.channels.has(stream) && box.channels.size >= this.opts.maxChannels) return;
    this.watch(box, stream, this.opts.hub.clock.now());
    this.keep(box);
  }

  /**
   * StatelessListener: a `POST /send` unsubscribe: the mailbox forgets the channel (and what it kept
   * of it), and the open poll will not hand it to the mailbox when it ends.
   */
  unsubscribed(client: string, stream: string): void {
    if (!this.opts.hub.presenceEvents(stream)) return;
    const box = this.mailboxes.get(client);
    if (box !== undefined) {
      this.unwatch(box, stream);
      box.events = box.events.filter((e) => e.channel !== stream);
      if (box.channels.size === 0 && box.events.length === 0 && !this.open.has(client)) this.drop(box);
    }
    const conn = this.open.get(client);
    if (conn !== undefined && !conn.ended) (conn.left ??= new Set()).add(stream);
  }

  private mailbox(client: string): Mailbox {
    const box = new Mailbox(client);
    this.mailboxes.set(client, box);
    return box;
  }

  /** Watches `stream` for `box` (again: it counts as watched from now, see `Watch`). */
  private watch(box: Mailbox, stream: string, sentAt: number | undefined): void {
    if (!box.channels.has(stream)) this.opts.hub.watchPresence(stream, box);
    box.channels.set(stream, { seq: ++this.seq, sentAt });
  }

  private unwatch(box: Mailbox, stream: string): void {
    if (box.channels.delete(stream)) this.opts.hub.unwatchPresence(stream, box);
  }

  /** The client is polling: its mailbox lasts `lingerMs` from now. One timer per mailbox, moved on lazily. */
  private keep(box: Mailbox): void {
    const hub = this.opts.hub;
    box.until = hub.clock.now() + hub.presence.lingerMs;
    box.timer ??= hub.clock.setTimeout(() => this.expire(box), hub.presence.lingerMs);
  }

  private expire(box: Mailbox): void {
    box.timer = undefined;
    if (this.mailboxes.get(box.client) !== box) return;
    const clock = this.opts.hub.clock;
    // A poll is open: it moves the expiry on when it ends.
    if (this.open.has(box.client)) this.keep(box);
    else if (box.until > clock.now()) box.timer = clock.setTimeout(() => this.expire(box), box.until - clock.now());
    else this.drop(box);
  }

  private drop(box: Mailbox): void {
    box.timer?.cancel();
    box.timer = undefined;
    for (const stream of box.channels.keys()) this.opts.hub.unwatchPresence(stream, box);
    box.channels.clear();
    box.events = [];
    if (this.mailboxes.get(box.client) === box) this.mailboxes.delete(box.client);
  }
}
