/**
 * The Engine: where streams, offsets, history and idempotency live. The memory engine keeps them in
 * this process; the Redis engine in Redis, shared by many nodes. The hub only talks to this
 * interface, and every method is asynchronous because a real engine is remote.
 *
 * Guarantees every engine keeps (tested by the shared conformance suite):
 * - `publish` appends the publication to the exact stream of its channel and to every subtree stream
 *   above it (`streamsOf(channel)`) atomically: either all appends happen or none, and each stream's
 *   offset goes up by exactly 1. Per stream, offsets are assigned in one total order.
 * - After `subscribe(stream)` resolves, every publication appended to `stream` afterwards is handed
 *   to the node's `PublicationSink` (in offset order per stream, at least once). Publications
 *   appended before are readable with `history`.
 * - A publish carrying an `idempotencyKey` that was seen on the same channel within the window
 *   returns the first result with `duplicate: true` and appends and delivers nothing.
 * - A stream's epoch changes when its history and offsets are lost (memory engine restart, Redis key
 *   eviction); offsets then start again at 1 under the new epoch. It also changes, before anything is
 *   published again, when they may have gone back (Redis restored from a snapshot, failed over to a
 *   replica); offsets may then go on from what survived. An offset is never handed out twice within
 *   one epoch.
 */
import type { StreamPosition } from '@herald/protocol';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { EnginePresence } from './presence.js';

/** One publication in one stream. `data` is the JSON text of the payload, encoded once. */
export interface Publication {
  /** The stream this copy belongs to (the channel itself, or a subtree pattern above it). */
  readonly stream: string;
  /** The channel it was published to. */
  readonly channel: string;
  readonly epoch: string;
  readonly offset: number;
  /** JSON text of the payload. */
  readonly data: string;
  /** Publish time in ms since the Unix epoch (engine clock). */
  readonly time: number;
}

export interface HistoryPolicy {
  /** Publications kept per stream; 0 disables history (offsets still count). */
  readonly size: number;
  /** How long a publication is kept, in ms. */
  readonly ttlMs: number;
  /** How long a stream's epoch and top offset are kept after its last publication, in ms. */
  readonly metaTtlMs: number;
}

export interface PublishRequest {
  readonly channel: string;
  /** JSON text of the payload. */
  readonly data: string;
  readonly idempotencyKey?: string;
  /** History policy of each stream the publication goes to (all share the channel's namespace). */
  readonly history: HistoryPolicy;
  /** How long an idempotency key is remembered, in ms. */
  readonly idempotencyWindowMs: number;
}

export interface PublishOutcome {
  /** Position of the publication in the exact channel's stream. */
  readonly position: StreamPosition;
  readonly duplicate: boolean;
}

export interface HistoryRequest {
  readonly stream: string;
  /** Return publications with offset > since.offset (only when the epoch matches). */
  readonly since?: StreamPosition;
  /** At most this many; with `reverse`, the newest first. 0 returns none (position only). */
  readonly limit: number;
  /**
   * The newest `limit` publications (of those after `since`), newest first: XREVRANGE in Redis.
   * The hub's `latest` history (the newest ones in offset order) reads this way too.
   */
  readonly reverse?: boolean;
}

export interface HistoryOutcome {
  /** The stream's current epoch and top offset. */
  readonly position: StreamPosition;
  /** Offset of the oldest publication still kept (top + 1 when none is kept). */
  readonly oldest: number;
  readonly publications: Publication[];
}

/** Where an engine hands the publications of the streams this node subscribed to. */
export interface PublicationSink {
  onPublication(pub: Publication): void;
  /**
   * The engine may have lost publications of `streams` (for example its link to Redis dropped).
   * The hub re-reads history for their subscribers. `undefined` means every stream.
   */
  onGap?(streams: readonly string[] | undefined): void;
}

/**
 * Requests between the nodes of one deployment, for work that must run on the node holding a
 * client's session: a `POST /send` that reaches a node other than the one streaming the session's
 * SSE or HTTP-stream response. Optional: an engine that serves a single node (memory) has none.
 * Messages are opaque text to the engine; the hub defines what they say.
 *
 * Guarantees:
 * - Once `serve(node, handler)` has resolved, a `request(node, ...)` made by any node of the
 *   deployment reaches `handler` at most once, and its answer reaches the requester at most once.
 * - `request` settles within about `timeoutMs`: it resolves with the answer of the node's handler,
 *   or rejects with a HeraldError `HERALD_ERR_NODE_UNREACHABLE` when no node serves `node` (it
 *   stopped or never existed) or no answer came in time. A request that timed out may still have run
 *   on the other node. It rejects with `HERALD_ERR_ENGINE_UNAVAILABLE` when the engine cannot send.
 * - `handler` encodes its failures in its answer; if it rejects anyway, the requester gets
 *   `HERALD_ERR_INTERNAL`.
 */
export interface EngineControl {
  /** Takes the requests addressed to `node` (this node's id) from now on; one node per engine. */
  serve(node: string, handler: (message: string) => Promise<string>): Promise<void>;
  /** Sends `message` to `node` and resolves with its handler's answer (see the guarantees above). */
  request(node: string, message: string, timeoutMs: number): Promise<string>;
}

export interface Engine {
  readonly name: string;
  /** Requests between nodes; absent when the engine serves one node only. */
  readonly control?: EngineControl;
  /** Connects (to Redis, ...); rejects with a clear error when the engine cannot start. */
  start(sink: PublicationSink): Promise<void>;
  /** Releases everything (timers, connections). */
  close(): Promise<void>;
  publish(req: PublishRequest): Promise<PublishOutcome>;
  history(req: HistoryRequest): Promise<HistoryOutcome>;
  /** Node-level subscription: the hub calls it once per stream with local subscribers. */
  subscribe(stream: string): Promise<void>;
  unsubscribe(stream: string): Promise<void>;
  /** Whether the engine can serve every request now (all of its store is reachable). */
  ready(): boolean;
  /**
   * How much of its store the engine reaches now, for engines spread over several servers (Redis
   * shards, Cluster masters): `up` of `parts`. A node that reaches most of it can still serve most
   * namespaces (`/ready` stays 200). Absent: one part, up when `ready()`.
   */
  availability?(): EngineAvailability;
  /** Details for `/api/info`, under the engine's name (connections, counters). */
  status?(): object;
  /** Reports the engine's own counters and link states to `metrics` (read when collected). */
  instrument?(metrics: Metrics): void;
  /** Capability: publishing from the store's own pub/sub (see `EngineIngestion`). */
  ingestion?(opts: IngestionOptions): EngineIngestion;
  /** Capability: who is subscribed to a channel, on every node (see presence.ts). */
  readonly presence?: EnginePresence;
  /** Capability: every node's latest figures, for the admin page (see node-stats.ts). */
  readonly nodes?: EngineNodes;
}

/**
 * Where the nodes of a deployment leave their latest figures (the admin page's charts of every
 * node). Reports are opaque text to the engine. Absent: one node, which knows its own figures.
 */
export interface EngineNodes {
  /** Keeps `report` as `node`'s latest for `ttlMs`; rejects when the store cannot be reached. */
  report(node: string, report: string, ttlMs: number): Promise<void>;
  /** Every node's latest report that has not expired, by node id. */
  list(): Promise<Map<string, string>>;
}

/**
 * Publishing from the store's own pub/sub (the Redis engine: a backend's `PUBLISH` to a configured
 * channel, with a JSON message or, on a mapped channel, plain text). Started after the engine;
 * closed before it.
 */
export interface EngineIngestion {
  start(): Promise<void>;
  close(): Promise<void>;
  /** Counters for `/api/info`. */
  readonly stats: object;
}

export interface IngestionOptions {
  /** The store's pub/sub channel the backend publishes JSON messages to; '' for none. */
  readonly channel: string;
  /**
   * Store channels whose messages are plain text, each published as a JSON string to a Herald
   * channel: an exact store channel to `channel`, or a store channel prefix ending in `*` to the
   * `channel` prefix (ending in `*`) followed by the rest of the store channel's name.
   */
  readonly plain?: readonly { readonly redisChannel: string; readonly channel: string }[];
  /** Publishes like the server API does; rejects with a HeraldError for bad input. */
  readonly publish: (channel: unknown, data: unknown, idempotencyKey: string | undefined) => Promise<unknown>;
  readonly logger: Logger;
}

export interface EngineAvailability {
  readonly parts: number;
  readonly up: number;
}
