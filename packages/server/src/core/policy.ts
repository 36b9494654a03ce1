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
  /** Live publications buffered per subscription while it recovers, before it re-reads history. */
  readonly maxRecoveryBuffer: number;
}
