/**
 * The HTTP side of the client: one undici `Pool` of keep-alive connections to the server, one
 * request per attempt, and the retry loop around it.
 *
 * - **Connections.** At most `connections` sockets, each carrying one request at a time (no HTTP
 *   pipelining, so a slow answer never holds up the requests queued behind it on its socket); more
 *   calls than that wait in the pool's queue. A socket the server closed while idle (its
 *   `keepAliveTimeout`, a restart, a load balancer) is dropped by undici when the FIN arrives, and
 *   undici also closes idle sockets itself shortly before the server's `Keep-Alive: timeout` hint.
 *   What remains is the race where a request is written just as the server closes: it fails as a
 *   dropped connection, and the retry loop below sends it again on a fresh socket.
 * - **Attempts.** Each attempt has its own `timeout` (queueing in the pool included) and is aborted
 *   past it. The request body is serialized once, so every attempt sends the same bytes, and with
 *   them the same idempotency keys.
 * - **Retries.** A failure is retried, after a backoff, when it may succeed on another attempt (a
 *   5xx answer, a dropped or refused connection, a timeout) and the call may safely be repeated:
 *   `'always'` for idempotent calls (reads, and publications that carry an idempotency key, which
 *   the server applies at most once), `'unsent'` for the others, which are retried only when no
 *   connection could be made at all (so the server cannot have seen them). 4xx answers are never
 *   retried: the same request would get the same answer.
 */
import { Pool } from 'undici';
import { backoffDelay, retryAfterMs, sleep, type BackoffOptions } from './backoff.js';
import { codeForStatus, errorBodyOf, HeraldApiError } from './errors.js';
import { VERSION } from './version.js';

/** Whether a call may be sent again after a failure whose outcome is unknown. */
export type RetryMode = 'always' | 'unsent';

/** Options every call takes as its last argument. */
export interface CallOptions {
  /** Aborts the call (the request in flight, or the wait before a retry); the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** This call's time limit per attempt, in ms (default: the client's `timeout`). */
  readonly timeout?: number;
  /** This call's retries (default: the client's `retries`). */
  readonly retries?: number;
}

/** What `onRetry` is told before each retry. */
export interface RetryEvent {
  /** The server API method (`publish`, `batch`, ...). */
  readonly method: string;
  /** The attempt that failed: 1 for the first request. */
  readonly attempt: number;
  /** How long the client waits before the next attempt, in ms. */
  readonly delay: number;
  /** Why the attempt failed. */
  readonly error: HeraldApiError;
}

export interface CallerOptions {
  readonly url: URL;
  readonly apiKey: string;
  readonly connections: number;
  readonly timeout: number;
  readonly retries: number;
  readonly backoff: Required<BackoffOptions>;
  readonly headers: Readonly<Record<string, string>>;
  readonly pool: Pool.Options;
  readonly onRetry: ((event: RetryEvent) => void) | undefined;
}

/** One failed attempt: the error, whether the request may have reached the server, and a retry hint. */
interface Failure {
  readonly error: HeraldApiError;
  readonly sent: boolean;
  readonly retryAfter?: number | undefined;
}

/** Errors raised before a connection exists: the server cannot have seen the request. */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

type State = 'open' | 'closing' | 'closed';

export class Caller {
  private readonly pool: Pool;
  private readonly origin: string;
  /** The URL's path without its trailing slash: `https://x/herald/` sends to `/herald/api/<method>`. */
  private readonly basePath: string;
  private readonly headers: Record<string, string>;
  private state: State = 'open';
  private readonly calls = new Set<Promise<unknown>>();
  /** What `destroy()` aborts: the controller of every request and backoff wait in progress. */
  private readonly live = new Set<AbortController>();
  private closing: Promise<void> | undefined;
  private destroying: Promise<void> | undefined;

  constructor(private readonly opts: CallerOptions) {
    this.origin = opts.url.origin;
    this.basePath = opts.url.pathname.replace(/\/+$/, '');
    this.headers = {
      'user-agent': `herald-api/${VERSION} node/${process.versions.node}`,
      ...lowerKeys(opts.headers),
      authorization: `apikey ${opts.apiKey}`,
      'content-type': 'application/json',
    };
    this.pool = new Pool(this.origin, {
      connections: opts.connections,
      pipelining: 1,
      // Used when the server sends no `Keep-Alive: timeout` hint (Herald always sends one).
      keepAliveTimeout: 4000,
      ...opts.pool,
    });
  }

  get closed(): boolean {
    return this.state !== 'open';
  }

  /**
   * POSTs `body` to `/api/<method>` and resolves with the parsed JSON answer; retries as the header
   * comment says. Rejects with a `HeraldApiError`, or with the signal's reason when `opts.signal` aborts.
   */
  call(method: string, body: unknown, mode: RetryMode, opts: CallOptions = {}): Promise<unknown> {
    return this.send(method, JSON.stringify(body), mode, opts);
  }

  /** `call` with the body already serialized (`payload`, a JSON object's text). */
  send(method: string, payload: string, mode: RetryMode, opts: CallOptions = {}): Promise<unknown> {
    if (this.state === 'closed') return Promise.reject(closedError(method));
    return this.run(method, payload, mode, opts);
  }

  /**
   * Runs one public call (which may make several requests): refused once `close()` was called, and
   * awaited by `close()` while it runs.
   */
  track<T>(method: string, fn: () => Promise<T>): Promise<T> {
    if (this.state !== 'open') return Promise.reject(closedError(method));
    const p = fn();
    this.calls.add(p);
    const forget = (): boolean => this.calls.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** The wait before retry `retry` of a call, after a failure that may carry the server's hint. */
  delay(retry: number, hintMs?: number): number {
    return backoffDelay(retry, this.opts.backoff, hintMs);
  }

  /** Waits `ms`, unless the caller's signal or `destroy()` stops it first. */
  async wait(ms: number, signal: AbortSignal | undefined, method: string): Promise<void> {
    const { controller, release } = this.controller(signal);
    try {
      await sleep(ms, controller.signal);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw closedError(method, err);
    } finally {
      release();
    }
  }

  retriesOf(opts: CallOptions): number {
    return opts.retries ?? this.opts.retries;
  }

  notifyRetry(event: RetryEvent): void {
    this.opts.onRetry?.(event);
  }

  /** Refuses new calls, waits for the calls in flight (their retries included), then closes the sockets. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.state === 'open') this.state = 'closing';
      while (this.calls.size > 0) await Promise.allSettled([...this.calls]);
      this.state = 'closed';
      if (this.destroying === undefined) await this.pool.close();
    })();
    return this.closing;
  }

  /** Refuses new calls, fails the calls in flight with `HERALD_ERR_CLIENT_CLOSED`, and drops the sockets. */
  destroy(): Promise<void> {
    this.destroying ??= (async () => {
      this.state = 'closed';
      for (const c of this.live) c.abort(new Error('the client was destroyed'));
      await this.pool.destroy();
    })();
    return this.destroying;
  }

  private async run(method: string, payload: string, mode: RetryMode, opts: CallOptions): Promise<unknown> {
    const retries = this.retriesOf(opts);
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(method, payload, opts);
      if (!('failure' in outcome)) return outcome.json;
      const { error, sent, retryAfter } = outcome.failure;
      const again = error.retriable && (mode === 'always' || !sent);
      if (!again || attempt > retries || this.state === 'closed') throw withAttempts(error, attempt);
      const delay = this.delay(attempt, retryAfter);
      this.notifyRetry({ method, attempt, delay, error: withAttempts(error, attempt) });
      await this.wait(delay, opts.signal, method);
    }
  }

  /** One request. Resolves with the JSON answer or the failure; rejects only when the caller aborts. */
  private async attempt(
    method: string,
    payload: string,
    opts: CallOptions,
  ): Promise<{ json: unknown } | { failure: Failure }> {
    const timeout = opts.timeout ?? this.opts.timeout;
    const { controller, release } = this.controller(opts.signal);
    let timedOut = false;
    const t = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error('timeout'));
    }, timeout);
    try {
      const res = await this.pool.request({
        path: `${this.basePath}/api/${method}`,
        method: 'POST',
        headers: this.headers,
        body: payload,
        signal: controller.signal,
      });
      const text = await res.body.text();
      return this.answer(method, res.statusCode, res.headers, text);
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (this.state === 'closed' && !timedOut) return { failure: { error: closedError(method, err), sent: true } };
      if (timedOut) {
        const error = new HeraldApiError('HERALD_ERR_TIMEOUT', `${method}: no answer within ${timeout} ms`, {
          method,
          retriable: true,
          cause: err,
        });
        return { failure: { error, sent: true } };
      }
      return { failure: this.networkFailure(method, err) };
    } finally {
      clearTimeout(t);
      release();
    }
  }

  /**
   * A controller for one request or wait, aborted by the caller's `signal` (with its reason) and by
   * `destroy()`. Plain listeners, removed by `release()`, rather than `AbortSignal.any`: the
   * caller's signal may live much longer than one call.
   */
  private controller(signal: AbortSignal | undefined): { controller: AbortController; release: () => void } {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(signal?.reason);
    if (signal?.aborted) controller.abort(signal.reason);
    else signal?.addEventListener('abort', onAbort, { once: true });
    if (this.state === 'closed') controller.abort(new Error('the client was destroyed'));
    this.live.add(controller);
    return {
      controller,
      release: () => {
        signal?.removeEventListener('abort', onAbort);
        this.live.delete(controller);
      },
    };
  }

  private answer(
    method: string,
    status: number,
    headers: Record<string, string | string[] | undefined>,
    text: string,
  ): { json: unknown } | { failure: Failure } {
    let json: unknown;
    let parsed = true;
    try {
      json = JSON.parse(text);
    } catch {
      parsed = false;
    }
    if (status >= 200 && status < 300) {
      if (parsed) return { json };
      const error = new HeraldApiError(
        'HERALD_ERR_API_NOT_FOUND',
        `${method}: ${this.origin}${this.basePath} answered ${status} with a body that is not JSON: is this the URL of a Herald server?`,
        { status, method, retriable: false },
      );
      return { failure: { error, sent: true } };
    }
    const retriable = status >= 500 || status === 429 || status === 408;
    const body = parsed ? errorBodyOf(json) : undefined;
    const error =
      body !== undefined
        ? new HeraldApiError(body.code, body.message, { status, method, retriable })
        : new HeraldApiError(
            codeForStatus(status),
            `${method}: HTTP ${status} from ${this.origin}${this.basePath}, without a Herald error body` +
              (text !== '' ? `: ${text.slice(0, 200)}` : ''),
            { status, method, retriable },
          );
    return { failure: { error, sent: true, retryAfter: retryAfterMs(headers['retry-after']) } };
  }

  private networkFailure(method: string, err: unknown): Failure {
    const code = errorCode(err);
    const reason = err instanceof Error ? err.message : String(err);
    if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') {
      return { error: closedError(method, err), sent: true };
    }
    if (code !== undefined && CONNECT_ERRORS.has(code)) {
      const error = new HeraldApiError(
        'HERALD_ERR_CLIENT_DISCONNECTED',
        `${method}: cannot connect to ${this.origin} (${code}: ${reason})`,
        { method, retriable: true, cause: err },
      );
      return { error, sent: false };
    }
    const error = new HeraldApiError(
      'HERALD_ERR_CLIENT_DISCONNECTED',
      `${method}: the connection to ${this.origin} dropped before the answer (${code ?? 'error'}: ${reason})`,
      { method, retriable: true, cause: err },
    );
    return { error, sent: true };
  }
}

function closedError(method: string, cause?: unknown): HeraldApiError {
  return new HeraldApiError('HERALD_ERR_CLIENT_CLOSED', `${method}: the client is closed`, {
    method,
    retriable: false,
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** The same error, saying how many attempts were made. */
export function withAttempts(e: HeraldApiError, attempts: number): HeraldApiError {
  return new HeraldApiError(e.code, e.message, {
    status: e.status,
    retriable: e.retriable,
    attempts,
    ...(e.method !== undefined ? { method: e.method } : {}),
    ...(e.cause !== undefined ? { cause: e.cause } : {}),
  });
}

/**
 * The most telling code of an undici error: a connect-phase system error anywhere in its chain
 * (undici wraps some; Node's happy eyeballs gives an AggregateError), else the outermost code.
 */
function errorCode(err: unknown): string | undefined {
  let found: string | undefined;
  const queue: unknown[] = [err];
  for (let i = 0; i < queue.length && i < 8; i++) {
    const e = queue[i];
    if (typeof e !== 'object' || e === null) continue;
    if ('code' in e && typeof e.code === 'string') {
      if (CONNECT_ERRORS.has(e.code)) return e.code;
      found ??= e.code;
    }
    if ('cause' in e) queue.push(e.cause);
    if (e instanceof AggregateError) queue.push(...(e.errors as unknown[]));
  }
  return found;
}

function lowerKeys(h: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}
