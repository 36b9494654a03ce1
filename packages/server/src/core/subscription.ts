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

/**
 * One session's subscriptions by stream, with the part of the Map API the hub uses. Most
 * connections hold a single subscription: it lives in a field, and a Map (about 200 bytes even with
 * one entry) is made only when a second stream is added. Idle memory per connection counts.
 */
export class Subscriptions {
  private one: Subscription | undefined;
  private many: Map<string, Subscription> | undefined;

  get size(): number {
    if (this.many !== undefined) return this.many.size;
    return this.one === undefined ? 0 : 1;
  }

  get(stream: string): Subscription | undefined {
    if (this.many !== undefined) return this.many.get(stream);
    return this.one !== undefined && this.one.stream === stream ? this.one : undefined;
  }

  has(stream: string): boolean {
    return this.get(stream) !== undefined;
  }

  /** Adds or replaces the subscription to `sub.stream`. */
  add(sub: Subscription): void {
    if (this.many !== undefined) {
      this.many.set(sub.stream, sub);
    } else if (this.one === undefined || this.one.stream === sub.stream) {
      this.one = sub;
    } else {
      this.many = new Map([
        [this.one.stream, this.one],
        [sub.stream, sub],
      ]);
      this.one = undefined;
    }
  }

  delete(stream: string): boolean {
    if (this.many !== undefined) return this.many.delete(stream);
    if (this.one === undefined || this.one.stream !== stream) return false;
    this.one = undefined;
    return true;
  }

  /** A snapshot safe to iterate while subscriptions are removed. */
  list(): Subscription[] {
    if (this.many !== undefined) return [...this.many.values()];
    return this.one === undefined ? [] : [this.one];
  }
}
