/**
 * The client (`Herald`) and its subscriptions (`Subscription`).
 *
 * The connection: one logical connection over the first transport that works, reconnecting with
 * capped exponential backoff and full jitter (or the server's `retryAfterMs`), make-before-break
 * replacement (upgrade to WebSocket, token renewal), liveness, the browser's `offline`/`online`
 * events, and the commands in flight (requests.ts). Its state, `disconnected | connecting |
 * connected | closed`, is changed only by `#setState`, which emits `state` with the reason;
 * `connecting` includes the wait between attempts, and a connect cycle in which every transport
 * failed emits `state` again (still `connecting`) with the cause, and `error`. `disconnected` means
 * nothing happens until `connect()` or `setToken()` (the server said not to reconnect, or refused
 * the token and there is no `getToken`).
 *
 * The subscriptions: each keeps its cursor — the position of the last publication delivered — and
 * is resubscribed from it on every new connection; publications at or before the cursor are
 * dropped, so a recovery, a retried subscribe or a transport switch never delivers one twice. Per
 * stream, one `subscribe` or `unsubscribe` is in flight at a time: the client keeps what the server
 * holds on the connection (`#srv`) and moves it one step at a time towards what the application
 * wants (`#subs`), so `subscribe(x)`, `unsubscribe()`, `subscribe(x)` in any rhythm (React
 * StrictMode mounts twice) ends subscribed on every transport, even where two `POST /send` may
 * overtake each other. A subscribe still in the outbox is simply taken back. The server's
 * `SUBSCRIBE_ALREADY` is reconciled (unsubscribe, subscribe again from the cursor), not fatal.
 *
 * Everything inside is `#private` (or a `Rec`, a subscription's insides): the published types show
 * the API only.
 */
import {
  HeraldError,
  isStreamName,
  shouldReconnect,
  type ConnectedPush,
  type HistoryResult,
  type PresenceResult,
  type PresenceStatsResult,
  type PublicationFrame,
  type PublishResult,
  type StreamPosition,
  type SubscribeResult,
} from '@herald/protocol';
import type { ConnectionState, HeraldEvents } from './connection.js';
import { env, expiry, type Conn } from './internal.js';
import { Emitter } from './emitter.js';
import {
  backoff,
  resolveOptions,
  type CallOptions,
  type HeraldOptions,
  type HistoryOptions,
  type PublishOptions,
  type ResolvedOptions,
  type SubscribeOptions,
} from './options.js';
import { lost, Requests, transient, type OutCommand } from './requests.js';
import { publications, type Publication, type SubscriptionEvents, type SubscriptionState } from './subscription.js';
import type { HeraldTransport, InFrame, TransportName } from './transports/transport.js';

export type { ConnectedEvent, ConnectionState, HeraldEvents, StateEvent } from './connection.js';

type Timer = ReturnType<typeof setTimeout>;

type Events = SubscriptionEvents<unknown>;

/** A subscription's state, seen by the client. */
interface Rec {
  readonly ch: string;
  readonly opts: SubscribeOptions;
  readonly h: Herald;
  /** The client's `timeout` (of `ready()`). */
  readonly t: number;
  sub: Subscription;
  state: SubscriptionState;
  cursor: StreamPosition | undefined;
  /** The connection its subscribe is pending on; publications that arrive meanwhile wait in `held`. */
  on: Conn | undefined;
  held: Publication[];
  /** Id of its latest subscribe command. */
  id: number;
  /** Subscribes in a row answered "already subscribed" (reconciled up to 3 times). */
  tries: number;
  /** Why it ended (what `ready()` rejects with). */
  err: HeraldError | undefined;
  /** Ends it (`unsubscribe()`). */
  end: (reason: string) => void;
  /** Removes the listener of its `signal`. */
  off: (() => void) | undefined;
  emit: <K extends keyof Events>(event: K, value: Events[K]) => void;
}

/** What a subscribe reply (or a poll's fresh start) tells: the position, and publications to deliver. */
interface Answer {
  epoch: string;
  offset: number;
  recovered?: boolean;
  publications?: PublicationFrame[];
}

let make: (r: Rec) => Subscription;
/** Why the client stopped or cannot connect. */
let failure: (h: Herald) => HeraldError | undefined;

/**
 * One subscription: a stream (an exact channel or an `x.**` subtree), its state and its cursor.
 * Made by `herald.subscribe()`. Publications are events and an async iterator.
 */
export class Subscription<T = unknown> extends Emitter<SubscriptionEvents<T>> implements AsyncIterable<Publication<T>> {
  /** The stream: the exact channel, or the subtree pattern. */
  readonly channel: string;
  readonly #r: Rec;

  private constructor(r: Rec) {
    super();
    this.channel = r.ch;
    this.#r = r;
    r.emit = (event, value) => this.emit(event, value as never);
  }

  static {
    make = (r) => new Subscription(r);
  }

  get state(): SubscriptionState {
    return this.#r.state;
  }

  /** The position of the last publication delivered (undefined before the first subscribe reply). */
  get cursor(): StreamPosition | undefined {
    return this.#r.cursor;
  }

  /** Publishes to this subscription's channel (an exact channel; the namespace must allow client publish). */
  publish(data: T, opts?: PublishOptions): Promise<PublishResult> {
    return this.#r.h.publish(this.channel, data, opts);
  }

  history(opts?: HistoryOptions): Promise<HistoryResult<T>> {
    return this.#r.h.history<T>(this.channel, opts);
  }

  /** Who is subscribed to this channel now, on every node (a namespace with `presence` on). */
  presence(opts?: CallOptions): Promise<PresenceResult> {
    return this.#r.h.presence(this.channel, opts);
  }

  /** How many clients and distinct users are subscribed to this channel now. */
  presenceStats(opts?: CallOptions): Promise<PresenceStatsResult> {
    return this.#r.h.presenceStats(this.channel, opts);
  }

  /** Ends the subscription (also on the server); its iterators finish. */
  unsubscribe(): void {
    this.#r.end('unsubscribe()');
  }

  /**
   * Resolves once subscribed. Rejects if the subscription ends first (with the server's refusal),
   * if the client stops (with why: a refused token, say), after `opts.timeout` (default: the
   * client's `timeout`) with `HERALD_ERR_TIMEOUT`, or when `opts.signal` aborts.
   */
  ready(opts: CallOptions = {}): Promise<void> {
    const r = this.#r;
    const { signal, timeout = r.t } = opts;
    return new Promise((resolve, reject) => {
      const settle = (err?: unknown): void => {
        clearTimeout(timer);
        for (const off of offs) off();
        signal?.removeEventListener('abort', abort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const abort = (): void => settle(signal?.reason);
      const check = (): void => {
        if (r.state === 'subscribed') settle();
        else if (r.state === 'unsubscribed') settle(r.err);
        else if (r.h.state === 'disconnected') settle(failure(r.h));
      };
      const timer = setTimeout(
        () => settle(new HeraldError('HERALD_ERR_TIMEOUT', `${this.channel}: not subscribed within ${timeout} ms`)),
        timeout,
      );
      const offs = [this.on('state', check), r.h.on('state', check)];
      signal?.addEventListener('abort', abort);
      if (signal?.aborted === true) abort();
      else check();
    });
  }

  /**
   * Publications, in order, from now on. Breaking out of the loop unsubscribes; the loop ends when
   * the subscription is unsubscribed or the client closed, and throws if the server refused it.
   */
  [Symbol.asyncIterator](): AsyncIterator<Publication<T>> {
    return publications(this);
  }
}

function set(r: Rec, state: SubscriptionState, reason: string, error?: HeraldError): void {
  const prev = r.state;
  if (prev === state) return;
  r.state = state;
  r.emit('state', { state, prev, reason, error });
  if (error !== undefined) r.emit('error', error);
}

/** A subscribe answer: reset the cursor when recovery failed, then deliver (then what was held). */
function apply(r: Rec, answer: Answer): void {
  const previous = r.cursor;
  const pubs = answer.publications ?? [];
  const start = pubs.length > 0 ? (pubs[0] as PublicationFrame).offset - 1 : answer.offset;
  const position = { epoch: answer.epoch, offset: start };
  if (previous === undefined || previous.epoch !== answer.epoch || answer.recovered === false) r.cursor = position;
  if (r.state !== 'subscribed') {
    set(r, 'subscribed', 'subscribed');
    r.emit('subscribed', { recovered: answer.recovered, epoch: answer.epoch, offset: answer.offset });
  }
  if (answer.recovered === false && previous !== undefined) r.emit('unrecovered', { previous, position });
  for (const p of pubs)
    deliver(r, { stream: r.ch, channel: p.channel, epoch: answer.epoch, offset: p.offset, data: p.data });
  const c = r.cursor as StreamPosition;
  if (c.epoch === answer.epoch && c.offset < answer.offset) r.cursor = { epoch: c.epoch, offset: answer.offset };
  const held = r.held;
  r.held = [];
  // Held publications of another epoch came before the answer (an older subscription on an HTTP stream).
  for (const p of held) if (p.epoch === answer.epoch) deliver(r, p);
}

/** Delivers a publication unless it is at or before the cursor. */
function deliver(r: Rec, p: Publication): void {
  const c = r.cursor;
  if (c !== undefined && c.epoch === p.epoch && p.offset <= c.offset) return;
  r.cursor = { epoch: p.epoch, offset: p.offset };
  r.emit('publication', p);
}

export class Herald extends Emitter<HeraldEvents> {
  #state: ConnectionState = 'disconnected';
  #client: string | undefined;
  #transport: TransportName | undefined;
  /** Why the last connect cycle failed, or why the client stopped; cleared once connected. */
  #err: HeraldError | undefined;
  readonly #o: ResolvedOptions;
  readonly #base: string;
  #token: string | undefined;
  readonly #q = new Requests<Conn>(
    () => this.#conn,
    (c, frames) => c.tr.send(frames),
  );
  /** The connection in use. */
  #conn: Conn | undefined;
  /** A transport being tried while connecting. */
  #cand: Conn | undefined;
  /** A transport being opened while connected, to replace `#conn` (upgrade, token renewal). */
  #probe: Conn | undefined;
  /** The replaced HTTP transport, whose commands in flight may still answer. */
  #old: Conn | undefined;
  #gen = 0;
  #attempts = 0;
  #lastSeen = 0;
  /** Backoff wait or connect timeout (never both). */
  #timer: Timer | undefined;
  #liveTimer: Timer | undefined;
  #probeTimer: Timer | undefined;
  #tokenTimer: Timer | undefined;
  /** How each transport of this connect cycle failed, and the most telling coded error among them. */
  #fails: string[] = [];
  #coded: HeraldError | undefined;
  /** The `online`/`offline` listener (browsers). */
  readonly #net: ((e: Event) => void) | undefined;
  /** The subscriptions the application holds, by stream. */
  readonly #subs = new Map<string, Rec>();
  /** What the server holds on `#conn`, by stream: the subscription it was made for (null: not known). */
  readonly #srv = new Map<string, Rec | null>();
  /** Streams with a subscribe or unsubscribe in flight on `#conn`. */
  readonly #busy = new Set<string>();

  static {
    failure = (h) => h.#err;
  }

  /** `url`: the server's base URL, `https://rt.example.com` (`ws(s)://` works too). */
  constructor(url: string, options: HeraldOptions = {}) {
    super();
    this.#base = new URL(url, env.location?.href).href.replace(/\/+$/, '').replace(/^ws/, 'http');
    this.#o = resolveOptions(options);
    if (this.#o.upgrade && this.#find('long-poll') === undefined)
      throw new TypeError('upgrade needs the long-poll transport');
    this.#token = options.token;
    if (typeof env.addEventListener === 'function' && env.navigator?.onLine !== undefined) {
      const net = (this.#net = (e: Event) => (e.type === 'online' ? this.#online() : this.#offline()));
      env.addEventListener('online', net);
      env.addEventListener('offline', net);
    }
    if (this.#o.autoConnect) {
      // Listeners added right after `new` see every event from the first attempt on.
      this.#state = 'connecting';
      queueMicrotask(() => {
        if (this.#state === 'connecting' && this.#gen === 0) this.#cycle();
      });
    }
  }

  /** `'disconnected' | 'connecting' | 'connected' | 'closed'`. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The client id the server gave this connection (while connected). */
  get client(): string | undefined {
    return this.#client;
  }

  /** The transport in use (while connected). */
  get transport(): TransportName | undefined {
    return this.#transport;
  }

  /** Connects again after the client stopped (`disconnected`). No-op otherwise. */
  connect(): void {
    if (this.#state !== 'disconnected') return;
    this.#setState('connecting', 'connect()');
    this.#cycle();
  }

  /**
   * Gives the client a new connection token: renewed in place while connected (`refresh`), used by
   * the next attempt while connecting, and connects again when the client had stopped (a refused
   * token without `getToken`).
   */
  setToken(token: string): void {
    this.#token = token;
    if (this.#state === 'disconnected') this.connect();
    else if (this.#conn !== undefined) this.#refresh(this.#conn, token);
  }

  /** Subscribes to a channel or a subtree (`radio.**`). Throws on an invalid name or a duplicate. */
  subscribe<T = unknown>(channel: string, opts: SubscribeOptions = {}): Subscription<T> {
    if (this.#state === 'closed') throw new HeraldError('HERALD_ERR_CLIENT_CLOSED', 'the client is closed');
    if (!isStreamName(channel))
      throw new HeraldError(
        'HERALD_ERR_CHANNEL_INVALID',
        `"${channel}" is not a channel: up to 16 segments of [A-Za-z0-9_@~=+:-] and 255 bytes, \`.**\` only last`,
      );
    if (this.#subs.has(channel)) {
      throw new HeraldError('HERALD_ERR_SUBSCRIBE_ALREADY', `already subscribed to "${channel}"`);
    }
    const { signal } = opts;
    const t = this.#o.timeout;
    const r = { ch: channel, opts, h: this, t, state: 'unsubscribed', cursor: opts.since, held: [], id: 0, tries: 0 };
    const rec = r as unknown as Rec;
    rec.end = (reason) => this.#end(rec, reason);
    rec.sub = make(rec);
    this.#subs.set(channel, rec);
    set(rec, 'subscribing', 'subscribe()');
    const abort = (): void => rec.end('signal aborted');
    if (signal?.aborted === true) abort();
    else {
      if (signal !== undefined) {
        signal.addEventListener('abort', abort, { once: true });
        rec.off = () => signal.removeEventListener('abort', abort);
      }
      this.#sync(channel);
    }
    return rec.sub as Subscription<T>;
  }

  /** Every subscription of this client, by stream. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return new Map([...this.#subs].map(([ch, r]) => [ch, r.sub]));
  }

  getSubscription<T = unknown>(channel: string): Subscription<T> | undefined {
    return this.#subs.get(channel)?.sub as Subscription<T> | undefined;
  }

  publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishResult> {
    return this.#call({ cmd: 'publish', channel, data, idempotencyKey: opts.idempotencyKey }, opts);
  }

  history<T = unknown>(channel: string, opts: HistoryOptions = {}): Promise<HistoryResult<T>> {
    const { limit, since, reverse, latest } = opts;
    return this.#call({ cmd: 'history', channel, limit, since, reverse, latest }, opts);
  }

  /** Who is subscribed to `channel` now, on every node (a namespace with `presence` on). */
  presence(channel: string, opts: CallOptions = {}): Promise<PresenceResult> {
    return this.#call({ cmd: 'presence', channel }, opts);
  }

  /** How many clients and distinct users are subscribed to `channel` now. */
  presenceStats(channel: string, opts: CallOptions = {}): Promise<PresenceStatsResult> {
    return this.#call({ cmd: 'presenceStats', channel }, opts);
  }

  /** Calls the application backend through the server (`auth.hooks.rpc`); resolves with its answer. */
  async rpc<R = unknown>(method: string, data?: unknown, opts: CallOptions = {}): Promise<R> {
    return (await this.#call<{ data: R }>({ cmd: 'rpc', method, data }, opts)).data;
  }

  /** A round trip to the server; resolves with the time it took, in ms. */
  async ping(opts: CallOptions = {}): Promise<number> {
    const start = Date.now();
    await this.#call({ cmd: 'ping' }, opts);
    return Date.now() - start;
  }

  /**
   * Ends everything, for good: pending commands reject with `HERALD_ERR_CLIENT_CLOSED`,
   * subscriptions end, iterators finish; no timer, socket, request or listener is left.
   */
  close(): void {
    if (this.#state === 'closed') return;
    const closed = new HeraldError('HERALD_ERR_CLIENT_CLOSED', 'the client was closed');
    for (const r of this.#subs.values()) {
      r.off?.();
      r.err = closed;
      set(r, 'unsubscribed', 'close()');
    }
    this.#subs.clear();
    this.#gen++;
    for (const t of [this.#timer, this.#liveTimer, this.#probeTimer, this.#tokenTimer]) clearTimeout(t);
    for (const c of [this.#conn, this.#cand, this.#probe, this.#old]) c?.tr.close(true);
    this.#conn = this.#cand = this.#probe = this.#old = undefined;
    if (this.#net !== undefined) {
      env.removeEventListener?.('online', this.#net);
      env.removeEventListener?.('offline', this.#net);
    }
    this.#q.fail(undefined, closed);
    this.#setState('closed', 'close()');
  }

  #setState(state: ConnectionState, reason: string, code?: number, retryIn?: number, error?: HeraldError): void {
    const prev = this.#state;
    if (prev === state && error === undefined) return;
    this.#state = state;
    this.emit('state', { state, prev, reason, code, retryIn, error });
  }

  // ---- connecting ------------------------------------------------------------------------------

  /** One connect cycle: a fresh token, then each transport in order until one connects. */
  #cycle(): void {
    const gen = ++this.#gen;
    // A new cycle gives up the wait, or the attempt, of the one before.
    clearTimeout(this.#timer);
    this.#cand?.tr.close(true);
    this.#cand = undefined;
    this.#fails = [];
    this.#coded = undefined;
    const get = this.#o.getToken;
    if (get === undefined) return void this.#attempt(gen, 0);
    get().then(
      (token) => {
        if (gen !== this.#gen) return;
        this.#token = token;
        this.#attempt(gen, 0);
      },
      (err: unknown) => {
        if (gen !== this.#gen) return;
        this.emit('error', err);
        this.#wait();
      },
    );
  }

  #attempt(gen: number, i: number): void {
    if (gen !== this.#gen) return;
    const t = (this.#o.upgrade ? [this.#find('long-poll')] : this.#o.transports)[i];
    if (t === undefined) return this.#failed(gen);
    const c = (this.#cand = this.#open(t, i + 1));
    const ms = this.#o.connectTimeout;
    const why = `no connected push within ${ms} ms`;
    this.#timer = setTimeout(() => this.#drop(c, 1006, why, new HeraldError('HERALD_ERR_TIMEOUT', why)), ms);
  }

  /**
   * Every transport failed: say why (an `error` event, and a `state` event whose reason and `error`
   * name the cause), then wait for the next cycle. Browsers hide why a cross-origin request failed;
   * a `no-cors` request (whose answer stays unreadable) still tells whether the server answers.
   */
  #failed(gen: number): void {
    const done = (err: HeraldError): void => {
      if (gen !== this.#gen) return;
      this.#err = err;
      this.#setState('connecting', err.message, undefined, this.#wait(), err);
      this.emit('error', err);
    };
    const base = this.#base;
    const coded = this.#coded;
    const page = env.location?.origin;
    const why = `cannot connect to ${base}: ${this.#fails.join('; ')}`;
    const failed = new HeraldError(coded?.code ?? 'HERALD_ERR_CLIENT_DISCONNECTED', why);
    if (coded !== undefined || page === undefined) return done(failed);
    const signal = AbortSignal.timeout(this.#o.connectTimeout);
    this.#o.fetch(base, { mode: 'no-cors', cache: 'no-store', signal }).then(
      () => done(new HeraldError('HERALD_ERR_PERMISSION_DENIED', `${base} refuses origin ${page} (allowedOrigins?)`)),
      () => done(new HeraldError('HERALD_ERR_CLIENT_DISCONNECTED', `no answer from ${base}`)),
    );
  }

  /** Waits, then starts a new cycle: `delay` (the server's hint) or the backoff. Returns the wait. */
  #wait(delay = backoff(this.#attempts++, this.#o.minReconnectDelay, this.#o.maxReconnectDelay)): number {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#cycle(), delay);
    return delay;
  }

  #find(name: TransportName): HeraldTransport | undefined {
    return this.#o.transports.find((t) => t.name === name);
  }

  #open(t: HeraldTransport, next: number): Conn {
    const c = { name: t.name, next } as Conn;
    c.tr = t.open(
      // The options give `fetch`, `WebSocket`, `credentials`, `pollTimeout` and `connectTimeout`.
      { ...this.#o, base: this.#base, token: () => this.#token, cursors: () => this.#cursors() },
      {
        frame: (f) => this.#frame(c, f),
        alive: () => {
          if (c === this.#conn) this.#lastSeen = Date.now();
        },
        closed: (code, reason, err) => this.#closed(c, code, reason, err),
      },
    );
    return c;
  }

  #startProbe(t: HeraldTransport): void {
    const c = (this.#probe = this.#open(t, 0));
    this.#probeTimer = setTimeout(() => this.#drop(c, 1006, 'probe timed out'), this.#o.connectTimeout);
  }

  #connected(c: Conn, push: ConnectedPush): void {
    if (c === this.#cand) {
      clearTimeout(this.#timer);
      this.#cand = undefined;
      this.#attempts = 0;
    } else if (c === this.#probe && this.#conn !== undefined) {
      // Make before break: the new transport takes over; every subscription resumes from its cursor.
      clearTimeout(this.#probeTimer);
      this.#probe = undefined;
      const old = this.#conn;
      this.#old?.tr.close(true);
      this.#old = old.name === 'websocket' ? undefined : old;
      old.tr.close(old.name === 'websocket');
      // Replies to what was sent on a closed WebSocket will not come.
      if (this.#old === undefined) this.#q.fail(old, lost(1000, 'replaced'));
    } else return;
    this.#conn = c;
    this.#client = push.client;
    this.#transport = c.name;
    this.#err = undefined;
    this.#lastSeen = Date.now();
    this.#live(push.pingInterval);
    this.#planRenewal();
    // Subscribe everything on the new connection (which holds nothing yet).
    this.#srv.clear();
    this.#busy.clear();
    for (const ch of this.#subs.keys()) this.#sync(ch);
    this.#q.flush();
    this.#setState('connected', `connected over ${c.name}`);
    this.emit('connected', { client: push.client, transport: c.name });
    const ws = this.#find('websocket');
    if (this.#o.upgrade && c.name === 'long-poll' && ws !== undefined) this.#startProbe(ws);
  }

  /** A transport ended by itself (or was dropped): try the next, or reconnect, or stop. */
  #closed(c: Conn, code: number, reason: string, err?: HeraldError): void {
    if (c.dis !== undefined) ({ code, reason } = c.dis);
    const auth = code === 3510 || code === 3511;
    if (auth)
      err ??= new HeraldError(
        code === 3511 ? 'HERALD_ERR_AUTH_TOKEN_EXPIRED' : 'HERALD_ERR_AUTH_TOKEN_INVALID',
        reason,
      );
    const final = !shouldReconnect(code) && !(auth && this.#o.getToken !== undefined);
    if (c === this.#cand) {
      clearTimeout(this.#timer);
      this.#cand = undefined;
      this.#fails.push(`${c.name}: ${reason || code}`);
      // A refusal from the server says more than a timeout (which says more than nothing).
      if (err !== undefined && (this.#coded === undefined || err.code !== 'HERALD_ERR_TIMEOUT')) this.#coded = err;
      if (final) return this.#stop(code, reason, err);
      // A refused token: other transports would refuse it too; wait, then start over with a new one.
      if (auth) return this.#failed(this.#gen);
      return this.#attempt(this.#gen, c.next);
    }
    if (c === this.#probe) {
      clearTimeout(this.#probeTimer);
      this.#probe = undefined;
      return;
    }
    if (c !== this.#conn) return;
    this.#conn = this.#client = this.#transport = undefined;
    for (const t of [this.#liveTimer, this.#probeTimer, this.#tokenTimer]) clearTimeout(t);
    this.#probe?.tr.close(true);
    this.#probe = undefined;
    this.#q.fail(c, lost(code, reason));
    // Every subscription waits for the next connection.
    this.#srv.clear();
    this.#busy.clear();
    for (const r of this.#subs.values()) set(r, 'subscribing', 'disconnected');
    if (final) return this.#stop(code, reason, err);
    this.#setState('connecting', reason, code, this.#wait(c.dis?.retryAfterMs));
  }

  /**
   * Stops until `connect()` (or `setToken()`): `err` is why (a refused token, also emitted as
   * `error`); without one, the server said not to reconnect.
   */
  #stop(code: number, reason: string, err?: HeraldError): void {
    const gone = lost(code, reason);
    this.#err = err ?? gone;
    this.#setState('disconnected', reason, code, undefined, this.#err);
    if (err !== undefined) this.emit('error', err);
    this.#q.fail('queued', gone);
  }

  /** Closes a transport from this side, and handles it as if it had ended by itself. */
  #drop(c: Conn, code: number, reason: string, err?: HeraldError): void {
    c.tr.close(true);
    this.#closed(c, code, reason, err);
  }

  /** `offline`: the connection is suspect (a dead network may leave it open and silent): drop it. */
  #offline(): void {
    if (this.#conn !== undefined) this.#drop(this.#conn, 1006, 'offline');
  }

  /**
   * `online`: reconnect at once, skipping the backoff wait and giving up an attempt made while
   * offline (a connection that survived is replaced too: the new one's `connected` proves the path).
   */
  #online(): void {
    if (this.#conn !== undefined) this.#drop(this.#conn, 1006, 'online');
    if (this.#state !== 'connecting') return;
    this.#attempts = 0;
    this.#cycle();
  }

  /**
   * Liveness: ping when the server has been quiet for `interval` (its ping or heartbeat interval);
   * give the connection up after `2 * interval + timeout` without a byte.
   */
  #live(interval: number): void {
    const step = Math.max(50, interval / 2);
    clearTimeout(this.#liveTimer);
    this.#liveTimer = setTimeout(() => {
      const c = this.#conn;
      if (c === undefined) return;
      const idle = Date.now() - this.#lastSeen;
      if (idle > 2 * interval + this.#o.timeout) return this.#drop(c, 3003, `no data from the server for ${idle} ms`);
      if (idle >= interval) this.#q.add({ cmd: 'ping' }, () => undefined, this.#o.timeout);
      this.#live(interval);
    }, step);
  }

  /** Plans a token renewal at 90% of the JWT's lifetime (the server may also ask: `refresh` push). */
  #planRenewal(): void {
    const exp = this.#token === undefined ? undefined : expiry(this.#token);
    clearTimeout(this.#tokenTimer);
    if (this.#o.getToken !== undefined && exp !== undefined) {
      this.#tokenTimer = setTimeout(() => this.#renew(), Math.max(0, (exp - Date.now()) * 0.9));
    }
  }

  /** Gets a new token and sends `refresh`. */
  #renew(): void {
    const c = this.#conn;
    const get = this.#o.getToken;
    clearTimeout(this.#tokenTimer);
    if (c === undefined || get === undefined) return;
    get().then(
      (token) => {
        if (c !== this.#conn) return;
        this.#token = token;
        this.#refresh(c, token);
      },
      (err: unknown) => this.emit('error', err),
    );
  }

  /** Sends `refresh` with a new token; if the server refuses, a new connection takes over. */
  #refresh(c: Conn, token: string): void {
    const done = (err: unknown): void => {
      if (err === undefined) {
        this.#planRenewal();
        // A held long-poll carries the old token: poll again with the new one.
        if (c === this.#conn) c.tr.refresh?.();
      } else if (c === this.#conn && this.#probe === undefined) this.#startProbe(this.#find(c.name) as HeraldTransport);
    };
    this.#q.add({ cmd: 'refresh', token }, done, this.#o.timeout);
  }

  // ---- frames and commands ----------------------------------------------------------------------

  #frame(c: Conn, f: InFrame): void {
    // On JSON transports a payload published as bytes comes as `b64data`: it is delivered as bytes.
    type Payload = { data?: unknown; b64data?: string };
    const g = f as { result?: { publications?: Payload[] }; publications?: Payload[] };
    for (const p of g.result?.publications ?? g.publications ?? [f as Payload])
      if ('b64data' in p) p.data = Uint8Array.from(atob(p.b64data as string), (x) => x.charCodeAt(0));
    if (!('push' in f)) {
      const err = 'error' in f ? new HeraldError(f.error.code, f.error.message) : undefined;
      if (f.id === undefined) return this.emit('error', err);
      this.#q.settle(f.id, err, 'result' in f ? f.result : undefined, c);
      if (err?.code === 'HERALD_ERR_AUTH_TOKEN_EXPIRED' && c === this.#conn) this.#drop(c, 3511, err.message);
      return;
    }
    if (f.push === 'connected') return this.#connected(c, f);
    if (f.push === 'disconnect') {
      c.dis = f;
      return;
    }
    if (c !== this.#conn) return;
    if (f.push === 'refresh') return this.#renew();
    if (f.push === 'join' || f.push === 'leave') {
      // To the subscription of that exact channel, once the server holds it for this connection.
      const { push, channel, ...who } = f;
      const j = this.#subs.get(channel);
      if (j !== undefined && this.#srv.get(channel) === j) j.emit(push, who);
      return;
    }
    const r = this.#subs.get(f.stream);
    if (r === undefined) return;
    if (f.push === 'pub') {
      const p = { stream: f.stream, channel: f.channel, epoch: f.epoch, offset: f.offset, data: f.data };
      if (r.on === c) r.held.push(p);
      else if (this.#srv.get(f.stream) === r) deliver(r, p);
    } else if (f.push === 'subscribed') apply(r, f);
    // Dropped by the server's slow-consumer policy, not lost: the publications after it move the cursor on.
    else if (f.push === 'skip') r.emit('skip', f);
    else if (f.code !== undefined) {
      // A stream refused for now (the engine unavailable, a node unreachable: 5xx) is retried like a
      // subscribe reply with that code: the connection is dropped and every stream resubscribes from
      // its cursor after the backoff. Only a final refusal ends the subscription.
      const err = new HeraldError(f.code, f.reason);
      if (transient(err)) this.#drop(c, 3000, `${r.ch}: ${f.reason}`);
      else {
        this.#srv.delete(f.stream);
        this.#end(r, err.message, err);
      }
    }
  }

  #call<R>(cmd: OutCommand, opts: CallOptions): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const { signal } = opts;
      const s = this.#state;
      if (s === 'closed' || s === 'disconnected') {
        const code = s === 'closed' ? 'HERALD_ERR_CLIENT_CLOSED' : 'HERALD_ERR_CLIENT_DISCONNECTED';
        return reject(new HeraldError(code, `the client is ${s}`));
      }
      if (signal?.aborted === true) return reject(signal.reason);
      const abort = (): void => this.#q.settle(id, signal?.reason);
      const id = this.#q.add(
        cmd,
        (err, result) => {
          signal?.removeEventListener('abort', abort);
          if (err === undefined) resolve(result as R);
          else reject(err as Error);
        },
        opts.timeout ?? this.#o.timeout,
      );
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  // ---- subscriptions -----------------------------------------------------------------------------

  /** Cursors of the subscriptions the server holds (what a long-poll asks for). */
  #cursors(): Map<string, StreamPosition> {
    const out = new Map<string, StreamPosition>();
    for (const [ch, r] of this.#subs)
      if (this.#srv.get(ch) === r && r.on === undefined && r.cursor !== undefined) out.set(ch, r.cursor);
    return out;
  }

  #end(r: Rec, reason: string, err?: HeraldError): void {
    const ch = r.ch;
    if (this.#subs.get(ch) !== r) return;
    this.#subs.delete(ch);
    r.off?.();
    r.err = err ?? new HeraldError('HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED', `the subscription ended: ${reason}`);
    // A subscribe not sent yet is taken back: the server never hears of it.
    if (r.on !== undefined && this.#q.unsend(r.id)) this.#busy.delete(ch);
    r.on = undefined;
    r.held = [];
    set(r, 'unsubscribed', reason, err);
    this.#sync(ch);
    this.#conn?.tr.refresh?.();
  }

  /** The step on `ch` in flight is done: take the next one. */
  #next(c: Conn, ch: string): void {
    if (c !== this.#conn) return;
    this.#busy.delete(ch);
    this.#sync(ch);
  }

  /** Takes one step on `ch` towards what the application wants, unless one is in flight. */
  #sync(ch: string): void {
    const c = this.#conn;
    if (c === undefined || this.#busy.has(ch)) return;
    const want = this.#subs.get(ch);
    const have = this.#srv.get(ch);
    if (want === have) return;
    this.#busy.add(ch);
    const timeout = this.#o.timeout;
    if (have !== undefined) {
      // The server holds the stream for an older subscription (or one the client lost track of): end it first.
      const done = (): void => {
        if (c === this.#conn) this.#srv.delete(ch);
        this.#next(c, ch);
      };
      this.#q.add({ cmd: 'unsubscribe', channel: ch }, done, timeout);
      return;
    }
    const r = want as Rec;
    r.on = c;
    r.held = [];
    r.id = 0;
    const answered = (err: unknown, result: unknown, via: Conn | undefined): void => {
      if (c !== this.#conn) return;
      if (r.on === c) r.on = undefined;
      const code = (err as HeraldError | undefined)?.code;
      if (err === undefined) {
        this.#srv.set(ch, r);
        if (this.#subs.get(ch) === r) {
          r.tries = 0;
          apply(r, result as SubscribeResult);
        }
        via?.tr.refresh?.();
      } else if (code === 'HERALD_ERR_SUBSCRIBE_ALREADY' && ++r.tries < 4) {
        // The server holds the stream already (the client lost track of it): unsubscribe, then
        // subscribe again from the cursor.
        this.#srv.set(ch, null);
      } else if (transient(err)) return this.#drop(c, 3000, `${ch}: ${String(err)}`);
      else this.#end(r, String(err), err as HeraldError);
      this.#next(c, ch);
    };
    const send = (token?: string): void => {
      if (c !== this.#conn) return;
      if (this.#subs.get(ch) !== r) return this.#next(c, ch);
      const cmd = { cmd: 'subscribe' as const, channel: ch, since: r.cursor, backlog: r.opts.backlog, token };
      r.id = this.#q.add(cmd, answered, timeout);
    };
    const get = r.opts.getToken;
    if (get === undefined) return send();
    get(ch).then(send, (err: unknown) => {
      if (c !== this.#conn) return;
      const e =
        err instanceof HeraldError ? err : new HeraldError('HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED', String(err));
      this.#end(r, e.message, e);
      this.#next(c, ch);
    });
  }
}
