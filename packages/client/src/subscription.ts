/**
 * One subscription: a stream (exact channel or `x.**` subtree), its state, and its cursor — the
 * position of the last publication delivered. Publications at or before the cursor are dropped, so
 * a recovery, a retried subscribe or a transport switch never delivers one twice. Publications are
 * events and an async iterator.
 */
import type { HeraldError, HistoryResult, PublicationFrame, PublishResult, StreamPosition } from '@herald/protocol';
import { Emitter } from './emitter.js';
import { HeraldError as ProtocolError } from '@herald/protocol';
import type { HistoryOptions, PublishOptions, SubscribeOptions } from './options.js';

export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

export interface Publication<T = unknown> {
  /** The subscription's stream (the exact channel, or the subtree pattern). */
  stream: string;
  /** The channel it was published to. */
  channel: string;
  /** Its position in `stream`. */
  epoch: string;
  offset: number;
  data: T;
}

export interface SubscriptionStateEvent {
  state: SubscriptionState;
  prev: SubscriptionState;
  reason: string;
  /** Set when the subscription ended because the server refused it. */
  error?: HeraldError;
}

export interface SubscribedEvent {
  /** Present when the subscribe gave a cursor: whether every missed publication was recovered. */
  recovered: boolean | undefined;
  epoch: string;
  /** The stream's position after the recovered or backlog publications. */
  offset: number;
}

export interface UnrecoveredEvent {
  /** The last position this subscription had delivered. */
  previous: StreamPosition;
  /** Where delivery starts again (publications in between may be missing). */
  position: StreamPosition;
}

export interface SubscriptionEvents<T> {
  state: SubscriptionStateEvent;
  subscribed: SubscribedEvent;
  /** Recovery was impossible (history lost or too short, e.g. after a restart of a memory engine). */
  unrecovered: UnrecoveredEvent;
  publication: Publication<T>;
  error: HeraldError;
}

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  publish(channel: string, data: unknown, opts?: PublishOptions): Promise<PublishResult>;
  history<T>(channel: string, opts?: HistoryOptions): Promise<HistoryResult<T>>;
  removeSubscription(sub: Subscription): void;
}

/** What a subscribe reply (or a poll's fresh start) tells: the position, and publications to deliver. */
export interface SubscribeAnswer {
  epoch: string;
  offset: number;
  recovered?: boolean;
  publications?: PublicationFrame[];
}

export class Subscription<T = unknown> extends Emitter<SubscriptionEvents<T>> implements AsyncIterable<Publication<T>> {
  state: SubscriptionState = 'unsubscribed';
  /** The position of the last publication delivered (undefined before the first subscribe reply). */
  cursor: StreamPosition | undefined;
  /** @internal Id of the subscribe command that counts (later replies to older ones are stale). */
  _id = 0;
  /** @internal The connection a subscribe is pending on; its publications wait in `_held`. */
  _on: object | undefined;
  /** @internal */
  _held: Publication<T>[] = [];

  readonly backlog: number | undefined;
  /** @internal */
  readonly getToken: ((channel: string) => Promise<string>) | undefined;

  constructor(
    private readonly host: SubscriptionHost,
    readonly channel: string,
    opts: SubscribeOptions,
  ) {
    super();
    this.cursor = opts.since;
    this.backlog = opts.backlog;
    this.getToken = opts.getToken;
  }

  /** Publishes to this subscription's channel (an exact channel; the namespace must allow client publish). */
  publish(data: T, opts?: PublishOptions): Promise<PublishResult> {
    return this.host.publish(this.channel, data, opts);
  }

  history(opts?: HistoryOptions): Promise<HistoryResult<T>> {
    return this.host.history<T>(this.channel, opts);
  }

  /** Ends the subscription (also on the server); its iterators finish. */
  unsubscribe(): void {
    this.host.removeSubscription(this as unknown as Subscription);
  }

  /** Resolves once subscribed; rejects if the subscription ends first (or `signal` aborts). */
  ready(opts: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = opts;
    return new Promise((resolve, reject) => {
      const settle = (err?: unknown): void => {
        off();
        signal?.removeEventListener('abort', abort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const abort = (): void => settle(signal?.reason);
      const off = this.on('state', (e) => {
        if (e.state !== 'subscribing') settle(e.state === 'subscribed' ? undefined : ended(e.error, e.reason));
      });
      signal?.addEventListener('abort', abort);
      if (this.state !== 'subscribing')
        settle(this.state === 'subscribed' ? undefined : ended(undefined, 'unsubscribed'));
      else if (signal?.aborted === true) abort();
    });
  }

  /**
   * Publications, in order, from now on. Breaking out of the loop unsubscribes; the loop ends when
   * the subscription is unsubscribed or the client closed, and throws if the server refused it.
   */
  [Symbol.asyncIterator](): AsyncIterator<Publication<T>> {
    const queue: Publication<T>[] = [];
    let wake: (() => void) | undefined;
    let end: Pick<SubscriptionStateEvent, 'error'> | undefined = this.state === 'unsubscribed' ? {} : undefined;
    const offs = [
      this.on('publication', (p) => {
        queue.push(p);
        wake?.();
      }),
      this.on('state', (e) => {
        if (e.state !== 'unsubscribed') return;
        end = e;
        wake?.();
      }),
    ];
    const finish = (): IteratorResult<Publication<T>> => {
      for (const off of offs) off();
      return { value: undefined, done: true };
    };
    return {
      next: async () => {
        while (queue.length === 0 && end === undefined) await new Promise<void>((r) => (wake = r));
        const value = queue.shift();
        if (value !== undefined) return { value, done: false };
        finish();
        if (end?.error !== undefined) throw end.error;
        return { value: undefined, done: true };
      },
      return: () => {
        this.unsubscribe();
        return Promise.resolve(finish());
      },
    };
  }

  /** @internal */
  _set(state: SubscriptionState, reason: string, error?: HeraldError): void {
    const prev = this.state;
    if (prev === state) return;
    this.state = state;
    this.emit('state', { state, prev, reason, ...(error === undefined ? {} : { error }) });
    if (error !== undefined) this.emit('error', error);
  }

  /** @internal A subscribe answer: reset the cursor when recovery failed, then deliver. */
  _apply(answer: SubscribeAnswer): void {
    const previous = this.cursor;
    const pubs = answer.publications ?? [];
    const start = pubs.length > 0 ? (pubs[0] as PublicationFrame).offset - 1 : answer.offset;
    const position = { epoch: answer.epoch, offset: start };
    if (previous === undefined || previous.epoch !== answer.epoch || answer.recovered === false) this.cursor = position;
    if (this.state !== 'subscribed') {
      this._set('subscribed', 'subscribed');
      this.emit('subscribed', { recovered: answer.recovered, epoch: answer.epoch, offset: answer.offset });
    }
    if (answer.recovered === false && previous !== undefined) this.emit('unrecovered', { previous, position });
    for (const p of pubs)
      this._deliver({
        stream: this.channel,
        channel: p.channel,
        epoch: answer.epoch,
        offset: p.offset,
        data: p.data as T,
      });
    const c = this.cursor as StreamPosition;
    if (c.epoch === answer.epoch && c.offset < answer.offset) this.cursor = { epoch: c.epoch, offset: answer.offset };
    const held = this._held;
    this._held = [];
    for (const p of held) this._deliver(p);
  }

  /** @internal Delivers a publication unless it is at or before the cursor. */
  _deliver(p: Publication<T>): void {
    const c = this.cursor;
    if (c !== undefined && c.epoch === p.epoch && p.offset <= c.offset) return;
    this.cursor = { epoch: p.epoch, offset: p.offset };
    this.emit('publication', p);
  }
}

function ended(error: HeraldError | undefined, reason: string): HeraldError {
  return error ?? new ProtocolError('HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED', `the subscription ended: ${reason}`);
}
