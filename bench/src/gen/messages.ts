/**
 * What the orchestrator and the load-generator processes (subscriber, publisher) say to each other
 * over the Node IPC channel. Every request carries an id; the child answers with the same id.
 */
import type { LatencySummary } from './histogram.js';

/**
 * How a subscriber talks to a target. `path` holds `{ch}` where the channel name goes.
 * - `herald-ws`: Herald's JSON protocol on /ws; subscribed when the reply to `subscribe` arrives.
 * - `herald-ws-msgpack`: the same in Herald's MessagePack protocol (binary frames).
 * - `herald-sse`, `herald-stream`: subscribed at Herald's `subscribed` event / push.
 * - `herald-poll`: a loop of long-polls on one keep-alive connection, carrying the cursor.
 * - `plain-ws`: subscribed once the upgrade succeeds (raw `ws` peers, Nchan); one message = one payload.
 * - `plain-sse`: subscribed once the 200 response headers arrive (raw Node SSE, Nchan).
 * - `socketio`: Engine.IO v4 / Socket.IO v5 over WebSocket, `subscribe` event with an ack.
 * - `faye`: Bayeux over WebSocket (handshake, subscribe, a `/meta/connect` kept outstanding);
 *   subscribed when `/meta/subscribe` succeeds. The channel `a.b` is Faye's `/a/b`.
 */
export type SubProtocol =
  | 'herald-ws'
  | 'herald-ws-msgpack'
  | 'herald-sse'
  | 'herald-stream'
  | 'herald-poll'
  | 'plain-ws'
  | 'plain-sse'
  | 'socketio'
  | 'faye';

export interface SubSpec {
  readonly protocol: SubProtocol;
  readonly port: number;
  readonly path: string;
}

/**
 * How the publisher publishes: `herald` posts `{"channel","data"}` to `path` with the API key;
 * `raw` posts the payload itself to `path` (with `{ch}` replaced).
 */
export interface PubSpec {
  /**
   * `herald`: one publication per `POST /api/publish`; `herald-batch`: the publications waiting for
   * a connection go out together as one `POST /api/batch` (up to `batch` of them), the way a backend
   * with a backlog would send them; `herald-apiws`: one frame per publication on one `GET /api/ws`
   * WebSocket (`path`), the frames made in one turn written together; `raw`: the body is the payload,
   * the channel is in the path.
   */
  readonly style: 'herald' | 'herald-batch' | 'herald-apiws' | 'raw';
  readonly port: number;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Largest number of publications in one request (`herald-batch` only). */
  readonly batch?: number;
}

/** Per-subscriber counters of one measurement window, summed over subscribers. */
export interface WindowStats {
  readonly deliveries: number;
  readonly elapsedMs: number;
  readonly latency: LatencySummary;
  /** CPU time of this process in the window, in ms. */
  readonly cpuMs: number;
}

export interface DrainStats {
  /** Deliveries missing: gaps seen in sequence numbers, plus what had not arrived when the drain ended. */
  readonly lost: number;
  /** Deliveries received twice (a sequence number at or below the last one seen). */
  readonly dup: number;
  /** Deliveries that arrived after an earlier drain had given up on them (counted lost there). */
  readonly late: number;
  /** Subscribers whose connection ended without being asked to. */
  readonly closed: number;
  /** Subscribers that had everything when the drain ended. */
  readonly complete: number;
  readonly drainMs: number;
}

export interface ConnectResult {
  readonly ok: number;
  readonly failed: number;
  readonly ms: number;
  readonly errors: readonly string[];
}

export type SubscriberRequest =
  | {
      readonly type: 'connect';
      readonly spec: SubSpec;
      /** Index of the first subscriber: subscriber `first + i` listens on channel `(first + i) % channels`. */
      readonly first: number;
      readonly n: number;
      readonly channels: number;
      readonly concurrency: number;
      /**
       * Last sequence number already published per channel: the new subscribers count from there
       * (they join after those publications and get no backlog).
       */
      readonly after?: readonly number[];
    }
  | { readonly type: 'mark' }
  | { readonly type: 'window' }
  | { readonly type: 'drain'; readonly final: readonly number[]; readonly timeoutMs: number }
  | { readonly type: 'drop' }
  | {
      readonly type: 'recover';
      readonly final: readonly number[];
      readonly concurrency: number;
      readonly timeoutMs: number;
    }
  | { readonly type: 'close' };

export interface RecoverResult {
  readonly ms: number;
  readonly recovered: number;
  readonly failed: number;
  readonly lost: number;
  readonly dup: number;
  readonly errors: readonly string[];
}

export type SubscriberReply = ConnectResult | WindowStats | DrainStats | RecoverResult | { readonly done: true };

export type PublisherRequest =
  | {
      readonly type: 'config';
      readonly spec: PubSpec;
      readonly channels: number;
      readonly sockets: number;
      /** Requests in flight per connection (HTTP/1.1 pipelining). */
      readonly pipeline: number;
      /** Approximate payload size in bytes (padding is added beyond the sequence number and timestamp). */
      readonly payloadBytes: number;
    }
  | {
      readonly type: 'run';
      /** Publications per second, over all channels (round-robin). */
      readonly rate: number;
      readonly durationMs: number;
    }
  /** `count` publications to each of the first `channels` channels, as fast as the sockets allow. */
  | { readonly type: 'burst'; readonly count: number; readonly channels: number }
  | { readonly type: 'close' };

export interface PublishResult {
  readonly sent: number;
  readonly failed: number;
  readonly ms: number;
  /** Publications per second actually sent (below `rate` when the publisher could not keep up). */
  readonly achievedRate: number;
  /** Last sequence number published on each channel. */
  readonly final: readonly number[];
  readonly cpuMs: number;
  readonly errors: readonly string[];
}

export type PublisherReply = PublishResult | { readonly done: true };

/** IPC envelope. */
export interface Envelope<T> {
  readonly id: number;
  readonly body: T;
}

export interface ErrorReply {
  readonly error: string;
}

/** Channel name of index `i`: valid for Herald, Nchan (`\w+`), Socket.IO rooms and the raw peers. */
export function channelName(i: number): string {
  return `b${i}`;
}
