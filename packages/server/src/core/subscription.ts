import type { Publication } from './engine.js';
import type { Session } from './session.js';

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

  constructor(
    readonly session: Session,
    readonly stream: string,
  ) {}
}

/** The buffer of every live subscription: never written to (live publications are delivered). */
export const NO_BUFFER: Publication[] = [];
