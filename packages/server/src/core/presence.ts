/**
 * Presence: who is subscribed to a channel now, across every node, and when they join and leave.
 * An engine that can keep it offers `Engine.presence` (the memory engine for one node, the Redis
 * engine for many); the hub would add an entry when a subscription to a namespace with presence on
 * goes live and remove it when the subscription ends, and the server API's `presence` method reads
 * it. Entries carry a deadline: a node that dies without removing its entries loses them when they
 * expire, and every node refreshes its own entries before they do.
 *
 * This is the seam only; what fills it is built with the presence feature.
 */

/** One client's entry in a channel's presence. */
export interface PresenceEntry {
  /** The connection's client id (unique). */
  readonly client: string;
  /** The user id from the token; '' for an anonymous client. */
  readonly user: string;
  /** Optional information from the token or the backend (a display name), as JSON text. */
  readonly info?: string;
}

/** A join or a leave, as the subscribers of a channel with presence events on are told. */
export interface PresenceEvent {
  readonly kind: 'join' | 'leave';
  readonly stream: string;
  readonly entry: PresenceEntry;
}

export interface EnginePresence {
  /** Adds or refreshes `entry` in `stream`'s presence until `ttlMs` from now; tells the other nodes of a new entry. */
  join(stream: string, entry: PresenceEntry, ttlMs: number): Promise<void>;
  /** Removes `client`'s entry; tells the other nodes when there was one. */
  leave(stream: string, client: string): Promise<void>;
  /** Every entry of `stream` now (expired ones excluded). */
  list(stream: string): Promise<PresenceEntry[]>;
  /** How many clients and distinct users are present in `stream`. */
  count(stream: string): Promise<{ readonly clients: number; readonly users: number }>;
  /** Where joins and leaves made on any node are handed (the hub). */
  onEvent(handler: (event: PresenceEvent) => void): void;
}
