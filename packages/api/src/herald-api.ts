/**
 * `HeraldApi`: the server API (docs/protocol.md, "Server API") for a Node backend, one typed method
 * per server method, over a keep-alive connection pool (caller.ts) with safe retries.
 *
 * Publications carry an idempotency key (a `crypto.randomUUID()` unless the caller gives one), kept
 * across retries: the server applies a key once per channel within its `idempotencyWindow` (5
 * minutes by default) and answers a repeat with the first result and `duplicate: true`. So a publish
 * whose answer was lost (a reset, a timeout, a server killed after applying it) is sent again
 * without risking a second copy. Reads are retried freely; `disconnect` too (closing the same
 * connections twice leaves them closed; the second answer may count 0).
 *
 * `publish` goes over one `GET /api/ws` WebSocket by default (socket-caller.ts): the same answers,
 * keys and retries, at a fraction of the server's cost; over HTTP with `publishOver: 'http'`, or
 * when the server (or a proxy) has no `/api/ws`.
 */
import { randomUUID } from 'node:crypto';
import type { RequestOptions } from 'node:https';
import { DEFAULT_BACKOFF } from './backoff.js';
import { Caller, type CallOptions, type RetryMode } from './caller.js';
import { HeraldApiError, isObject, itemError } from './errors.js';
import { SocketCaller } from './socket-caller.js';
import type {
  ApiParams,
  BatchCommand,
  BatchReply,
  BroadcastEntry,
  ChannelsOptions,
  ChannelsResult,
  DisconnectResult,
  DisconnectTarget,
  HeraldApiOptions,
  HistoryOptions,
  HistoryResult,
  InfoResult,
  PresenceResult,
  PresenceStatsResult,
  PublishItem,
  PublishOptions,
  PublishOutcome,
  PublishResult,
} from './types.js';

/** The most commands the server takes in one `POST /api/batch`. */
export const MAX_BATCH_COMMANDS = 1000;

/** A publication of `publishMany` on its way: its place in the input, its command text and key. */
interface Pending {
  readonly index: number;
  readonly channel: string;
  readonly key: string | undefined;
  /** `{"publish":{...}}`, serialized once for every attempt. */
  readonly text: string;
}

/**
 * A client of one Herald server (or of a load balancer in front of several nodes).
 *
 * ```ts
 * const herald = new HeraldApi({ url: 'http://localhost:8080', apiKey: process.env.HERALD_API_KEY! });
 * const { offset } = await herald.publish('chat.room1', { text: 'hello' });
 * await herald.close();
 * ```
 *
 * Every method rejects with a `HeraldApiError` (or, when its `signal` aborts, the signal's reason).
 */
export class HeraldApi {
  private readonly caller: Caller;
  /** `publishOver: 'websocket'` (the default): where `publish` goes. */
  private readonly socket: SocketCaller | undefined;
  private readonly batchSize: number;
  private readonly maxBatchBytes: number;

  constructor(options: HeraldApiOptions) {
    const url = parseUrl(options.url);
    if (typeof options.apiKey !== 'string' || !/^\S+$/.test(options.apiKey)) {
      throw new TypeError('apiKey must be a non-empty string without spaces (one of the server\u2019s apiKeys)');
    }
    const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    if (!(backoff.initial > 0 && backoff.max >= backoff.initial)) {
      throw new TypeError('backoff needs 0 < initial <= max (ms)');
    }
    this.batchSize = integer('batchSize', options.batchSize ?? MAX_BATCH_COMMANDS, 1, MAX_BATCH_COMMANDS);
    this.maxBatchBytes = integer('maxBatchBytes', options.maxBatchBytes ?? 1_000_000, 64, Number.MAX_SAFE_INTEGER);
    const timeout = integer('timeout', options.timeout ?? 10_000, 1, 2 ** 31 - 1);
    this.caller = new Caller({
      url,
      apiKey: options.apiKey,
      connections: integer('connections', options.connections ?? 4, 1, 65_536),
      timeout,
      retries: integer('retries', options.retries ?? 5, 0, 1000),
      backoff,
      headers: options.headers ?? {},
      pool: options.pool ?? {},
      onRetry: options.onRetry,
    });
    const over = options.publishOver ?? 'websocket';
    if (over !== 'http' && over !== 'websocket') {
      throw new TypeError(`publishOver must be "http" or "websocket", got ${JSON.stringify(over)}`);
    }
    this.socket =
      over === 'websocket'
        ? new SocketCaller(
            {
              url,
              apiKey: options.apiKey,
              headers: options.headers ?? {},
              timeout,
              window: integer('window', options.window ?? 500, 1, 1000),
              maxFrameBytes: this.maxBatchBytes,
              // The pool's TLS options (ca, cert, servername, ...) apply to the WebSocket too.
              tls: typeof options.pool?.connect === 'object' ? (options.pool.connect as RequestOptions) : undefined,
            },
            this.caller,
          )
        : undefined;
  }

  /** Whether `close()` or `destroy()` was called: new calls are refused with `HERALD_ERR_CLIENT_CLOSED`. */
  get closed(): boolean {
    return this.caller.closed;
  }

  /**
   * Publishes `data` to `channel` (`POST /api/publish`) and resolves with its position in the
   * channel's stream. Retried on failures that may pass (see `retries`) with the same idempotency
   * key, so the publication is applied once: `duplicate: true` means an earlier attempt of this
   * call (or an earlier call with the same key) was applied, and its position is the one returned.
   */
  publish<T = unknown>(channel: string, data: T, opts: PublishOptions = {}): Promise<PublishResult> {
    return this.caller.track('publish', async () => {
      const key = keyOf(opts.idempotencyKey);
      const body: ApiParams['publish'] = { channel, data, ...(key !== undefined ? { idempotencyKey: key } : {}) };
      if (this.socket !== undefined) {
        return (await this.socket.call('publish', JSON.stringify(body), modeOf(key), opts)) as PublishResult;
      }
      return (await this.caller.call('publish', body, modeOf(key), opts)) as PublishResult;
    });
  }

  /**
   * Publishes many publications with `POST /api/batch`, `batchSize` (and `maxBatchBytes`) at a time,
   * one request after the other so that publications to one channel get offsets in array order.
   * Each item gets its own idempotency key (a new UUID unless given), so a request whose answer was
   * lost is sent again whole, and a publication that failed on its own with a server fault (say
   * `HERALD_ERR_ENGINE_UNAVAILABLE`) is sent again in a later request: such a retry can land after
   * later items of its request (offsets then follow the order of application, not the array's).
   *
   * Resolves with one outcome per item, in order, and does not reject because publications failed:
   * check `ok` on each. When a request fails as a whole (after its retries), its items and every
   * later item carry that error (later ones were not sent). Rejects only when `signal` aborts
   * (with its reason) or the client is closed (`HERALD_ERR_CLIENT_CLOSED`).
   */
  publishMany<T = unknown>(items: readonly PublishItem<T>[], opts: CallOptions = {}): Promise<PublishOutcome[]> {
    return this.caller.track('publishMany', async () => {
      const out = new Array<PublishOutcome>(items.length);
      const pending: Pending[] = items.map((item, index) => {
        const key = keyOf(item.idempotencyKey);
        const params: ApiParams['publish'] = {
          channel: item.channel,
          data: item.data,
          ...(key !== undefined ? { idempotencyKey: key } : {}),
        };
        return { index, channel: String(item.channel), key, text: JSON.stringify({ publish: params }) };
      });
      const chunks = this.chunks(pending);
      for (let c = 0; c < chunks.length; c++) {
        const failed = await this.sendChunk(chunks[c] as Pending[], out, opts);
        if (failed === undefined) continue;
        for (const rest of chunks.slice(c + 1)) {
          for (const p of rest) {
            const error = new HeraldApiError(
              failed.code,
              `publishMany: not sent, an earlier request failed (${failed.message})`,
              { status: failed.status, retriable: failed.retriable, attempts: 0, method: 'batch' },
            );
            out[p.index] = { ok: false, channel: p.channel, error, idempotencyKey: p.key };
          }
        }
        break;
      }
      return out;
    });
  }

  /**
   * Publishes the same `data` to each of `channels` (`POST /api/broadcast`, 1 to 1000 channels),
   * with one idempotency key that the server applies to each channel separately. Resolves with one
   * outcome per channel, in order (check `ok` on each); channels that failed with a server fault are
   * sent again (same key) up to `retries` times. Rejects when the first request fails as a whole.
   */
  broadcast<T = unknown>(channels: readonly string[], data: T, opts: PublishOptions = {}): Promise<PublishOutcome[]> {
    return this.caller.track('broadcast', async () => {
      const key = keyOf(opts.idempotencyKey);
      const out = new Array<PublishOutcome>(channels.length);
      let pending = channels.map((_, i) => i);
      const retries = this.caller.retriesOf(opts);
      for (let round = 1; ; round++) {
        const body: ApiParams['broadcast'] = {
          channels: pending.map((i) => channels[i] as string),
          data,
          ...(key !== undefined ? { idempotencyKey: key } : {}),
        };
        let results: BroadcastEntry[];
        try {
          const json = await this.caller.call('broadcast', body, modeOf(key), opts);
          results = listOf(json, 'results', pending.length, 'broadcast') as BroadcastEntry[];
        } catch (err) {
          // Channels that already succeeded keep their outcome: report the rest as failed.
          if (round === 1 || !(err instanceof HeraldApiError)) throw err;
          for (const i of pending) {
            out[i] = { ok: false, channel: channels[i] as string, error: err, idempotencyKey: key };
          }
          return out;
        }
        const again: number[] = [];
        let first: HeraldApiError | undefined;
        results.forEach((r, j) => {
          const i = pending[j] as number;
          if (!('error' in r)) {
            out[i] = { ok: true, ...r, idempotencyKey: key };
            return;
          }
          const error = itemError(r.error, 'broadcast', round);
          out[i] = { ok: false, channel: String(r.channel), error, idempotencyKey: key };
          if (error.retriable && key !== undefined && round <= retries) {
            again.push(i);
            first ??= error;
          }
        });
        if (first === undefined) return out;
        await this.pause('broadcast', round, first, opts);
        pending = again;
      }
    });
  }

  /**
   * Reads a stream's history (`POST /api/history`): an exact channel or a subtree (`news.**`).
   * Without `reverse` or `latest`, the oldest kept publications first. `truncated: true` means more matched than
   * fit in one answer: read on with `since` at the last publication's offset.
   */
  history<T = unknown>(channel: string, opts: HistoryOptions = {}): Promise<HistoryResult<T>> {
    return this.caller.track('history', async () => {
      const body: ApiParams['history'] = {
        channel,
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
        ...(opts.since !== undefined ? { since: opts.since } : {}),
        ...(opts.reverse !== undefined ? { reverse: opts.reverse } : {}),
        ...(opts.latest !== undefined ? { latest: opts.latest } : {}),
      };
      return (await this.caller.call('history', body, 'always', opts)) as HistoryResult<T>;
    });
  }

  /** Who is subscribed to an exact channel, on every node (`POST /api/presence`; namespaces with presence on). */
  presence(channel: string, opts: CallOptions = {}): Promise<PresenceResult> {
    return this.caller.track('presence', async () => {
      return (await this.caller.call('presence', { channel }, 'always', opts)) as PresenceResult;
    });
  }

  /** How many clients and distinct users are subscribed to an exact channel, on every node. */
  presenceStats(channel: string, opts: CallOptions = {}): Promise<PresenceStatsResult> {
    return this.caller.track('presenceStats', async () => {
      return (await this.caller.call('presenceStats', { channel }, 'always', opts)) as PresenceStatsResult;
    });
  }

  /**
   * The streams with subscribers on the node that answers (`POST /api/channels`), with presence
   * counts where the namespace keeps presence; `pattern` is a stream name or a prefix ending in `*`.
   */
  channels(opts: ChannelsOptions = {}): Promise<ChannelsResult> {
    return this.caller.track('channels', async () => {
      const body: ApiParams['channels'] = {
        ...(opts.pattern !== undefined ? { pattern: opts.pattern } : {}),
        ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
      };
      return (await this.caller.call('channels', body, 'always', opts)) as ChannelsResult;
    });
  }

  /** Counters of the node that answers (`POST /api/info`). */
  info(opts: CallOptions = {}): Promise<InfoResult> {
    return this.caller.track('info', async () => {
      return (await this.caller.call('info', {}, 'always', opts)) as InfoResult;
    });
  }

  /**
   * Closes connections on the node that answers (`POST /api/disconnect`): by `client` id and/or
   * every connection of a `user`, with 3500 FORCE_DISCONNECT, or 3004 FORCE_RECONNECT when
   * `reconnect` is true. A retried call may count 0 when an earlier attempt closed them.
   */
  disconnect(target: DisconnectTarget, opts: CallOptions = {}): Promise<DisconnectResult> {
    return this.caller.track('disconnect', async () => {
      const body: ApiParams['disconnect'] = {
        ...(target.client !== undefined ? { client: target.client } : {}),
        ...(target.user !== undefined ? { user: target.user } : {}),
        ...(target.reconnect !== undefined ? { reconnect: target.reconnect } : {}),
      };
      return (await this.caller.call('disconnect', body, 'always', opts)) as DisconnectResult;
    });
  }

  /**
   * Runs up to 1000 commands of any methods in one request (`POST /api/batch`) and resolves with
   * their replies in order (`{ <method>: <answer> }` or `{ error }`), as the server sends them.
   * `publish` and `broadcast` commands without an `idempotencyKey` get one, so the request is
   * retried like the others; replies that are errors are not retried (use `publishMany` for that).
   */
  batch(commands: readonly BatchCommand[], opts: CallOptions = {}): Promise<BatchReply[]> {
    return this.caller.track('batch', async () => {
      const keyed = commands.map((c): BatchCommand => {
        if ('publish' in c && c.publish.idempotencyKey === undefined) {
          return { publish: { ...c.publish, idempotencyKey: randomUUID() } };
        }
        if ('broadcast' in c && c.broadcast.idempotencyKey === undefined) {
          return { broadcast: { ...c.broadcast, idempotencyKey: randomUUID() } };
        }
        return c;
      });
      const json = await this.caller.call('batch', { commands: keyed }, 'always', opts);
      return listOf(json, 'replies', commands.length, 'batch') as BatchReply[];
    });
  }

  /**
   * Stops taking calls (they reject with `HERALD_ERR_CLIENT_CLOSED`), waits for the calls in flight
   * to settle (their retries included), then closes the connections.
   */
  async close(): Promise<void> {
    await this.caller.close();
    this.socket?.close();
  }

  /** Stops at once: calls in flight reject with `HERALD_ERR_CLIENT_CLOSED` and the sockets are dropped. */
  destroy(): Promise<void> {
    this.socket?.destroy();
    return this.caller.destroy();
  }

  /** Splits publications into requests of at most `batchSize` commands and about `maxBatchBytes` bytes. */
  private chunks(items: readonly Pending[]): Pending[][] {
    const chunks: Pending[][] = [];
    let chunk: Pending[] = [];
    let bytes = 0;
    for (const p of items) {
      const size = Buffer.byteLength(p.text) + 1;
      if (chunk.length > 0 && (chunk.length >= this.batchSize || bytes + size > this.maxBatchBytes)) {
        chunks.push(chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push(p);
      bytes += size;
    }
    if (chunk.length > 0) chunks.push(chunk);
    return chunks;
  }

  /**
   * Sends one chunk of `publishMany` (and its items' retries); fills `out`. Returns the error of a
   * request that failed as a whole (its items carry it too), else undefined.
   */
  private async sendChunk(
    chunk: readonly Pending[],
    out: PublishOutcome[],
    opts: CallOptions,
  ): Promise<HeraldApiError | undefined> {
    const retries = this.caller.retriesOf(opts);
    let pending = chunk;
    for (let round = 1; ; round++) {
      const keyed = pending.every((p) => p.key !== undefined);
      let replies: unknown[];
      try {
        const json = await this.caller.send(
          'batch',
          `{"commands":[${pending.map((p) => p.text).join(',')}]}`,
          keyed ? 'always' : 'unsent',
          opts,
        );
        replies = listOf(json, 'replies', pending.length, 'batch');
      } catch (err) {
        if (!(err instanceof HeraldApiError)) throw err;
        // The server's maxApiBodySize is lower than maxBatchBytes: halve the request.
        if (err.code === 'HERALD_ERR_API_BODY_TOO_LARGE' && pending.length > 1) {
          const half = Math.ceil(pending.length / 2);
          return (
            (await this.sendChunk(pending.slice(0, half), out, opts)) ??
            (await this.sendChunk(pending.slice(half), out, opts))
          );
        }
        for (const p of pending) out[p.index] = { ok: false, channel: p.channel, error: err, idempotencyKey: p.key };
        return err;
      }
      const again: Pending[] = [];
      let first: HeraldApiError | undefined;
      replies.forEach((r, j) => {
        const p = pending[j] as Pending;
        const result = isObject(r) ? r['publish'] : undefined;
        if (isObject(result)) {
          out[p.index] = { ok: true, ...(result as unknown as PublishResult), idempotencyKey: p.key };
          return;
        }
        const error = itemError(isObject(r) ? r['error'] : undefined, 'publish', round);
        out[p.index] = { ok: false, channel: p.channel, error, idempotencyKey: p.key };
        if (error.retriable && p.key !== undefined && round <= retries) {
          again.push(p);
          first ??= error;
        }
      });
      if (first === undefined) return undefined;
      await this.pause('batch', round, first, opts);
      pending = again;
    }
  }

  /** The backoff before sending again the items that failed in round `round`. */
  private async pause(method: string, round: number, error: HeraldApiError, opts: CallOptions): Promise<void> {
    const delay = this.caller.delay(round);
    this.caller.notifyRetry({ method, attempt: round, delay, error });
    await this.caller.wait(delay, opts.signal, method);
  }
}

/** The key to send: the caller's, none for `null`, else a new UUID. */
function keyOf(given: string | null | undefined): string | undefined {
  if (given === null) return undefined;
  return given ?? randomUUID();
}

function modeOf(key: string | undefined): RetryMode {
  return key !== undefined ? 'always' : 'unsent';
}

/** `json[field]` when it is an array of `length` entries; else an error (the answer is not what Herald sends). */
function listOf(json: unknown, field: string, length: number, method: string): unknown[] {
  const list = isObject(json) ? json[field] : undefined;
  if (!Array.isArray(list) || list.length !== length) {
    throw new HeraldApiError(
      'HERALD_ERR_INTERNAL',
      `${method}: the answer has ${Array.isArray(list) ? list.length : 'no'} ${field} for ${length} commands`,
      { method, retriable: false, status: 200, attempts: 1 },
    );
  }
  return list;
}

function parseUrl(raw: string | URL): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new TypeError(`url must be an absolute http(s) URL, got ${JSON.stringify(String(raw))}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`url must be an http:// or https:// URL, got ${url.protocol}`);
  }
  if (url.search !== '' || url.hash !== '') throw new TypeError('url must not have a query or a fragment');
  return url;
}

function integer(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new TypeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}
