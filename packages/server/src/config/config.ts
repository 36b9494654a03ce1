/**
 * Herald's resolved configuration: the types the rest of the server consumes and their defaults.
 * Every duration is in milliseconds and every size in bytes; `load-config.ts` turns files, environment
 * variables and flags into this shape. docs/configuration.md documents each option.
 */

import type { SlowConsumerOptions } from '../core/policy.js';

/**
 * Engines this build can run. Adding one (for example `'nats'`) is one entry here, plus its
 * implementation.
 */
export const ENGINES = ['memory', 'redis', 'nats'] as const;
export type EngineName = (typeof ENGINES)[number];

/** Engines that are designed but not built yet: naming one gives a clear "not available yet" error. */
export const PLANNED_ENGINES: readonly string[] = [];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** `auto`: readable lines on a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Options of one namespace (the first segment of a channel). */
export interface NamespaceOptions {
  /** Publications kept per stream; 0 disables history (offsets still count). */
  historySize: number;
  /** How long a publication stays in history, in ms. */
  historyTtl: number;
  /** How long a stream's epoch and top offset are kept after its last publish, in ms (>= historyTtl). */
  historyMetaTtl: number;
  /** Whether clients without a token may subscribe. */
  anonymousSubscribe: boolean;
  /** Whether clients may publish over their connection (otherwise only the server API publishes). */
  clientPublish: boolean;
  /** Whether clients may read history with the `history` command (recovery and backlog on subscribe stay allowed: a subscriber may see what it subscribed to). */
  clientHistory: boolean;
  /** Largest JSON data of one publication, in bytes. */
  maxMessageSize: number;
  /** Every subscription needs a subscription token (a JWT for that channel and user) from the application. */
  requireSubscriptionToken: boolean;
  /** Which actions on this namespace's channels are first asked of the backend (auth.hooks.url). */
  hooks: NamespaceHookEvent[];
  /** Keep who is subscribed to each exact channel, on every node (`presence`, `presenceStats`). */
  presence: boolean;
  /** Tell the subscribers of a channel when a client joins or leaves it (needs `presence`). */
  joinLeave: boolean;
  /** Entries one channel's presence holds at most; subscriptions beyond it work but are not listed. */
  maxPresence: number;
  /** What happens to a subscriber that reads too slowly: disconnected (SLOW), or its publications dropped with a `skip` push. */
  slowConsumer: SlowConsumerOptions;
}

/** `GET /metrics` (Prometheus text format; docs/operations.md). */
export interface MetricsOptions {
  /** Serve `/metrics` and count what it reports; off: `/metrics` answers 404 and nothing is counted unless the admin page is on (its charts read the counters); `/api/info` keeps its gauges. */
  enabled: boolean;
  /** `/metrics` asks for an API key (`Authorization: apikey <key>` or `Bearer <key>`), like the server API. */
  requireApiKey: boolean;
}

/** The admin page at `/admin` (docs/operations.md); off while `password` is empty. */
export interface AdminOptions {
  /** The password of the login form; empty: no admin page. */
  password: string;
  /** Signs the admin session cookie; random per process when empty (set one shared by every node behind a load balancer). */
  secret: string;
  /** How often every node reports its figures for the charts, in ms. */
  sampleInterval: number;
}

/** How presence entries are kept alive across nodes (docs/configuration.md, "Presence"). */
export interface PresenceSettings {
  /** How often a node refreshes its presence entries, and removes the expired ones of its channels, in ms. */
  refreshInterval: number;
  /** How long an entry lives without a refresh (a dead node's entries are gone after it), in ms (> refreshInterval). */
  ttl: number;
}

/** A plain Redis PUBLISH mapped to a Herald channel (`redis.ingestPlain`). */
export interface PlainIngestRule {
  /** The Redis channel, or a prefix ending in `*` (every Redis channel that starts with it). */
  redisChannel: string;
  /** The Herald channel; with a `*` rule, a prefix ending in `*`, replaced by the rest of the Redis channel's name. */
  channel: string;
}

/** Formats of AMQP message bodies (`amqp.format`). */
export const AMQP_FORMATS = ['json', 'plain'] as const;
export type AmqpFormat = (typeof AMQP_FORMATS)[number];

/** An exchange bound to the AMQP queue, and how its routing keys name Herald channels (`amqp.bindings`). */
export interface AmqpBinding {
  /** The exchange (not the default exchange `""`). */
  exchange: string;
  /** The binding key: a routing key, or a topic pattern with `*` (one word) and `#` (zero or more words). */
  routingKey: string;
  /**
   * The Herald channel of the messages that came through this binding: `""`, the routing key itself;
   * an exact channel; or a prefix ending in `*`, followed by the routing key without the binding
   * key's literal start (`rooms.#` → `chat.*`: routing key `rooms.42` goes to `chat.42`).
   */
  channel: string;
}

/** Publishing from RabbitMQ (or any AMQP 0-9-1 broker): Herald consumes a queue (docs/backend.md). */
export interface AmqpOptions {
  /** `amqp://user:password@host:5672/vhost` (`amqps://` for TLS); '' = off. */
  url: string;
  /** The queue Herald consumes. */
  queue: string;
  /** Declare the queue (durable), its bindings and missing exchanges (durable topic); off: they must exist. */
  declare: boolean;
  /** With `declare`: the queue's dead-letter exchange, where rejected messages go; '' = none. */
  deadLetterExchange: string;
  bindings: AmqpBinding[];
  /** `json`: the body is `{data, channel?, idempotencyKey?}`; `plain`: the body is the data. */
  format: AmqpFormat;
  /** Messages delivered to Herald and not yet acknowledged, at most (per worker). */
  prefetch: number;
  /** How long a message whose publish failed (engine unavailable) is held before it is requeued, in ms; as long as the outage has lasted if longer, up to 30 s. */
  retryDelay: number;
}

export interface LimitsOptions {
  /** Open client connections (all transports) this node accepts. */
  maxConnections: number;
  /** Largest incoming WebSocket message, in bytes. */
  maxFrameSize: number;
  maxSubscriptionsPerConnection: number;
  /** Bytes queued for one connection before it is closed as too slow. */
  maxQueueBytes: number;
  /** Commands of one connection that run at once; later ones wait their turn. */
  maxCommandsInFlight: number;
  /** Commands of one connection waiting for their turn (and commands in one `POST /send` body); more are refused. */
  maxCommandsWaiting: number;
  /** Bytes of publications one reply may carry (history, backlog, recovery), and of replies in one `POST /send` response. */
  maxReplyBytes: number;
  /** Largest request body of the server API, in bytes. */
  maxApiBodySize: number;
}

export interface HeartbeatOptions {
  /** How often the server pings an idle connection, in ms. */
  pingInterval: number;
  /** How long the server waits for the answer to a ping before closing the connection, in ms. */
  pingTimeout: number;
}

export interface ShutdownOptions {
  /** How long a graceful shutdown waits for connections to close before it forces them, in ms. */
  timeout: number;
  /** Clients told to reconnect at shutdown get a `retryAfterMs` hint in [0, reconnectJitter]. */
  reconnectJitter: number;
}

/** Which transports the server offers (all on by default). */
export interface TransportsOptions {
  websocket: boolean;
  sse: boolean;
  stream: boolean;
  poll: boolean;
}

/** Options of the HTTP transports (`/sse`, `/stream`, `/poll`, `/send`). */
export interface HttpOptions {
  /** Heartbeat on idle SSE/stream responses (an SSE comment or an empty line), in ms. */
  heartbeatInterval: number;
  /** How long a long-poll waits for a publication before answering empty, in ms (clients may ask less). */
  pollTimeout: number;
  /** Bytes of padding sent first on SSE/stream responses, for old proxies that buffer the start; 0 = none. */
  padding: number;
  /** SSE `retry:` hint: how long a browser waits before reconnecting, in ms. */
  sseRetry: number;
  /** Idle keep-alive timeout of HTTP/1.1 connections, in ms. */
  keepAliveTimeout: number;
  /**
   * How long a new connection has, from the moment it is accepted, to send a complete request head
   * (TLS handshake and HTTP/2 connection preface included), and an HTTP/1.1 request to send its
   * headers, in ms. Silent and half-open connections are closed past it.
   */
  headersTimeout: number;
  /** How long an HTTP/1.1 request may take to arrive whole (headers and body), in ms (>= headersTimeout). */
  requestTimeout: number;
  /** Channels one `/sse`, `/stream` or `/poll` request may name. */
  maxChannelsPerRequest: number;
  /** Secret that signs session ids for `POST /send` (and lets any node verify a poll session). Empty: random per process; set the same value on every node. */
  sessionSecret: string;
  /** How long a node waits for the node holding an SSE/HTTP-stream session to answer a forwarded `POST /send`, in ms. */
  sendForwardTimeout: number;
  /** Send `Access-Control-Allow-Credentials: true` to allowed origins (cookies on cross-origin requests). */
  corsCredentials: boolean;
  /** Without TLS, also serve cleartext HTTP/2 by prior knowledge (h2c) on the same port as HTTP/1.1. */
  h2c: boolean;
}

/** TLS on the client port: HTTP/2 with ALPN (`h2`), falling back to HTTP/1.1 (and WebSocket). */
export interface TlsOptions {
  /** Path of the PEM certificate chain (server certificate first); '' = no TLS. */
  cert: string;
  /** Path of the PEM private key of that certificate; '' = no TLS. */
  key: string;
}

/** JWS algorithms Herald can verify (`none` is never one). */
export const JWT_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Namespace actions a backend hook can decide (connect and rpc are not per namespace). */
export const NAMESPACE_HOOK_EVENTS = ['subscribe', 'publish'] as const;
export type NamespaceHookEvent = (typeof NAMESPACE_HOOK_EVENTS)[number];

/** A public key that verifies tokens: PEM text (read from a file when one was named). */
export interface PublicKeyOption {
  /** Matched against a token's `kid` header; '' matches any token. */
  kid: string;
  pem: string;
}

/** Backend hooks: Herald asks the application over HTTP (docs/auth.md). */
export interface HooksOptions {
  /** Base URL; calls go to `<url>/connect`, `/subscribe`, `/publish`, `/rpc`. '' = no hooks. */
  url: string;
  /** Sent as `Authorization: apikey <key>` with every hook call; '' = none. */
  apiKey: string;
  /** How long a hook call may take, in ms. */
  timeout: number;
  /** Persistent connections to the backend at most. */
  maxConnections: number;
  /** Ask the backend before accepting every connection. */
  connect: boolean;
  /** Forward client `rpc` calls to the backend. */
  rpc: boolean;
}

/** Connection tokens, subscription tokens and hooks (docs/auth.md). */
export interface AuthOptions {
  /** HS256/384/512 secret (at least 32 bytes); '' = none. */
  hmacSecret: string;
  publicKeys: PublicKeyOption[];
  /** JWKS URL of the token issuer; '' = none. */
  jwksUrl: string;
  /** How long a fetched JWKS is used, in ms. */
  jwksCacheTtl: number;
  /** Least time between two JWKS fetches (an unknown `kid` fetches again at most this often), in ms. */
  jwksCooldown: number;
  /** Algorithms accepted at all; each key type narrows them further. */
  algorithms: JwtAlgorithm[];
  /** Required `iss` claim; '' = not checked. */
  issuer: string;
  /** Required `aud` claim; '' = not checked. */
  audience: string;
  /** Leeway for `exp` and `nbf`, in ms. */
  clockTolerance: number;
  /** Longest token accepted, in bytes; longer ones are refused unparsed. */
  maxTokenLength: number;
  /** Whether clients may connect without a token (what they may then do is per namespace). */
  anonymousConnect: boolean;
  /** Failed authentications allowed per remote address and minute; 0 = no limit. */
  maxFailuresPerMinute: number;
  hooks: HooksOptions;
}

/** The Redis engine (`engine: redis`): where Redis is and how Herald uses it (docs/scaling.md). */
export interface RedisOptions {
  /** One URL per independent shard (`redis://host:port/db`, `rediss://` for TLS), or seed nodes of a cluster. */
  urls: string[];
  /** The URLs are nodes of a Redis Cluster (7.0+): keys routed by slot, live publications by sharded pub/sub. */
  cluster: boolean;
  /** Prefix of every key and pub/sub channel Herald uses, so several deployments can share a Redis. */
  prefix: string;
  /** Redis pub/sub channel the backend may PUBLISH `{channel, data, idempotencyKey?}` to; empty: off. */
  ingestChannel: string;
  /** Redis channels whose plain messages (any text) are published, as a JSON string, to a Herald channel. */
  ingestPlain: PlainIngestRule[];
  /** How long connecting to a Redis server may take, in ms. */
  connectTimeout: number;
  /** How long a Redis command may wait for its reply before the operation fails, in ms. */
  commandTimeout: number;
}

/** JetStream storage of the streams the NATS engine creates (`nats.storage`). */
export const NATS_STORAGES = ['file', 'memory'] as const;
export type NatsStorage = (typeof NATS_STORAGES)[number];

/** The NATS engine (`engine: nats`): where NATS is and how Herald uses it (docs/scaling.md). */
export interface NatsOptions {
  /** NATS server URLs (`nats://host:4222`, `tls://host:4222`): a server, or several of one cluster. */
  servers: string[];
  /** User and password; '' = none. */
  user: string;
  pass: string;
  /** Token; '' = none. */
  token: string;
  /** Path of a `.creds` file (JWT and NKey seed, NATS decentralized auth); '' = none. */
  credsFile: string;
  /** Connect with TLS (also implied by `tls://` URLs and by any of the TLS files). */
  tls: boolean;
  /** Path of the PEM CA certificate(s) that sign the NATS servers' certificates; '' = the system's. */
  tlsCaFile: string;
  /** Path of the PEM client certificate and key (servers that verify clients); '' = none. */
  tlsCertFile: string;
  tlsKeyFile: string;
  /** Prefix of every subject, JetStream stream and bucket Herald uses, so several deployments can share a NATS. */
  prefix: string;
  /** How long connecting to NATS may take, in ms. */
  connectTimeout: number;
  /** How long a JetStream request may wait for its answer before the operation fails, in ms. */
  commandTimeout: number;
  /** JetStream replicas of the streams Herald creates (1, or 3 or 5 on a NATS cluster). */
  replicas: number;
  /** JetStream storage of the streams Herald creates: `file` survives a NATS restart, `memory` does not. */
  storage: NatsStorage;
}

export interface HeraldConfig {
  host: string;
  /** 0 picks an ephemeral port (tests). */
  port: number;
  engine: EngineName;
  /** Keys accepted by the server API (`Authorization: apikey <key>`). */
  apiKeys: string[];
  logLevel: LogLevel;
  /** JSON lines (`json`), readable lines (`pretty`), or `auto`: pretty on a terminal, else JSON. */
  logFormat: LogFormat;
  /** `'*'` or origins such as `'https://app.example.com'` (scheme://host[:port], no path). */
  allowedOrigins: string[];
  /** How long a publish's idempotency key is remembered, in ms. */
  idempotencyWindow: number;
  limits: LimitsOptions;
  heartbeat: HeartbeatOptions;
  shutdown: ShutdownOptions;
  transports: TransportsOptions;
  http: HttpOptions;
  tls: TlsOptions;
  auth: AuthOptions;
  redis: RedisOptions;
  nats: NatsOptions;
  amqp: AmqpOptions;
  presence: PresenceSettings;
  /** `herald serve` mounts the demo apps at `/demo/` (docs/demos.md); an embedded `HeraldServer` never does by itself. */
  demos: boolean;
  /**
   * Worker processes `herald serve` runs on the one port (docs/scaling.md): `auto`, one per core; 1, a
   * single process as before. An embedded `HeraldServer` is one process whatever this says.
   */
  workers: number | 'auto';
  metrics: MetricsOptions;
  admin: AdminOptions;
  /** Always has `default`; every other entry is `default` merged with that namespace's overrides. */
  namespaces: Record<string, NamespaceOptions>;
}

export const DEFAULT_NAMESPACE = 'default';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export const DEFAULT_NAMESPACE_OPTIONS: NamespaceOptions = deepFreeze({
  historySize: 100,
  historyTtl: 300_000,
  historyMetaTtl: 86_400_000,
  anonymousSubscribe: true,
  clientPublish: false,
  clientHistory: true,
  maxMessageSize: 65_536,
  requireSubscriptionToken: false,
  hooks: [],
  presence: false,
  joinLeave: false,
  maxPresence: 1000,
  slowConsumer: { policy: 'disconnect', keep: 100 },
});

/** The defaults, deep-frozen: copy before changing (`structuredClone(DEFAULT_CONFIG)`). */
export const DEFAULT_CONFIG: HeraldConfig = deepFreeze({
  host: '0.0.0.0',
  port: 8080,
  engine: 'memory',
  apiKeys: [],
  logLevel: 'info',
  logFormat: 'auto',
  allowedOrigins: ['*'],
  idempotencyWindow: 300_000,
  limits: {
    maxConnections: 100_000,
    maxFrameSize: 131_072,
    maxSubscriptionsPerConnection: 128,
    maxQueueBytes: 1_048_576,
    maxCommandsInFlight: 64,
    maxCommandsWaiting: 1_000,
    maxReplyBytes: 2_097_152,
    maxApiBodySize: 1_048_576,
  },
  heartbeat: { pingInterval: 25_000, pingTimeout: 10_000 },
  shutdown: { timeout: 10_000, reconnectJitter: 5_000 },
  transports: { websocket: true, sse: true, stream: true, poll: true },
  http: {
    heartbeatInterval: 15_000,
    pollTimeout: 25_000,
    padding: 0,
    sseRetry: 2_000,
    keepAliveTimeout: 5_000,
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    maxChannelsPerRequest: 32,
    sessionSecret: '',
    sendForwardTimeout: 5_000,
    corsCredentials: false,
    h2c: false,
  },
  tls: { cert: '', key: '' },
  auth: {
    hmacSecret: '',
    publicKeys: [],
    jwksUrl: '',
    jwksCacheTtl: 600_000,
    jwksCooldown: 30_000,
    algorithms: [...JWT_ALGORITHMS],
    issuer: '',
    audience: '',
    clockTolerance: 0,
    maxTokenLength: 8192,
    anonymousConnect: true,
    maxFailuresPerMinute: 30,
    hooks: { url: '', apiKey: '', timeout: 5_000, maxConnections: 32, connect: false, rpc: false },
  },
  redis: {
    urls: ['redis://127.0.0.1:6379'],
    cluster: false,
    prefix: 'herald',
    ingestChannel: '',
    ingestPlain: [],
    connectTimeout: 5_000,
    commandTimeout: 5_000,
  },
  nats: {
    servers: ['nats://127.0.0.1:4222'],
    user: '',
    pass: '',
    token: '',
    credsFile: '',
    tls: false,
    tlsCaFile: '',
    tlsCertFile: '',
    tlsKeyFile: '',
    prefix: 'herald',
    connectTimeout: 5_000,
    commandTimeout: 5_000,
    replicas: 1,
    storage: 'file',
  },
  amqp: {
    url: '',
    queue: 'herald',
    declare: true,
    deadLetterExchange: '',
    bindings: [],
    format: 'json',
    prefetch: 100,
    retryDelay: 1_000,
  },
  presence: { refreshInterval: 10_000, ttl: 30_000 },
  demos: true,
  workers: 'auto',
  metrics: { enabled: true, requireApiKey: false },
  admin: { password: '', secret: '', sampleInterval: 2_000 },
  namespaces: { [DEFAULT_NAMESPACE]: DEFAULT_NAMESPACE_OPTIONS },
});

/** The options of `namespace`: its own entry, or `default` when it has none. */
export function namespaceOptions(config: HeraldConfig, namespace: string): NamespaceOptions {
  const own = Object.prototype.hasOwnProperty.call(config.namespaces, namespace)
    ? config.namespaces[namespace]
    : undefined;
  return own ?? config.namespaces[DEFAULT_NAMESPACE] ?? DEFAULT_NAMESPACE_OPTIONS;
}

/** A duration as written in a file: ms, or a string such as `"30s"`. */
export type DurationInput = number | string;
/** A size as written in a file: bytes, or a string such as `"64kb"`. */
export type SizeInput = number | string;

/** A namespace's overrides as written in a config file. */
export interface NamespaceInput {
  historySize?: number | string;
  historyTtl?: DurationInput;
  historyMetaTtl?: DurationInput;
  anonymousSubscribe?: boolean | string;
  clientPublish?: boolean | string;
  clientHistory?: boolean | string;
  maxMessageSize?: SizeInput;
  requireSubscriptionToken?: boolean | string;
  /** A list, or one comma-separated string, of `subscribe`, `publish`. */
  hooks?: string[] | string;
  presence?: boolean | string;
  joinLeave?: boolean | string;
  maxPresence?: number | string;
  /** A policy name, or `{ policy, keep }`. */
  slowConsumer?: string | { policy?: string; keep?: number | string };
}

/**
 * The shape of a config file (and of `HERALD_NAMESPACES`, for `namespaces`): every key optional,
 * durations and sizes as numbers or strings. `resolveConfig` accepts it directly.
 */
export interface ConfigInput {
  host?: string;
  port?: number | string;
  engine?: string;
  /** A list, or one comma-separated string. */
  apiKeys?: string[] | string;
  logLevel?: string;
  logFormat?: string;
  /** A list, or one comma-separated string. */
  allowedOrigins?: string[] | string;
  idempotencyWindow?: DurationInput;
  limits?: {
    maxConnections?: number | string;
    maxFrameSize?: SizeInput;
    maxSubscriptionsPerConnection?: number | string;
    maxQueueBytes?: SizeInput;
    maxCommandsInFlight?: number | string;
    maxCommandsWaiting?: number | string;
    maxReplyBytes?: SizeInput;
    maxApiBodySize?: SizeInput;
  } | null;
  heartbeat?: { pingInterval?: DurationInput; pingTimeout?: DurationInput } | null;
  shutdown?: { timeout?: DurationInput; reconnectJitter?: DurationInput } | null;
  transports?: {
    websocket?: boolean | string;
    sse?: boolean | string;
    stream?: boolean | string;
    poll?: boolean | string;
  } | null;
  http?: {
    heartbeatInterval?: DurationInput;
    pollTimeout?: DurationInput;
    padding?: SizeInput;
    sseRetry?: DurationInput;
    keepAliveTimeout?: DurationInput;
    headersTimeout?: DurationInput;
    requestTimeout?: DurationInput;
    maxChannelsPerRequest?: number | string;
    sessionSecret?: string;
    sendForwardTimeout?: DurationInput;
    corsCredentials?: boolean | string;
    h2c?: boolean | string;
  } | null;
  /** Paths of PEM files. */
  tls?: { cert?: string; key?: string } | null;
  auth?: {
    hmacSecret?: string;
    /** Each entry PEM text or a file path, or `{kid, key}` with `key` PEM text or a file path. */
    publicKeys?: Array<string | { kid?: string; key: string }> | string;
    jwksUrl?: string;
    jwksCacheTtl?: DurationInput;
    jwksCooldown?: DurationInput;
    algorithms?: string[] | string;
    issuer?: string;
    audience?: string;
    clockTolerance?: DurationInput;
    maxTokenLength?: SizeInput;
    anonymousConnect?: boolean | string;
    maxFailuresPerMinute?: number | string;
    hooks?: {
      url?: string;
      apiKey?: string;
      timeout?: DurationInput;
      maxConnections?: number | string;
      connect?: boolean | string;
      rpc?: boolean | string;
    } | null;
  } | null;
  redis?: {
    /** A list, or one comma-separated string. */
    urls?: string[] | string;
    cluster?: boolean | string;
    prefix?: string;
    ingestChannel?: string;
    /** A list of `{redisChannel, channel}`, or of `"<redis channel>=<channel>"` (one comma-separated string too). */
    ingestPlain?: Array<string | { redisChannel: string; channel: string }> | string;
    connectTimeout?: DurationInput;
    commandTimeout?: DurationInput;
  } | null;
  nats?: {
    /** A list, or one comma-separated string. */
    servers?: string[] | string;
    user?: string;
    pass?: string;
    token?: string;
    credsFile?: string;
    tls?: boolean | string;
    tlsCaFile?: string;
    tlsCertFile?: string;
    tlsKeyFile?: string;
    prefix?: string;
    connectTimeout?: DurationInput;
    commandTimeout?: DurationInput;
    replicas?: number | string;
    storage?: string;
  } | null;
  amqp?: {
    url?: string;
    queue?: string;
    declare?: boolean | string;
    deadLetterExchange?: string;
    /** A list of `{exchange, routingKey, channel?}`, or of `"<exchange>/<routing key>[=<channel>]"` (one comma-separated string too). */
    bindings?: Array<string | { exchange: string; routingKey: string; channel?: string }> | string;
    format?: string;
    prefetch?: number | string;
    retryDelay?: DurationInput;
  } | null;
  presence?: { refreshInterval?: DurationInput; ttl?: DurationInput } | null;
  demos?: boolean | string;
  /** `auto` or a number of worker processes (1 = a single process). */
  workers?: number | string;
  metrics?: { enabled?: boolean | string; requireApiKey?: boolean | string } | null;
  admin?: { password?: string; secret?: string; sampleInterval?: DurationInput } | null;
  /** `null` entries (an empty `chat:` in YAML) mean "the defaults". */
  namespaces?: Record<string, NamespaceInput | null> | null;
}
