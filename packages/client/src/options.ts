/** Options of the client, its commands and its subscriptions, with their defaults. */
import type { StreamPosition } from '@herald/protocol';
import type { HeraldTransport, TransportName, WebSocketLike, WireFormat } from './transports/transport.js';

export interface HeraldOptions {
  /**
   * Transports to use, in order of preference. Each connect tries them in this order until one says
   * `connected`. `Herald` from `@herald/client` takes names and defaults to all four (`websocket`,
   * `http-stream`, `sse`, `long-poll`); `Herald` from `@herald/client/core` takes the transport
   * objects (`import { websocket, sse } from '@herald/client/core'`), so a bundle holds only those.
   */
  transports?: (TransportName | HeraldTransport)[];
  /**
   * Start on long-polling (which works everywhere at once) and switch to WebSocket in the
   * background once it is connected, without losing or repeating a publication (both must be
   * among the transports with `@herald/client/core`).
   */
  upgrade?: boolean;
  /** A connection token (JWT) sent as `?token=` on every transport. */
  token?: string;
  /**
   * Gets a fresh token from the application: before every connect, shortly before the current
   * token's `exp`, and when the server says it expired.
   */
  getToken?: () => Promise<string>;
  /** How long a transport may take to say `connected` before the next one is tried, ms (5000). */
  connectTimeout?: number;
  /** Default timeout of commands (publish, history, rpc, ping) and of `Subscription.ready()`, ms (10000). */
  timeout?: number;
  /** Backoff between reconnect attempts: full jitter over `[0, min(max, min * 2^attempt))`, ms (500). */
  minReconnectDelay?: number;
  /** Upper bound of the backoff window, ms (20000). */
  maxReconnectDelay?: number;
  /** How long the server may hold a long-poll, ms (20000; the server caps it at `http.pollTimeout`). */
  pollTimeout?: number;
  /** Connect when created (true). Otherwise call `connect()`. */
  autoConnect?: boolean;
  /** A WebSocket constructor to use instead of the global one or the `ws` package. */
  WebSocket?: WebSocketLike;
  /**
   * The WebSocket's wire format: `json` (the default) or `msgpack`, whose codec is loaded on the
   * first connect (a chunk of its own). The other transports speak JSON either way; on both,
   * publications published as bytes arrive as a `Uint8Array`, and `publish` takes one.
   */
  format?: WireFormat;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
  /** Cookies on the HTTP transports' requests (`fetch`'s `credentials`, default `same-origin`). */
  credentials?: RequestCredentials;
}

export type ResolvedOptions = Required<
  Omit<HeraldOptions, 'token' | 'getToken' | 'WebSocket' | 'format' | 'transports'>
> &
  Pick<HeraldOptions, 'token' | 'getToken' | 'WebSocket' | 'format'> & { transports: HeraldTransport[] };

/** The options with their defaults; the transports are the objects the names stood for. */
export function resolveOptions(o: HeraldOptions): ResolvedOptions {
  const transports = (o.transports ?? []).map((t) => {
    if (typeof t !== 'string') return t;
    throw new TypeError(`transport '${t}' given by name: import it from @herald/client/core and pass it`);
  });
  if (transports.length === 0) throw new TypeError('no transports: give @herald/client/core the ones to use');
  return {
    upgrade: false,
    connectTimeout: 5000,
    timeout: 10_000,
    minReconnectDelay: 500,
    maxReconnectDelay: 20_000,
    pollTimeout: 20_000,
    autoConnect: true,
    fetch: (input, init) => fetch(input, init),
    credentials: 'same-origin',
    ...(Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as HeraldOptions),
    transports,
  };
}

/** Per-call options of commands. */
export interface CallOptions {
  /** Overrides the client's `timeout`, ms. */
  timeout?: number;
  /** Aborting rejects the command with the signal's reason. */
  signal?: AbortSignal;
}

export interface PublishOptions extends CallOptions {
  /** Publish at most once per key within the server's window (safe retries). */
  idempotencyKey?: string;
}

export interface HistoryOptions extends CallOptions {
  /** At most this many (capped at the namespace's `historySize`). */
  limit?: number;
  /** Only publications after this position. */
  since?: StreamPosition;
  /** Newest first. */
  reverse?: boolean;
  /**
   * The newest `limit` publications instead of the oldest, still oldest first (offset order). With
   * `since`, the newest `limit` of those after it. Not with `reverse` (the server refuses both).
   */
  latest?: boolean;
}

export interface SubscribeOptions {
  /** Deliver up to this many of the latest publications first (when not recovering). */
  backlog?: number;
  /** Start after this position (a cursor saved earlier): recover what came after it. */
  since?: StreamPosition;
  /** Aborting unsubscribes. The listener it gets is removed when the subscription ends. */
  signal?: AbortSignal;
  /**
   * For namespaces that require a subscription token: gets one from the application (called
   * before every subscribe of this subscription, so again after each reconnect).
   */
  getToken?: (channel: string) => Promise<string>;
}

/** Full-jitter capped exponential backoff: a random delay in `[0, min(max, min * 2^attempt))`. */
export function backoff(attempt: number, min: number, max: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(max, min * 2 ** Math.min(attempt, 30)));
}
