/**
 * `SharedHerald`: the `Herald` API in a tab, over one connection shared by every tab of the origin
 * that uses the same URL (and `name`). One owner holds the real connection (owner.ts):
 *
 * - a SharedWorker, when the browser has them and the worker script's URL is known (the `<script>`
 *   bundle `herald-shared.min.js` is its own worker script);
 * - otherwise the leader tab, elected with Web Locks; the tabs talk to it over a BroadcastChannel.
 *   When the leader tab goes, the lock passes to another tab, which opens a new connection; every
 *   tab registers its subscriptions again with its cursor, and recovers from it, and sends its
 *   commands that were not answered again (a publish with the same idempotency key: every publish
 *   gets one, so the server applies it once).
 * - Without Web Locks (Node, a page that is not a secure context), the tab keeps its own connection.
 *
 * Each tab holds a lock of its own while it lives, so that the owner learns when a tab is gone.
 */
import {
  HeraldError,
  checkChannel,
  type HistoryResult,
  type PresenceResult,
  type PresenceStatsResult,
  type PublishResult,
} from '@herald/protocol';
import {
  Emitter,
  type CallOptions,
  type ConnectionState,
  type HeraldEvents,
  type HeraldOptions,
  type HistoryOptions,
  type PublishOptions,
  type SubscribeOptions,
  type TransportName,
} from '../index.js';
import {
  fromWire,
  lockName,
  toWire,
  whenGone,
  type CallOpts,
  type Method,
  type ToOwner,
  type ToTab,
  type WireError,
} from './messages.js';
import { Owner, type Peer } from './owner.js';
import { SharedSubscription, type SharedSubscriptionHost } from './shared-subscription.js';

export interface SharedHeraldOptions extends HeraldOptions {
  /**
   * The SharedWorker script: `herald-shared.min.js`, or a module that calls `serveSharedWorker()`.
   * Default: in the `<script>` bundle, the bundle's own URL; otherwise none. `false`: no worker,
   * the tabs elect a leader. In a worker, the functions among the options (`fetch`, `WebSocket`)
   * are not used; `getToken` is called in a tab.
   */
  worker?: string | URL | false;
  /** `'module'` when the worker script is an ES module. */
  workerType?: WorkerType;
  /** Tabs with the same `name` share a connection (default: the URL). The first tab's options win. */
  name?: string;
}

/** How this tab reaches the connection. */
export type SharedRole = 'worker' | 'leader' | 'follower' | 'local';

interface Call {
  readonly id: number;
  readonly m: Method;
  readonly a: unknown[];
  readonly o: CallOpts;
  /** When the tab gives up on it (`Date.now()` ms). */
  readonly deadline: number;
  /** Sent to an owner (which may have gone without answering). */
  sent: boolean;
  done(err: unknown, value?: unknown): void;
}

/** What the tabs say on the BroadcastChannel: `o` to the owner, `m` from it, or an election notice. */
interface Envelope {
  from: string;
  to?: string;
  term?: number;
  lead?: boolean;
  who?: boolean;
  o?: ToOwner;
  m?: ToTab;
}

/** Resolves when `signal` aborts: holds a lock until then. */
function until(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export class SharedHerald extends Emitter<HeraldEvents> {
  /** The worker script used when the `worker` option is not given (the `<script>` bundle sets its own). */
  static workerUrl: string | undefined;

  state: ConnectionState = 'connecting';
  client: string | undefined;
  transport: TransportName | undefined;
  role: SharedRole = 'local';
  private readonly id = Math.random().toString(36).slice(2) + Date.now().toString(36);
  private readonly url: string;
  private readonly name: string;
  private readonly opts: HeraldOptions;
  private readonly timeout: number;
  private readonly subs = new Map<string, SharedSubscription>();
  private readonly calls = new Map<number, Call>();
  private nextId = 1;
  /** Numbers the idempotency keys this tab makes up. */
  private nextKey = 1;
  /** The connection's token as this tab knows it: its own, or the latest `setToken()` of any tab. */
  private token: string | undefined;
  /** A `setToken()` of this tab that no owner has confirmed yet: sent to the next one. */
  private newToken: string | undefined;
  /** Why the shared connection failed or stopped (from the owner's `state`); undefined once connected. */
  private err: HeraldError | undefined;
  /** What this tab's subscriptions use of it. */
  private readonly host: SharedSubscriptionHost;
  /** Sends to the current owner; undefined while there is none (before an election). */
  private post: ((m: ToOwner) => void) | undefined;
  private readonly stop = new AbortController();
  private port: MessagePort | undefined;
  private bc: BroadcastChannel | undefined;
  private leader: string | undefined;
  private term = 0;
  /** Leader: the connection, and the other tabs. */
  private owner: Owner | undefined;
  private readonly peers = new Map<string, Peer>();

  constructor(url: string, options: SharedHeraldOptions = {}) {
    super();
    const { worker, workerType, name, ...opts } = options;
    this.url = new URL(url, (globalThis as { location?: { href: string } }).location?.href).href;
    this.name = name ?? this.url;
    this.opts = opts;
    this.timeout = opts.timeout ?? 10_000;
    this.host = {
      publish: (ch, data, o) => this.publish(ch, data, o),
      history: (ch, o) => this.history(ch, o),
      presence: (ch, o) => this.presence(ch, o),
      presenceStats: (ch, o) => this.presenceStats(ch, o),
      removeSubscription: (sub) => this.removeSubscription(sub),
      timeout: this.timeout,
      stopped: () => (this.state === 'disconnected' ? this.failure() : undefined),
      onState: (fn) => this.on('state', fn),
    };
    this.token = opts.token;
    const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
    if (locks === undefined) {
      this.connectTo(this.local((this.owner = new Owner(this.url, opts))));
      return;
    }
    // Held while this tab lives, so that the owner sees the tab go even if it never says goodbye. The
    // tab talks to an owner once it holds it: else the owner could find the lock free and drop the tab.
    const script = worker === false ? undefined : (worker ?? SharedHerald.workerUrl);
    const shared = script !== undefined && typeof SharedWorker === 'function';
    this.role = shared ? 'worker' : 'follower';
    const join = (): Promise<void> => {
      if (this.state === 'closed') return Promise.resolve();
      if (shared) this.useWorker(locks, script, workerType);
      else this.elect(locks);
      return until(this.stop.signal);
    };
    locks.request(lockName(this.name, this.id), join).catch(() => undefined);
  }

  /** Subscribes this tab to a channel or a subtree; the owner subscribes once for every tab. */
  subscribe<T = unknown>(channel: string, opts: SubscribeOptions = {}): SharedSubscription<T> {
    if (this.state === 'closed') throw new HeraldError('HERALD_ERR_CLIENT_CLOSED', 'the client is closed');
    const check = checkChannel(channel);
    if (!check.ok) throw new HeraldError('HERALD_ERR_CHANNEL_INVALID', check.reason);
    if (this.subs.has(channel)) {
      throw new HeraldError('HERALD_ERR_SUBSCRIBE_ALREADY', `already subscribed to "${channel}"`);
    }
    const sub = new SharedSubscription<T>(this.host, channel, opts);
    this.subs.set(channel, sub as unknown as SharedSubscription);
    sub.change('subscribing', 'subscribe()');
    this.post?.(this.subMessage(sub as unknown as SharedSubscription));
    if (opts.signal?.aborted === true) sub.unsubscribe();
    opts.signal?.addEventListener('abort', () => sub.unsubscribe(), { once: true });
    return sub;
  }

  get subscriptions(): ReadonlyMap<string, SharedSubscription> {
    return this.subs;
  }

  getSubscription<T = unknown>(channel: string): SharedSubscription<T> | undefined {
    return this.subs.get(channel) as SharedSubscription<T> | undefined;
  }

  /** `SharedSubscription.unsubscribe()`: ends this tab's subscription only. */
  private removeSubscription(sub: SharedSubscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    sub.change('unsubscribed', 'unsubscribe()');
    this.post?.({ t: 'unsub', ch: sub.channel });
  }

  /**
   * Publishes through the owner. Without `opts.idempotencyKey`, the publish gets one of its own (but
   * in the `local` role), so that sent again after a handover it is still applied once; its result
   * then says `duplicate: false`.
   */
  publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishResult> {
    const mine = opts.idempotencyKey === undefined && this.role !== 'local';
    const idempotencyKey = mine ? `herald:${this.id}:${this.nextKey++}` : opts.idempotencyKey;
    const sent = this.call<PublishResult>('publish', [channel, data], { idempotencyKey }, opts);
    return mine ? sent.then((r) => ({ ...r, duplicate: false })) : sent;
  }

  history<T = unknown>(channel: string, opts: HistoryOptions = {}): Promise<HistoryResult<T>> {
    const { limit, since, reverse, latest } = opts;
    return this.call('history', [channel], { limit, since, reverse, latest }, opts);
  }

  /** Who is subscribed to `channel` now (through the owner). */
  presence(channel: string, opts: CallOptions = {}): Promise<PresenceResult> {
    return this.call('presence', [channel], {}, opts);
  }

  /** How many clients and distinct users are subscribed to `channel` now (through the owner). */
  presenceStats(channel: string, opts: CallOptions = {}): Promise<PresenceStatsResult> {
    return this.call('presenceStats', [channel], {}, opts);
  }

  /**
   * Calls the application backend through the owner. Unlike the other commands, an `rpc` sent to a
   * leader tab that closed before the reply is not sent again (the backend may have run it): it
   * rejects with `HERALD_ERR_CLIENT_DISCONNECTED`, like one whose connection dropped.
   */
  rpc<R = unknown>(method: string, data?: unknown, opts: CallOptions = {}): Promise<R> {
    return this.call('rpc', [method, data], {}, opts);
  }

  /** A round trip to the server through the owner; resolves with the time it took, in ms. */
  async ping(opts: CallOptions = {}): Promise<number> {
    const start = Date.now();
    await this.call('ping', [], {}, opts);
    return Date.now() - start;
  }

  /**
   * Gives the shared connection a new token, from any tab: the owner renews it in place while
   * connected, uses it for its next attempt while connecting, and connects again when it had
   * stopped on a refused token (no `getToken`). The tabs keep it, and a next owner starts with it.
   */
  setToken(token: string): void {
    if (this.state === 'closed') return;
    this.token = this.newToken = token;
    if (this.post === undefined) return;
    this.post({ t: 'token', v: token });
    this.restarting('setToken()');
  }

  /** Connects again after the shared connection stopped (`disconnected`). */
  connect(): void {
    if (this.state !== 'disconnected' || this.post === undefined) return;
    this.post({ t: 'connect' });
    this.restarting('connect()');
  }

  /** The owner connects again (as `Herald` does, the state says so at once): `ready()` waits. */
  private restarting(reason: string): void {
    if (this.state !== 'disconnected') return;
    this.err = undefined;
    this.setState('connecting', reason);
  }

  /** Ends this tab's use of the connection: its subscriptions end, its commands reject. The leader hands over. */
  close(): void {
    if (this.state === 'closed') return;
    this.post?.({ t: 'bye' });
    this.post = undefined;
    const closed = new HeraldError('HERALD_ERR_CLIENT_CLOSED', 'the client was closed');
    for (const sub of this.subs.values()) sub.change('unsubscribed', 'close()', undefined, closed);
    this.subs.clear();
    for (const c of this.calls.values()) c.done(closed);
    this.owner?.close();
    this.stop.abort(); // releases this tab's locks (the leader's too: another tab takes over)
    this.bc?.close();
    this.port?.close();
    this.client = this.transport = undefined;
    this.setState('closed', 'close()');
  }

  private setState(state: ConnectionState, reason: string, code?: number, retryIn?: number, error?: HeraldError): void {
    const prev = this.state;
    if (prev === state && error === undefined) return;
    this.state = state;
    this.emit('state', { state, prev, reason, code, retryIn, error });
  }

  /** Why the shared connection stopped (`disconnected`). */
  private failure(): HeraldError {
    return this.err ?? new HeraldError('HERALD_ERR_CLIENT_DISCONNECTED', 'the shared connection stopped');
  }

  // ---- the owner -----------------------------------------------------------------------------

  /**
   * A new owner: everything is registered again, and the commands not answered are sent again (a
   * publish with its idempotency key), except an `rpc` that the old owner got: that one fails.
   */
  private connectTo(post: (m: ToOwner) => void): void {
    this.post = post;
    for (const c of this.calls.values()) {
      if (c.sent && c.m === 'rpc')
        c.done(new HeraldError('HERALD_ERR_CLIENT_DISCONNECTED', 'the shared connection moved before the reply'));
    }
    this.client = this.transport = this.err = undefined;
    this.setState('connecting', 'the shared connection moved to a new owner');
    const { getToken, fetch: _f, WebSocket: _w, transports, ...rest } = this.opts;
    // Structured-cloneable: transports by name, and the latest token this tab knows.
    const names = transports?.map((t) => (typeof t === 'string' ? t : t.name));
    const opts = { ...rest, ...(names === undefined ? {} : { transports: names }), token: this.token };
    post({ t: 'hello', tab: this.id, name: this.name, url: this.url, opts, token: getToken !== undefined });
    if (this.newToken !== undefined) post({ t: 'token', v: this.newToken });
    for (const sub of this.subs.values()) {
      sub.change('subscribing', 'the shared connection moved to a new owner');
      post(this.subMessage(sub));
    }
    for (const c of this.calls.values()) this.send(c);
  }

  /** Sends a command to the owner, with what is left of its timeout. */
  private send(c: Call): void {
    const post = this.post;
    if (post === undefined) return;
    c.sent = true;
    post({ t: 'call', id: c.id, m: c.m, a: c.a, o: { ...c.o, timeout: Math.max(1, c.deadline - Date.now()) } });
  }

  private subMessage(sub: SharedSubscription): ToOwner {
    const since = sub.cursor;
    const backlog = since === undefined ? sub.backlog : undefined;
    return { t: 'sub', ch: sub.channel, since, backlog, token: sub.opts.getToken !== undefined };
  }

  private receive(m: ToTab): void {
    if (this.state === 'closed') return;
    switch (m.t) {
      case 'state': {
        this.client = m.client;
        this.transport = m.transport;
        const error = m.e === undefined ? undefined : (fromWire(m.e) as HeraldError);
        if (m.state === 'connected') this.err = undefined;
        else if (error !== undefined) this.err = error;
        return this.setState(m.state, m.reason, m.code, m.retryIn, error);
      }
      case 'connected':
        return this.emit('connected', { client: m.client, transport: m.transport });
      case 'error': {
        // The error of the `state` event just before, when it is the same (as `Herald` emits it).
        const err = this.err;
        const same = err !== undefined && err.code === m.e.code && err.message === m.e.message;
        return this.emit('error', same ? err : fromWire(m.e));
      }
      case 'token':
        this.token = m.v;
        if (m.v === this.newToken) this.newToken = undefined;
        return;
      case 'sstate': {
        const sub = this.subs.get(m.ch);
        if (sub === undefined) return;
        if (m.state === 'unsubscribed') this.subs.delete(m.ch);
        return sub.change(m.state, m.reason, m.e === undefined ? undefined : (fromWire(m.e) as HeraldError));
      }
      case 'subscribed':
        return this.subs.get(m.ch)?.subscribed(m.ev);
      case 'pos':
        return this.subs.get(m.ch)?.sync(m.at);
      case 'pub':
        return this.subs.get(m.p.stream)?.take(m.p);
      case 'pres':
        return this.subs.get(m.ch)?.presenceEvent(m.k, m.v);
      case 'result':
        return this.calls.get(m.id)?.done(m.e === undefined ? undefined : fromWire(m.e), m.v);
      case 'ask': {
        const post = this.post;
        const reply = (v?: string, e?: WireError): void => post?.({ t: 'answer', id: m.id, v, e });
        const { ch } = m;
        const get = ch === undefined ? this.opts.getToken : this.subs.get(ch)?.opts.getToken?.bind(undefined, ch);
        if (get === undefined) return reply(undefined, { message: 'no getToken in this tab' });
        return void get().then(reply, (err: unknown) => reply(undefined, toWire(err)));
      }
    }
  }

  /** `a`: the method's arguments before its options; `o`: its options (without timeout and signal). */
  private call<R>(m: Method, a: unknown[], o: Omit<CallOpts, 'timeout'>, opts: CallOptions): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.state === 'closed') return reject(new HeraldError('HERALD_ERR_CLIENT_CLOSED', 'the client is closed'));
      const { signal } = opts;
      if (signal?.aborted === true) return reject(signal.reason);
      const id = this.nextId++;
      const timeout = opts.timeout ?? this.timeout;
      const done = (err: unknown, value?: unknown): void => {
        if (!this.calls.delete(id)) return;
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        if (err === undefined) resolve(value as R);
        else reject(err as Error);
      };
      const abort = (): void => done(signal?.reason);
      const timer = setTimeout(
        () => done(new HeraldError('HERALD_ERR_TIMEOUT', `${m}: no reply within ${timeout} ms`)),
        timeout,
      );
      const c: Call = { id, m, a, o: { ...o, timeout }, deadline: Date.now() + timeout, sent: false, done };
      this.calls.set(id, c);
      signal?.addEventListener('abort', abort, { once: true });
      this.send(c);
    });
  }

  /** An owner in this tab: this tab is one of its peers, through microtasks. */
  private local(owner: Owner): (m: ToOwner) => void {
    const peer: Peer = { send: (m) => queueMicrotask(() => this.receive(m)), subs: new Map(), token: false };
    owner.attach(peer);
    return (m) => queueMicrotask(() => owner.receive(peer, m));
  }

  // ---- leader election (no SharedWorker) -------------------------------------------------------

  /** A SharedWorker owns the connection. */
  private useWorker(locks: LockManager, script: string | URL, type: WorkerType | undefined): void {
    this.role = 'worker';
    const w = new SharedWorker(script, { name: `herald:${this.name}`, type });
    const port = (this.port = w.port);
    // The script did not load (or no answer in time: a failed load is not reported to every tab that
    // asked for the worker meanwhile): elect a leader instead.
    const fail = (): void => {
      clearTimeout(timer);
      if (this.port !== port || this.state === 'closed') return;
      port.postMessage({ t: 'bye' } satisfies ToOwner);
      port.close();
      this.port = this.post = undefined;
      // The worker never ran: nothing it was sent has been done.
      for (const c of this.calls.values()) c.sent = false;
      this.elect(locks);
    };
    const timer = setTimeout(fail, this.opts.connectTimeout ?? 5000);
    port.onmessage = (e: MessageEvent<ToTab>) => {
      clearTimeout(timer);
      w.onerror = null;
      this.receive(e.data);
    };
    w.onerror = fail;
    port.start();
    this.connectTo((m) => port.postMessage(m));
  }

  private elect(locks: LockManager): void {
    this.role = 'follower';
    const bc = (this.bc = new BroadcastChannel(`herald:${this.name}`));
    bc.onmessage = (e: MessageEvent<Envelope>) => this.envelope(e.data);
    bc.postMessage({ from: this.id, who: true } satisfies Envelope);
    const lead = (): Promise<void> => {
      if (this.state === 'closed') return Promise.resolve();
      this.role = 'leader';
      // With the latest token this tab knows (its own `setToken()` included).
      const owner = (this.owner = new Owner(this.url, { ...this.opts, token: this.token }));
      this.newToken = undefined;
      // Later than any leader before (a term from the clock needs no agreement).
      this.term = Math.max(Date.now(), this.term + 1);
      this.leader = this.id;
      this.announce();
      this.connectTo(this.local(owner));
      return until(this.stop.signal);
    };
    locks.request(lockName(this.name), { signal: this.stop.signal }, lead).catch(() => undefined);
  }

  private announce(): void {
    this.bc?.postMessage({ from: this.id, term: this.term, lead: true } satisfies Envelope);
  }

  private envelope(env: Envelope): void {
    if (this.state === 'closed') return;
    if (env.lead === true) {
      if ((env.term ?? 0) <= this.term || this.owner !== undefined) return;
      this.term = env.term ?? 0;
      const to = (this.leader = env.from);
      return this.connectTo((o) => this.bc?.postMessage({ from: this.id, to, o } satisfies Envelope));
    }
    const owner = this.owner;
    if (env.who === true) return owner === undefined ? undefined : this.announce();
    if (env.to !== this.id) return;
    if (env.m !== undefined) return env.from === this.leader ? this.receive(env.m) : undefined;
    if (env.o === undefined || owner === undefined) return;
    if (env.o.t !== 'hello') {
      const peer = this.peers.get(env.from);
      return peer === undefined ? undefined : owner.receive(peer, env.o);
    }
    // A tab joins (or joins again): a peer that goes when the tab's lock is released.
    const tab = env.from;
    const old = this.peers.get(tab);
    if (old !== undefined) owner.detach(old);
    const peer: Peer = {
      send: (m) => this.bc?.postMessage({ from: this.id, to: tab, m } satisfies Envelope),
      subs: new Map(),
      token: env.o.token,
    };
    this.peers.set(tab, peer);
    owner.attach(peer);
    const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
    if (locks === undefined) return;
    whenGone(
      locks,
      lockName(this.name, tab),
      () => {
        owner.detach(peer);
        if (this.peers.get(tab) === peer) this.peers.delete(tab);
      },
      this.stop.signal,
    );
  }
}
