/**
 * Backend hooks: Herald asks the application over HTTP before a connect, subscribe or publish, and
 * forwards client RPC calls to it. One undici `Pool` with keep-alive holds at most `maxConnections`
 * persistent connections to the backend; each call has its own timeout, and a slow call only holds
 * its own connection, so other clients' calls go on over the others.
 *
 * The contract (docs/auth.md, "Backend hooks"):
 *
 *     POST <url>/<event>          event: connect | subscribe | publish | rpc
 *     Content-Type: application/json
 *     Authorization: apikey <auth.hooks.apiKey>      (when configured)
 *
 *     {"event": "subscribe", "client": "<client id>", "user": "<user id, '' if anonymous>",
 *      "channel": "game.42", "data": ...}
 *
 * answered with `200` and `{"allow": true, "data"?: ...}` or `{"allow": false, "reason"?: "..."}`.
 * Any other status, a body that is not such JSON, or no answer within the timeout is a failure
 * with its own code; Herald never treats a failed hook as "allow".
 */
import { HeraldError } from '@herald/protocol';
import { Pool } from 'undici';
import { systemClock, type Clock } from '../core/clock.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { noMetrics, type Counter, type Metrics } from '../core/metrics.js';

export const HOOK_EVENTS = ['connect', 'subscribe', 'publish', 'rpc'] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

export interface BackendHooksOptions {
  /** Base URL: calls go to `<url>/<event>` (`https://app.example.com/herald/subscribe`). */
  readonly url: string;
  /** Longest a call may take, queueing and reading the answer included, in ms. */
  readonly timeout: number;
  /** Persistent connections to the backend at most. Default 32. */
  readonly maxConnections?: number;
  /** Sent as `Authorization: apikey <key>` so the backend can tell Herald's calls apart; '' = none. */
  readonly apiKey?: string;
  /** Largest answer body read, in bytes. Default 1 MiB. */
  readonly maxResponseSize?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Counts calls by event and outcome (`herald_hook_calls_total`); nothing is kept when not given. */
  readonly metrics?: Metrics;
}

/** Who is asking: every hook call carries both. */
export interface HookCaller {
  /** The connection's client id. */
  readonly client: string;
  /** The user id from the connection token; '' for an anonymous client. */
  readonly user: string;
}

export interface ConnectHookRequest extends HookCaller {
  /** `websocket`, `sse`, `stream` or `poll`. */
  readonly transport?: string;
  readonly remoteAddress?: string;
  /** Data the client sent with its connect, if any. */
  readonly data?: unknown;
}

export interface SubscribeHookRequest extends HookCaller {
  /** The stream: a channel or a subtree pattern (`game.**`). */
  readonly channel: string;
  readonly data?: unknown;
}

export interface PublishHookRequest extends HookCaller {
  readonly channel: string;
  readonly data: unknown;
  /** In place of `data` when the payload is bytes: their base64 (docs/protocol.md, binary payloads). */
  readonly b64data?: string;
}

export interface RpcHookRequest extends HookCaller {
  readonly method: string;
  readonly data: unknown;
}

export type HookRequest = ConnectHookRequest | SubscribeHookRequest | PublishHookRequest | RpcHookRequest;

/** An allowing answer. `hasData` tells `"data": null` apart from no `data` at all. */
export interface HookAnswer {
  readonly hasData: boolean;
  readonly data: unknown;
}

/** How a hook call ended: the `outcome` label of `herald_hook_calls_total`. */
export type HookOutcome = 'allowed' | 'denied' | 'timeout' | 'failure';
const HOOK_OUTCOMES: readonly HookOutcome[] = ['allowed', 'denied', 'timeout', 'failure'];

export const DEFAULT_HOOK_CONNECTIONS = 32;
export const DEFAULT_HOOK_RESPONSE_SIZE = 1024 * 1024;
/** Longest `reason` passed on to the client. */
const MAX_REASON_LENGTH = 256;

export class BackendHooks {
  /** By event, then outcome. */
  private readonly calls: Record<HookEvent, Record<HookOutcome, Counter>>;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly search: string;
  private readonly headers: Record<string, string>;
  private readonly timeout: number;
  private readonly maxResponseSize: number;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(opts: BackendHooksOptions) {
    const url = new URL(opts.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`hook url must be http(s), got ${url.protocol}`);
    }
    if (!(Number.isSafeInteger(opts.timeout) && opts.timeout > 0)) throw new Error('hook timeout must be > 0 ms');
    this.timeout = opts.timeout;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.search = url.search;
    this.maxResponseSize = opts.maxResponseSize ?? DEFAULT_HOOK_RESPONSE_SIZE;
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    const metrics = opts.metrics ?? noMetrics;
    const byOutcome = (event: HookEvent): Record<HookOutcome, Counter> =>
      Object.fromEntries(
        HOOK_OUTCOMES.map((outcome) => [
          outcome,
          metrics.counter('herald_hook_calls_total', 'Backend hook calls by event and outcome', { event, outcome }),
        ]),
      ) as Record<HookOutcome, Counter>;
    this.calls = Object.fromEntries(HOOK_EVENTS.map((e) => [e, byOutcome(e)])) as BackendHooks['calls'];
    this.headers = { 'content-type': 'application/json', accept: 'application/json' };
    if (opts.apiKey !== undefined && opts.apiKey !== '') this.headers['authorization'] = `apikey ${opts.apiKey}`;
    this.pool = new Pool(url.origin, {
      connections: opts.maxConnections ?? DEFAULT_HOOK_CONNECTIONS,
      pipelining: 1,
      // Idle connections are kept for reuse (capped by the backend's own Keep-Alive hint).
      keepAliveTimeout: 60_000,
      keepAliveMaxTimeout: 600_000,
      // Backstops only: the per-call timeout below aborts first.
      headersTimeout: opts.timeout + 1_000,
      bodyTimeout: opts.timeout + 1_000,
      connect: { timeout: opts.timeout },
    });
  }

  connect(req: ConnectHookRequest): Promise<HookAnswer> {
    return this.call('connect', req);
  }

  subscribe(req: SubscribeHookRequest): Promise<HookAnswer> {
    return this.call('subscribe', req);
  }

  /** An answer with `data` replaces the publication's data. Bytes (MessagePack) go as `b64data`. */
  publish(req: PublishHookRequest): Promise<HookAnswer> {
    if (!(req.data instanceof Uint8Array)) return this.call('publish', req);
    const { data, ...rest } = req;
    return this.call('publish', { ...rest, data: undefined, b64data: Buffer.from(data).toString('base64') });
  }

  /** The answer's `data` is the RPC result. */
  rpc(req: RpcHookRequest): Promise<HookAnswer> {
    return this.call('rpc', req);
  }

  /**
   * Posts `{event, ...body}` to `<url>/<event>` and reads the answer. Resolves when the backend
   * allows; rejects with a `HeraldError`: `HERALD_ERR_HOOK_DENIED` (reason as message),
   * `HERALD_ERR_HOOK_TIMEOUT`, `HERALD_ERR_HOOK_UNAVAILABLE` or `HERALD_ERR_HOOK_BAD_RESPONSE`.
   */
  async call(event: HookEvent, body: HookRequest): Promise<HookAnswer> {
    const counted = this.calls[event];
    const abort = new AbortController();
    let timedOut = false;
    const timer = this.clock.setTimeout(() => {
      timedOut = true;
      abort.abort(new Error('hook timeout'));
    }, this.timeout);
    try {
      const text = await this.post(event, JSON.stringify({ event, ...body }), abort.signal);
      const answer = parseAnswer(event, text);
      counted.allowed.inc();
      return answer;
    } catch (err) {
      const error = timedOut
        ? new HeraldError('HERALD_ERR_HOOK_TIMEOUT', `the ${event} hook did not answer within ${this.timeout} ms`)
        : err instanceof HeraldError
          ? err
          : new HeraldError('HERALD_ERR_HOOK_UNAVAILABLE', `the ${event} hook cannot be reached`);
      if (error.code === 'HERALD_ERR_HOOK_DENIED') {
        counted.denied.inc();
      } else {
        if (error.code === 'HERALD_ERR_HOOK_TIMEOUT') counted.timeout.inc();
        else counted.failure.inc();
        this.logger.warn(
          { code: error.code, event, err: err instanceof HeraldError ? err.message : errorText(err) },
          'backend hook failed',
        );
      }
      throw error;
    } finally {
      timer.cancel();
    }
  }

  /** Closes the pool: waits for calls in flight, then closes the connections. */
  async close(): Promise<void> {
    if (!this.pool.closed) await this.pool.close();
  }

  private async post(event: HookEvent, payload: string, signal: AbortSignal): Promise<string> {
    const res = await this.pool.request({
      path: `${this.basePath}/${event}${this.search}`,
      method: 'POST',
      headers: this.headers,
      body: payload,
      signal,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new HeraldError(
        'HERALD_ERR_HOOK_UNAVAILABLE',
        `the ${event} hook answered HTTP ${res.statusCode} (expected 200 with {"allow": ...})`,
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      const buf = chunk as Buffer;
      size += buf.byteLength;
      if (size > this.maxResponseSize) {
        res.body.destroy();
        throw new HeraldError(
          'HERALD_ERR_HOOK_BAD_RESPONSE',
          `the ${event} hook's answer is larger than ${this.maxResponseSize} bytes`,
        );
      }
      chunks.push(buf);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

function parseAnswer(event: HookEvent, text: string): HookAnswer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badResponse(event, 'is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badResponse(event, 'is not an object');
  const answer = value as Record<string, unknown>;
  if (typeof answer['allow'] !== 'boolean') throw badResponse(event, 'has no boolean "allow"');
  if (!answer['allow']) {
    const reason = answer['reason'];
    throw new HeraldError(
      'HERALD_ERR_HOOK_DENIED',
      typeof reason === 'string' && reason.trim() !== ''
        ? cleanReason(reason)
        : `the application refused this ${event}`,
    );
  }
  const hasData = Object.prototype.hasOwnProperty.call(answer, 'data');
  return { hasData, data: hasData ? answer['data'] : undefined };
}

function badResponse(event: HookEvent, what: string): HeraldError {
  return new HeraldError(
    'HERALD_ERR_HOOK_BAD_RESPONSE',
    `the ${event} hook's answer ${what} (expected {"allow": true|false, "data"?: ..., "reason"?: "..."})`,
  );
}

/** The backend's reason goes to the client: one short line of printable text. */
function cleanReason(reason: string): string {
  // eslint-disable-next-line no-control-regex
  const line = reason.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return line.length > MAX_REASON_LENGTH ? `${line.slice(0, MAX_REASON_LENGTH - 3)}...` : line;
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
