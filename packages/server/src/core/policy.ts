/** What the hub needs to know of a namespace (the config's namespace options satisfy it). */
export interface NamespacePolicy {
  readonly historySize: number;
  readonly historyTtl: number;
  readonly historyMetaTtl: number;
  readonly anonymousSubscribe: boolean;
  readonly clientPublish: boolean;
  readonly clientHistory: boolean;
  readonly maxMessageSize: number;
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
