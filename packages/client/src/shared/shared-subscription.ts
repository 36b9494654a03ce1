/**
 * A tab's subscription to a shared connection, with the members of `Subscription` (the same events,
 * `ready()`, async iterator, `publish`, `history`, `unsubscribe`), fed by the owner. It keeps its own
 * cursor and drops what it has already delivered, and it repairs gaps itself: when the owner's stream
 * is ahead of it (a tab that joins a channel with `since` or `backlog`, a new owner that resubscribed
 * from another tab's cursor), it reads the missing publications with `history({ since: cursor })`,
 * holding the live ones meanwhile, so that it still delivers every publication once, in offset order.
 */
import {
  HeraldError,
  type HistoryResult,
  type PresenceInfo,
  type PresenceResult,
  type PresenceStatsResult,
  type PublishResult,
  type StreamPosition,
} from '@herald/protocol';
import {
  Emitter,
  type CallOptions,
  type HistoryOptions,
  type Publication,
  type PublishOptions,
  type SubscribeOptions,
  type SubscribedEvent,
  type SubscriptionEvents,
  type SubscriptionState,
} from '../index.js';
import { publications } from '../subscription.js';

/** What a subscription needs from its client. */
export interface SharedSubscriptionHost {
  publish(channel: string, data: unknown, opts?: PublishOptions): Promise<PublishResult>;
  history<T>(channel: string, opts?: HistoryOptions): Promise<HistoryResult<T>>;
  presence(channel: string, opts?: CallOptions): Promise<PresenceResult>;
  presenceStats(channel: string, opts?: CallOptions): Promise<PresenceStatsResult>;
  removeSubscription(sub: SharedSubscription): void;
  /** The client's `timeout` option (the default of `ready()`). */
  readonly timeout: number;
  /** Why the client cannot subscribe for now (it stopped: a refused token, say); else undefined. */
  stopped(): HeraldError | undefined;
  /** Calls `fn` on every `state` event of the client; returns what removes it. */
  onState(fn: () => void): () => void;
}

export class SharedSubscription<T = unknown>
  extends Emitter<SubscriptionEvents<T>>
  implements AsyncIterable<Publication<T>>
{
  state: SubscriptionState = 'unsubscribed';
  /** The position of the last publication delivered. */
  cursor: StreamPosition | undefined;
  readonly backlog: number | undefined;
  /** While a gap is read from history: the publications that came meanwhile. */
  private held: Publication<T>[] | undefined;
  /** A position the owner reported while a gap was being read. */
  private wanted: StreamPosition | undefined;
  /** Counts reads, so that one made before a reset or an unsubscribe is ignored. */
  private gen = 0;
  /** The cursor was made up to read a backlog: no `unrecovered` if it cannot be read. */
  private madeUp = false;
  /** Why it ended (what `ready()` rejects with). */
  private err: HeraldError | undefined;

  constructor(
    private readonly host: SharedSubscriptionHost,
    readonly channel: string,
    /** @internal */
    readonly opts: SubscribeOptions,
  ) {
    super();
    this.cursor = opts.since;
    this.backlog = opts.backlog;
  }

  /** Publishes to this subscription's channel (through the owner of the connection). */
  publish(data: T, opts?: PublishOptions): Promise<PublishResult> {
    return this.host.publish(this.channel, data, opts);
  }

  history(opts?: HistoryOptions): Promise<HistoryResult<T>> {
    return this.host.history<T>(this.channel, opts);
  }

  /** Who is subscribed to this channel now (a namespace with `presence` on). */
  presence(opts?: CallOptions): Promise<PresenceResult> {
    return this.host.presence(this.channel, opts);
  }

  /** How many clients and distinct users are subscribed to this channel now. */
  presenceStats(opts?: CallOptions): Promise<PresenceStatsResult> {
    return this.host.presenceStats(this.channel, opts);
  }

  /** Ends this tab's subscription (the owner's ends with the last tab's). */
  unsubscribe(): void {
    this.host.removeSubscription(this as SharedSubscription);
  }

  /**
   * Resolves once subscribed. Rejects if the subscription ends first (with the server's refusal),
   * if the shared connection stops (with why: a refused token, say), after `opts.timeout` (default:
   * the client's `timeout`) with `HERALD_ERR_TIMEOUT`, or when `opts.signal` aborts.
   */
  ready(opts: CallOptions = {}): Promise<void> {
    const { signal, timeout = this.host.timeout } = opts;
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
        if (this.state === 'subscribed') settle();
        else if (this.state === 'unsubscribed') settle(this.err ?? ended('unsubscribed'));
        else {
          const why = this.host.stopped();
          if (why !== undefined) settle(why);
        }
      };
      const timer = setTimeout(
        () => settle(new HeraldError('HERALD_ERR_TIMEOUT', `${this.channel}: not subscribed within ${timeout} ms`)),
        timeout,
      );
      const offs = [this.on('state', check), this.host.onState(check)];
      signal?.addEventListener('abort', abort);
      if (signal?.aborted === true) abort();
      else check();
    });
  }

  /** Publications, in order, from now on. Breaking out of the loop unsubscribes. */
  [Symbol.asyncIterator](): AsyncIterator<Publication<T>> {
    return publications(this);
  }

  /** @internal `cause`: what `ready()` rejects with once it is unsubscribed (`error` is also emitted). */
  change(state: SubscriptionState, reason: string, error?: HeraldError, cause: HeraldError | undefined = error): void {
    const prev = this.state;
    if (state !== 'subscribed') this.reset();
    if (prev === state) return;
    this.err = state === 'unsubscribed' ? (cause ?? ended(reason)) : undefined;
    this.state = state;
    this.emit('state', { state, prev, reason, ...(error === undefined ? {} : { error }) });
    if (error !== undefined) this.emit('error', error);
  }

  /** @internal The owner's subscription (re)subscribed. */
  subscribed(ev: SubscribedEvent): void {
    this.change('subscribed', 'subscribed');
    const recovered = ev.recovered ?? (this.cursor !== undefined && !this.madeUp ? true : undefined);
    this.emit('subscribed', { ...ev, recovered });
  }

  /** @internal A join or leave from the owner. */
  presenceEvent(k: 'join' | 'leave', v: PresenceInfo): void {
    if (this.state !== 'unsubscribed') this.emit(k, v);
  }

  /** @internal A publication from the owner. */
  take(p: Publication<T>): void {
    if (this.state === 'unsubscribed') return;
    if (this.held !== undefined) return void this.held.push(p);
    const c = this.cursor;
    if (c !== undefined && c.epoch === p.epoch && p.offset > c.offset + 1) {
      this.held = [p];
      return this.fill(c);
    }
    if (c !== undefined && c.epoch !== p.epoch) this.lost(c, { epoch: p.epoch, offset: p.offset - 1 });
    this.deliver(p);
  }

  /** @internal The owner's subscription is at `at`; everything after it comes live. */
  sync(at: StreamPosition): void {
    if (this.state === 'unsubscribed') return;
    if (this.held !== undefined) return void (this.wanted = at);
    let c = this.cursor;
    if (c === undefined) {
      const backlog = this.backlog ?? 0;
      if (backlog <= 0) return void (this.cursor = at);
      // Joined a channel another tab already reads: its backlog is the history before `at`.
      c = this.cursor = { epoch: at.epoch, offset: Math.max(0, at.offset - backlog) };
      this.madeUp = true;
    }
    if (c.epoch !== at.epoch) return this.lost(c, at);
    if (c.offset >= at.offset) return;
    this.held = [];
    this.fill(c);
  }

  private reset(): void {
    this.gen++;
    this.held = this.wanted = undefined;
  }

  /** Reads what follows `from` from history, then delivers what was held. */
  private fill(from: StreamPosition): void {
    const gen = ++this.gen;
    this.history({ since: from }).then(
      (r) => {
        if (gen !== this.gen) return;
        const first = r.publications[0]?.offset ?? r.offset + 1;
        if (r.epoch !== from.epoch || first > from.offset + 1) this.lost(from, { epoch: r.epoch, offset: first - 1 });
        for (const p of r.publications) {
          this.deliver({ stream: this.channel, channel: p.channel, epoch: r.epoch, offset: p.offset, data: p.data });
        }
        if (r.truncated === true && this.cursor !== undefined) return this.fill(this.cursor);
        this.flush();
      },
      (err: unknown) => {
        if (gen !== this.gen) return;
        // The connection dropped: the owner resubscribes, and its next position starts a new read.
        if ((err as HeraldError).code === 'HERALD_ERR_CLIENT_DISCONNECTED') return this.reset();
        const next = this.held?.[0];
        if (next !== undefined) this.lost(from, { epoch: next.epoch, offset: next.offset - 1 });
        this.flush();
      },
    );
  }

  private flush(): void {
    const held = this.held ?? [];
    const wanted = this.wanted;
    this.held = this.wanted = undefined;
    for (const p of held) this.take(p);
    if (wanted !== undefined) this.sync(wanted);
  }

  private lost(previous: StreamPosition, position: StreamPosition): void {
    if (!this.madeUp) this.emit('unrecovered', { previous, position });
    this.cursor = position;
  }

  private deliver(p: Publication<T>): void {
    const c = this.cursor;
    if (c !== undefined && c.epoch === p.epoch && p.offset <= c.offset) return;
    this.cursor = { epoch: p.epoch, offset: p.offset };
    this.madeUp = false;
    this.emit('publication', p);
  }
}

function ended(reason: string): HeraldError {
  return new HeraldError('HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED', `the subscription ended: ${reason}`);
}
