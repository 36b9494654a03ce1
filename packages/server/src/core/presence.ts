/**
 * Presence: who is subscribed to a channel now, across every node, and when they join and leave.
 * An engine that can keep it offers `Engine.presence` (the memory engine for one node, the Redis
 * engine for many). The hub adds an entry when a subscription to an exact channel of a namespace
 * with `presence` on is made, removes it when the subscription ends, refreshes the entries it holds
 * every `refreshMs`, and hands the joins and leaves the engine reports to the channel's local
 * subscribers (namespaces with `joinLeave` on). See docs/configuration.md ("Presence").
 *
 * Entries carry a deadline. A node that dies without removing its entries loses them when they
 * expire: a `list` or `count` never returns an expired entry, and whoever finds one first (a join,
 * a refresh, a read, on any node) removes it and reports its leave, exactly once.
 */

/** One client's entry in a channel's presence, as clients see it (`PresenceInfo` of the protocol). */
export interface PresenceEntry {
  /** The connection's client id (unique). */
  readonly client: string;
  /** The user id from the token; '' for an anonymous client. */
  readonly user: string;
  /** The connection token's `info` claim, if any. */
  readonly info?: unknown;
  /** The subscription token's `info` claim, if the subscription was made with one that has it. */
  readonly chanInfo?: unknown;
}

/** A join or a leave, as the subscribers of a channel with presence events on are told. */
export interface PresenceEvent {
  readonly kind: 'join' | 'leave';
  readonly stream: string;
  readonly entry: PresenceEntry;
}

export interface PresenceCounts {
  /** Entries (clients) in the channel's presence. */
  readonly clients: number;
  /** Distinct user ids among them. */
  readonly users: number;
}

/** One entry to add or refresh, and how long it lives unless refreshed again. */
export interface PresenceJoin {
  readonly entry: PresenceEntry;
  readonly ttlMs: number;
}

export interface PresenceOptions {
  /** Report joins and leaves (`onEvent`) on every node; off when the namespace has `joinLeave` off. */
  readonly events: boolean;
}

export interface EnginePresence {
  /**
   * Adds each entry, or refreshes it when its client is present already: it lives until `ttlMs`
   * from now. An entry that is not present yet is added only while the channel holds fewer than
   * `max` entries (the others are left out, and come in on a later refresh when there is room).
   * Every added entry is reported as a join. Expired entries of the stream are removed first (a
   * leave each). `entries` may be empty: then it only removes expired entries.
   */
  join(
    stream: string,
    entries: readonly PresenceJoin[],
    opts: PresenceOptions & { readonly max: number },
  ): Promise<void>;
  /** Removes `client`'s entry; reported as a leave when there was one. */
  leave(stream: string, client: string, opts: PresenceOptions): Promise<void>;
  /** Every entry of `stream` now (expired ones removed). */
  list(stream: string, opts: PresenceOptions): Promise<PresenceEntry[]>;
  /** How many clients and distinct users are present in `stream` now. */
  count(stream: string, opts: PresenceOptions): Promise<PresenceCounts>;
  /**
   * The channels of `namespace` whose name starts with `prefix` and that have entries now, on any
   * node, with their counts; at most `limit` of them.
   */
  channels(
    namespace: string,
    prefix: string,
    limit: number,
    opts: PresenceOptions,
  ): Promise<Array<{ readonly stream: string } & PresenceCounts>>;
  /** Where joins and leaves made on any node are handed (the hub). */
  onEvent(handler: (event: PresenceEvent) => void): void;
}

/** Reads an entry as engines store it (JSON of a `PresenceEntry`); undefined when it is not one. */
export function parsePresenceEntry(text: string): PresenceEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return presenceEntryOf(value);
}

/** A parsed JSON value as a `PresenceEntry`; undefined when it is not one. */
export function presenceEntryOf(value: unknown): PresenceEntry | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const client = v['client'];
  const user = v['user'];
  if (typeof client !== 'string' || typeof user !== 'string') return undefined;
  return {
    client,
    user,
    ...(v['info'] !== undefined ? { info: v['info'] } : {}),
    ...(v['chanInfo'] !== undefined ? { chanInfo: v['chanInfo'] } : {}),
  };
}
