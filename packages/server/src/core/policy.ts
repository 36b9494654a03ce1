/** What a namespace does with a subscriber that reads too slowly (see slow-consumer.ts). */
export const SLOW_CONSUMER_POLICIES = ['disconnect', 'drop-oldest', 'latest-only'] as const;
export type SlowConsumerPolicy = (typeof SLOW_CONSUMER_POLICIES)[number];

export interface SlowConsumerOptions {
  readonly policy: SlowConsumerPolicy;
  /** Publications held per subscription at most while its connection is behind. */
  readonly keep: number;
}

/** What the hub needs to know of a namespace (the config's namespace options satisfy it). */
export interface NamespacePolicy {
  readonly historySize: number;
  readonly historyTtl: number;
  readonly historyMetaTtl: number;
  readonly anonymousSubscribe: boolean;
  readonly clientPublish: boolean;
  readonly clientHistory: boolean;
  readonly maxMessageSize: number;
  /** Who is subscribed to each exact channel is kept (`presence`, `presenceStats`). */
  readonly presence: boolean;
  /** Subscribers of a channel are told of joins and leaves (with `presence` on). */
  readonly joinLeave: boolean;
  /** Entries one channel's presence holds at most; subscriptions beyond it are not listed. */
  readonly maxPresence: number;
  /** What happens to a subscriber that reads too slowly (see slow-consumer.ts). */
  readonly slowConsumer: SlowConsumerOptions;
}

/** How presence entries are kept alive (see presence.ts). */
export interface PresenceTiming {
  /** How often a node refreshes its entries (and removes expired ones of its channels), in ms. */
  readonly refreshMs: number;
  /** How long an entry lives without a refresh, in ms (> refreshMs). */
  readonly ttlMs: number;
  /**
   * How long the entry of a stateless client (long-polling) lives after its last poll, in ms: its
   * subscription ends with every poll, its entry stays until it stops polling.
   */
  readonly lingerMs: number;
}

export interface HubLimits {
  readonly maxSubscriptionsPerConnection: number;
  readonly maxQueueBytes: number;
  /** Commands of one connection that run at once; later ones wait their turn. */
  readonly maxCommandsInFlight: number;
  /** Commands of one connection waiting for their turn; more are refused (HERALD_ERR_TOO_MANY_COMMANDS). */
  readonly maxCommandsWaiting: number;
  /** Bytes of publications one reply may carry, and of replies in one `POST /send` response. */
  readonly maxReplyBytes: number;
  /** Live publications buffered per subscription while it recovers, before it re-reads history. */
  readonly maxRecoveryBuffer: number;
}
