/**
 * Herald's resolved configuration: the types the rest of the server consumes and their defaults.
 * Every duration is in milliseconds and every size in bytes; `load-config.ts` turns files, environment
 * variables and flags into this shape. docs/configuration.md documents each option.
 */

/**
 * Engines this build can run. Adding one (for example `'redis'`) is one entry here, plus its
 * implementation.
 */
export const ENGINES = ['memory'] as const;
export type EngineName = (typeof ENGINES)[number];

/** Engines that are designed but not built yet: naming one gives a clear "not available yet" error. */
export const PLANNED_ENGINES: readonly string[] = ['redis', 'nats'];

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

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
}

export interface LimitsOptions {
  /** Open client connections (all transports) this node accepts. */
  maxConnections: number;
  /** Largest incoming WebSocket message, in bytes. */
  maxFrameSize: number;
  maxSubscriptionsPerConnection: number;
  /** Bytes queued for one connection before it is closed as too slow. */
  maxQueueBytes: number;
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
  /** Channels one `/sse`, `/stream` or `/poll` request may name. */
  maxChannelsPerRequest: number;
  /** Secret that signs session ids for `POST /send` (and lets any node verify a poll session). Empty: random per process; set the same value on every node. */
  sessionSecret: string;
  /** Send `Access-Control-Allow-Credentials: true` to allowed origins (cookies on cross-origin requests). */
  corsCredentials: boolean;
}

export interface HeraldConfig {
  host: string;
  /** 0 picks an ephemeral port (tests). */
  port: number;
  engine: EngineName;
  /** Keys accepted by the server API (`Authorization: apikey <key>`). */
  apiKeys: string[];
  logLevel: LogLevel;
  /** `'*'` or origins such as `'https://app.example.com'` (scheme://host[:port], no path). */
  allowedOrigins: string[];
  /** How long a publish's idempotency key is remembered, in ms. */
  idempotencyWindow: number;
  limits: LimitsOptions;
  heartbeat: HeartbeatOptions;
  shutdown: ShutdownOptions;
  transports: TransportsOptions;
  http: HttpOptions;
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
});

/** The defaults, deep-frozen: copy before changing (`structuredClone(DEFAULT_CONFIG)`). */
export const DEFAULT_CONFIG: HeraldConfig = deepFreeze({
  host: '0.0.0.0',
  port: 8080,
  engine: 'memory',
  apiKeys: [],
  logLevel: 'info',
  allowedOrigins: ['*'],
  idempotencyWindow: 300_000,
  limits: {
    maxConnections: 100_000,
    maxFrameSize: 131_072,
    maxSubscriptionsPerConnection: 128,
    maxQueueBytes: 1_048_576,
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
    maxChannelsPerRequest: 32,
    sessionSecret: '',
    corsCredentials: false,
  },
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
  /** A list, or one comma-separated string. */
  allowedOrigins?: string[] | string;
  idempotencyWindow?: DurationInput;
  limits?: {
    maxConnections?: number | string;
    maxFrameSize?: SizeInput;
    maxSubscriptionsPerConnection?: number | string;
    maxQueueBytes?: SizeInput;
    maxApiBodySize?: SizeInput;
  } | null;
  heartbeat?: { pingInterval?: DurationInput; pingTimeout?: DurationInput } | null;
  shutdown?: { timeout?: DurationInput; reconnectJitter?: DurationInput } | null;
  transports?: { websocket?: boolean | string; sse?: boolean | string; stream?: boolean | string; poll?: boolean | string } | null;
  http?: {
    heartbeatInterval?: DurationInput;
    pollTimeout?: DurationInput;
    padding?: SizeInput;
    sseRetry?: DurationInput;
    keepAliveTimeout?: DurationInput;
    maxChannelsPerRequest?: number | string;
    sessionSecret?: string;
    corsCredentials?: boolean | string;
  } | null;
  /** `null` entries (an empty `chat:` in YAML) mean "the defaults". */
  namespaces?: Record<string, NamespaceInput | null> | null;
}
