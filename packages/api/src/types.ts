/**
 * The public shapes of `@herald/api`: the client's options, each method's parameters, and its
 * results. Results are the server's JSON answers as docs/protocol.md ("Server API") describes them;
 * the ones shared with the WebSocket protocol come from `@herald/protocol`.
 */
import type { Pool } from 'undici';
import type {
  ErrorBody,
  HistoryResult,
  PresenceResult,
  PresenceStatsResult,
  PublishResult,
  StreamPosition,
} from '@herald/protocol';
import type { BackoffOptions } from './backoff.js';
import type { CallOptions, RetryEvent } from './caller.js';
import type { HeraldApiError } from './errors.js';

export type { CallOptions, RetryEvent } from './caller.js';
export type { BackoffOptions } from './backoff.js';
export type { HistoryResult, PresenceResult, PresenceStatsResult, PublishResult, StreamPosition };

export interface HeraldApiOptions {
  /** The server's base URL, e.g. `http://localhost:8080` (a path is kept: `https://x/herald` calls `/herald/api/...`). */
  readonly url: string | URL;
  /** A key of the server's `apiKeys` (sent as `Authorization: apikey <key>`). */
  readonly apiKey: string;
  /** The most sockets open to the server at once; more concurrent calls wait their turn. Default 4. */
  readonly connections?: number;
  /** Time limit of one attempt, in ms, from the moment the call is queued to the end of the answer. Default 10000. */
  readonly timeout?: number;
  /**
   * How many times a failed call is tried again (so at most `retries + 1` requests), for failures
   * that may succeed later: 5xx answers, dropped or refused connections, timeouts. Default 5.
   */
  readonly retries?: number;
  /** The wait between attempts (capped exponential with jitter). Default `{ initial: 250, max: 4000 }`. */
  readonly backoff?: BackoffOptions;
  /** Most publications per `POST /api/batch` request of `publishMany`. Default 1000 (the server's limit). */
  readonly batchSize?: number;
  /** Most bytes of JSON per `publishMany` request. Default 1000000 (below the server's default `maxApiBodySize`, 1 MiB). */
  readonly maxBatchBytes?: number;
  /**
   * How `publish` reaches the server. `'websocket'` (default): one `GET /api/ws` WebSocket that
   * carries every publish (those made in one turn of the event loop in one frame), at a fraction of
   * the server's CPU per publication, with the same keys and retries; in-flight publishes are sent
   * again on a new connection when it drops. Falls back to HTTP for good when the upgrade is
   * answered 404 or 426 (an older server, a proxy without WebSocket). `'http'`: one
   * `POST /api/publish` per call over the keep-alive pool. Other methods
   * always use HTTP. TLS options given as `pool.connect` (`ca`, ...) apply to the WebSocket too.
   */
  readonly publishOver?: 'http' | 'websocket';
  /** `publishOver: 'websocket'`: publishes unanswered at once on the connection (1-1000, default 500); more wait. */
  readonly window?: number;
  /** Extra request headers (a proxy's own auth, tracing). `Authorization` and `Content-Type` are the client's. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Called before each retry, e.g. to log or count them. */
  readonly onRetry?: (event: RetryEvent) => void;
  /**
   * Advanced: options for undici's `Pool` (TLS `connect` options, keep-alive tuning, ...), applied
   * over the client's (`connections`, `pipelining: 1`, `keepAliveTimeout: 4000`).
   */
  readonly pool?: Pool.Options;
}

/** Options of `publish`. */
export interface PublishOptions extends CallOptions {
  /**
   * The publication's idempotency key (1-128 characters; the server remembers it per channel for
   * its `idempotencyWindow`, 5 minutes by default). Default: a new `crypto.randomUUID()` per call,
   * kept across the call's retries. `null` publishes without a key: the call is then retried only
   * when no connection could be made, since a lost answer could hide a publication that was applied.
   */
  readonly idempotencyKey?: string | null;
}

/** One publication of `publishMany`. */
export interface PublishItem<T = unknown> {
  /** An exact channel (no `.**`). */
  readonly channel: string;
  /** Any JSON value (`undefined` is not one: use `null`). */
  readonly data: T;
  /** As `PublishOptions.idempotencyKey`: a new UUID per item by default; `null` for none. */
  readonly idempotencyKey?: string | null;
}

/**
 * The outcome of one publication of `publishMany` or `broadcast`: its position, or why it failed.
 * `idempotencyKey` is the key it was sent with: to try a failed one again without risking a second
 * copy, publish it again with that key within the server's idempotency window.
 */
export type PublishOutcome =
  | (PublishResult & { readonly ok: true; readonly idempotencyKey: string | undefined })
  | {
      readonly ok: false;
      readonly channel: string;
      readonly error: HeraldApiError;
      readonly idempotencyKey: string | undefined;
    };

/** Options of `history`. */
export interface HistoryOptions extends CallOptions {
  /** At most this many publications (capped at the namespace's `historySize`); 0 returns only the position. */
  readonly limit?: number;
  /** Only publications after this position: `{epoch, offset}` or the text cursor `"epoch:offset"`. */
  readonly since?: StreamPosition | string;
  /** Newest first. */
  readonly reverse?: boolean;
  /** The newest `limit` publications, still oldest first (not with `reverse`; servers that know it). */
  readonly latest?: boolean;
}

/** Options of `channels`. */
export interface ChannelsOptions extends CallOptions {
  /** A stream name, or a prefix ending in `*` (`chat.*`); all streams when absent. */
  readonly pattern?: string;
  /** At most this many channels from the namespace's presence (1-10000, default 1000). */
  readonly limit?: number;
}

/** A stream in the answer of `channels`. */
export interface ChannelEntry {
  readonly stream: string;
  /** Subscribers on the node that answered (subtree subscriptions included). */
  readonly subscribers: number;
  /** For channels of namespaces with presence on: clients and distinct users, on every node. */
  readonly presence?: { readonly clients: number; readonly users: number };
}

export interface ChannelsResult {
  readonly channels: ChannelEntry[];
}

/** Counters of one node (since its start), as `info` returns them; nodes may add fields. */
export interface NodeInfo {
  readonly id: string;
  readonly version: string;
  readonly engine: string;
  readonly uptimeSeconds: number;
  readonly connections: number;
  readonly subscriptions: number;
  readonly streams: number;
  readonly published: number;
  readonly deliveries: number;
  readonly connectionsTotal: number;
  readonly slowDisconnects: number;
  readonly badFrames: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly [field: string]: unknown;
}

export interface InfoResult {
  readonly nodes: NodeInfo[];
}

/** Whom `disconnect` closes: a connection by its client id, every connection of a user, or both. */
export interface DisconnectTarget {
  /** A client id (the `client` of the `connected` push). */
  readonly client?: string;
  /** A user id (the token's `sub`); anonymous connections are disconnected by `client`. */
  readonly user?: string;
  /** Close with 3004 FORCE_RECONNECT (the client reconnects) instead of 3500 FORCE_DISCONNECT. Default false. */
  readonly reconnect?: boolean;
}

export interface DisconnectResult {
  /** Connections closed, on every node that answered. */
  readonly disconnected: number;
  /** Nodes that did not answer (their connections are not counted); absent when every node did. */
  readonly nodeErrors?: readonly { readonly node: string; readonly error: { code: string; message: string } }[];
}

/** The body of each server API method, as sent (see docs/protocol.md). */
export interface ApiParams {
  publish: { channel: string; data: unknown; idempotencyKey?: string };
  broadcast: { channels: string[]; data: unknown; idempotencyKey?: string };
  history: { channel: string; limit?: number; since?: StreamPosition | string; reverse?: boolean; latest?: boolean };
  presence: { channel: string };
  presenceStats: { channel: string };
  channels: { pattern?: string; limit?: number };
  info: Record<string, never>;
  disconnect: { client?: string; user?: string; reconnect?: boolean };
}

/** One entry of a `broadcast` answer, as the server sends it. */
export type BroadcastEntry = PublishResult | { channel: string; error: ErrorBody };

/** The answer of each server API method, as received. */
export interface ApiResults {
  publish: PublishResult;
  broadcast: { results: BroadcastEntry[] };
  history: HistoryResult;
  presence: PresenceResult;
  presenceStats: PresenceStatsResult;
  channels: ChannelsResult;
  info: InfoResult;
  disconnect: DisconnectResult;
}

export type ApiMethodName = keyof ApiParams;

/** A command of `batch`: `{ <method>: <its body> }`. */
export type BatchCommand = { [M in ApiMethodName]: { [K in M]: ApiParams[M] } }[ApiMethodName];

/** A reply of `batch`: `{ <method>: <its answer> }` or `{ error }`, in command order. */
export type BatchReply = { [M in ApiMethodName]: { [K in M]: ApiResults[M] } }[ApiMethodName] | { error: ErrorBody };
