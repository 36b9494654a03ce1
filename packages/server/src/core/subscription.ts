/**
 * One session's subscription to one stream, as the hub tracks it. The hub reaches the session that
 * owns it through `Subscriber`, the little a subscription needs of it, so this module does not
 * depend on the session (which holds its subscriptions) and the two do not import each other.
 */
import type { DisconnectName } from '@herald/protocol';
import type { EncodeCache, NonPubPush } from './encoder.js';
import type { Publication } from './engine.js';
import type { Logger } from './logger.js';
import type { SlowConsumerOptions } from './policy.js';
import type { Held } from './slow-consumer.js';
import type { SmallMap } from './small-map.js';

export interface DisconnectOptions {
  reason?: string;
  retryAfterMs?: number;
  /** Write what is queued before the disconnect push (graceful); otherwise drop it. */
  flushFirst?: boolean;
}

/** What the hub asks of the session that owns a subscription (`Session` implements it). */
export interface Subscriber {
  /** The owner's client id. */
  readonly id: string;
  /** The owner's subscriptions, by stream. */
  readonly subscriptions: SmallMap<Subscription>;
  readonly logger: Logger;
  /**
   * Queues a publication of `sub` for the client (the fan-out path: the hub calls it once per
   * subscriber), or holds it when the subscription has a slow-consumer policy and the client is behind.
   */
  deliver(pub: Publication, cache: EncodeCache, sub: Subscription): void;
  /** Queues a push that is not a publication (a presence join or leave). */
  sendPush(push: NonPubPush): void;
  /** Tells the client why and closes its connection; for a subscription that cannot go on. */
  disconnect(name: DisconnectName, opts?: DisconnectOptions): void;
}

/**
 * States of one session's subscription to one stream:
 * - `recovering`: the hub is reading history for it; live publications are buffered.
 * - `live`: publications are delivered as they come, in offset order, duplicates dropped.
 * - `closed`: unsubscribed or the session ended; nothing more is delivered.
 */
export type SubscriptionState = 'recovering' | 'live' | 'closed';

export class Subscription {
  state: SubscriptionState = 'recovering';
  /** Epoch of the stream as this subscriber knows it. */
  epoch = '';
  /** Offset of the last publication delivered (or the position the subscriber starts after). */
  offset = 0;
  /** Live publications that arrived while recovering, in arrival order (`NO_BUFFER` when live). */
  buffer: Publication[] = [];
  /** The buffer hit its bound: the hub re-reads history after the current recovery. */
  overflowed = false;
  /**
   * Its namespace's slow-consumer policy when that holds publications (`drop-oldest`,
   * `latest-only`) on a connection with a send queue; undefined otherwise (`disconnect`).
   */
  slow: SlowConsumerOptions | undefined = undefined;
  /** Publications held while the connection is behind (see slow-consumer.ts); kept, inactive, once they went out. */
  held: Held | undefined = undefined;

  constructor(
    readonly session: Subscriber,
    readonly stream: string,
  ) {}
}

/** The buffer of every live subscription: never written to (live publications are delivered). */
export const NO_BUFFER: Publication[] = [];
