/**
 * The types of a subscription: its states, events and publications. The `Subscription` class itself
 * lives in herald.ts, next to the client that drives it (so that its insides stay out of its type).
 */
import type { HeraldError, PresenceInfo, StreamPosition } from '@herald/protocol';

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

/**
 * The server dropped `count` publications right after `since` because this client read too slowly
 * (the namespace's `slowConsumer` policy): `history({ since, limit: count })` reads them.
 */
export interface SkipEvent {
  since: StreamPosition;
  count: number;
}

export interface SubscriptionEvents<T> {
  state: SubscriptionStateEvent;
  subscribed: SubscribedEvent;
  /** Recovery was impossible (history lost or too short, e.g. after a restart of a memory engine). */
  unrecovered: UnrecoveredEvent;
  publication: Publication<T>;
  /** Publications were dropped for this slow subscriber (`drop-oldest`, `latest-only` namespaces). */
  skip: SkipEvent;
  error: HeraldError;
  /** A client subscribed to this channel (a namespace with `joinLeave` on; not for `x.**`). */
  join: PresenceInfo;
  /** A client's subscription to this channel ended. */
  leave: PresenceInfo;
}

/** What `publications` needs of a subscription (`Subscription`, `SharedSubscription`). */
export interface PublicationSource<T> {
  readonly state: SubscriptionState;
  on<K extends keyof SubscriptionEvents<T>>(event: K, fn: (e: SubscriptionEvents<T>[K]) => void): () => void;
  unsubscribe(): void;
}

/**
 * A subscription's publications, in order, from now on. Breaking out of the loop unsubscribes; the
 * loop ends when the subscription is unsubscribed or the client closed, and throws if the server
 * refused it.
 */
export function publications<T>(sub: PublicationSource<T>): AsyncIterator<Publication<T>> {
  const queue: Publication<T>[] = [];
  let wake: (() => void) | undefined;
  let end: Pick<SubscriptionStateEvent, 'error'> | undefined = sub.state === 'unsubscribed' ? {} : undefined;
  const offs = [
    sub.on('publication', (p) => {
      queue.push(p);
      wake?.();
    }),
    sub.on('state', (e) => {
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
      sub.unsubscribe();
      return Promise.resolve(finish());
    },
  };
}
