/**
 * Publishing over Herald's `GET /api/ws` (the server API over one WebSocket, checked once at the
 * upgrade) instead of one HTTP request per publication: what `publishOver: 'websocket'` (the
 * default) uses.
 *
 * - **One connection**, opened on the first call and again after it drops. Requests made in one
 *   turn of the event loop leave as one frame (a JSON array), at most `window` unanswered; more
 *   wait their turn. Each attempt has its own request id, so a late answer to an abandoned attempt
 *   is ignored.
 * - **Same guarantees as HTTP** (caller.ts): every attempt has its own `timeout`; a failure that may
 *   succeed later (5xx code, dropped connection, timeout) is retried with backoff, with the same
 *   bytes and so the same idempotency key. When the connection drops, the requests in flight on it
 *   are sent again on the next connection; the server applies each key once.
 * - **Falls back to HTTP** for good when the upgrade shows there is no `/api/ws` (see `noApiSocket`:
 *   an older server, a proxy without WebSocket), and for a single request too large for one frame.
 */
import type { RequestOptions } from 'node:https';
import { ErrorCodes, isErrorCode } from '@herald/protocol';
import type { Caller, CallOptions, RetryMode } from './caller.js';
import { withAttempts } from './caller.js';
import { errorBodyOf, HeraldApiError, isObject } from './errors.js';
import { openSocket, UpgradeRefused, type ApiWebSocket } from './socket.js';

export interface SocketCallerOptions {
  /** The server's base URL (its path is kept: `/herald` connects to `/herald/api/ws`). */
  readonly url: URL;
  readonly apiKey: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly timeout: number;
  /** Requests unanswered at once (the server runs up to 1000 per connection). */
  readonly window: number;
  /** Largest frame sent, in bytes; a request larger than this goes over HTTP. */
  readonly maxFrameBytes: number;
  /** TLS options for an https URL. */
  readonly tls?: RequestOptions | undefined;
}

type Outcome = { json: unknown } | { failure: { error: HeraldApiError; sent: boolean } } | { http: true };

interface Attempt {
  readonly id: number;
  readonly method: string;
  readonly text: string;
  /** The text's size in UTF-8. */
  readonly bytes: number;
  sent: boolean;
  timer: NodeJS.Timeout | undefined;
  readonly settle: (o: Outcome) => void;
}

type State = 'open' | 'http' | 'closed';

/** Requests one frame holds at most (the server's limit). */
const MAX_PER_FRAME = 1000;
/** `frameBytes` is never halved below this. */
const MIN_FRAME_BYTES = 4096;

export class SocketCaller {
  private state: State = 'open';
  private ws: ApiWebSocket | undefined;
  private connecting = false;
  private readonly queue: Attempt[] = [];
  private readonly inFlight = new Map<number, Attempt>();
  private nextId = 1;
  private pumping = false;
  private readonly wsUrl: URL;
  /** Largest frame sent: `maxFrameBytes`, halved after each close for a frame too big. */
  private frameBytes: number;
  /** Requests unanswered at once: `window`, at most what the server runs at once. */
  private window: number;
  private readonly headers: Record<string, string>;

  constructor(
    private readonly opts: SocketCallerOptions,
    private readonly caller: Caller,
  ) {
    this.wsUrl = new URL(`${opts.url.pathname.replace(/\/+$/, '')}/api/ws`, opts.url);
    this.headers = { ...opts.headers, authorization: `apikey ${opts.apiKey}` };
    this.frameBytes = opts.maxFrameBytes;
    this.window = opts.window;
  }

  /**
   * Sends `payload` (the params' JSON text) to `method` and resolves with the answer, retrying as
   * the header comment says; over HTTP once the server has no `/api/ws`.
   */
  async call(method: string, payload: string, mode: RetryMode, opts: CallOptions = {}): Promise<unknown> {
    const retries = this.caller.retriesOf(opts);
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attempt(method, payload, opts);
      if ('http' in outcome) return this.caller.send(method, payload, mode, opts);
      if ('json' in outcome) return outcome.json;
      const { error, sent } = outcome.failure;
      const again = error.retriable && (mode === 'always' || !sent);
      if (!again || attempt > retries || this.state === 'closed') throw withAttempts(error, attempt);
      const delay = this.caller.delay(attempt);
      this.caller.notifyRetry({ method, attempt, delay, error: withAttempts(error, attempt) });
      await this.caller.wait(delay, opts.signal, method);
    }
  }

  /** Closes the connection (the calls have settled: `HeraldApi.close` waits for them first). */
  close(): void {
    this.state = 'closed';
    this.ws?.close();
  }

  /** Fails every call in flight with HERALD_ERR_CLIENT_CLOSED and drops the connection. */
  destroy(): void {
    this.state = 'closed';
    for (const a of [...this.queue, ...this.inFlight.values()]) this.fail(a, closed(a.method), a.sent);
    this.ws?.destroy();
  }

  private attempt(method: string, payload: string, opts: CallOptions): Promise<Outcome> {
    if (this.state === 'http') return Promise.resolve({ http: true });
    if (this.state === 'closed') return Promise.resolve({ failure: { error: closed(method), sent: false } });
    const id = this.nextId++;
    const text = `{"id":${id},"method":"${method}","params":${payload}}`;
    const bytes = Buffer.byteLength(text);
    if (bytes > this.frameBytes) return Promise.resolve({ http: true });
    const timeout = opts.timeout ?? this.opts.timeout;
    const signal = opts.signal;
    return new Promise<Outcome>((resolve, reject) => {
      const onAbort = (): void => {
        this.forget(a);
        reject(signal?.reason as Error);
      };
      const a: Attempt = {
        id,
        method,
        text,
        bytes,
        sent: false,
        timer: undefined,
        settle: (o) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(o);
        },
      };
      if (signal?.aborted) {
        reject(signal.reason as Error);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      a.timer = setTimeout(() => {
        const error = new HeraldApiError('HERALD_ERR_TIMEOUT', `${method}: no answer within ${timeout} ms`, {
          method,
          retriable: true,
        });
        this.fail(a, error, a.sent);
      }, timeout);
      this.queue.push(a);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.pumping) return;
    this.pumping = true;
    setImmediate(() => {
      this.pumping = false;
      this.pump();
    });
  }

  /** Sends what the window allows, the requests of one frame at most `frameBytes` together. */
  private pump(): void {
    const ws = this.ws;
    if (ws === undefined) {
      if (this.queue.length > 0) this.connect();
      return;
    }
    // Closing: its `closed` fails what is in flight on it, then the next connection opens.
    if (!ws.open) return;
    let batch: string[] = [];
    let bytes = 2;
    const send = (): void => {
      if (batch.length === 0) return;
      ws.send(batch.length === 1 ? (batch[0] as string) : `[${batch.join(',')}]`);
      batch = [];
      bytes = 2;
    };
    while (this.inFlight.size < this.window && this.queue.length > 0) {
      const a = this.queue.shift() as Attempt;
      if (a.bytes > this.frameBytes) {
        // Larger than the server takes in a frame: HTTP answers it (413 if it is too large there too).
        this.settle(a, { http: true });
        continue;
      }
      const size = a.bytes + 1;
      if (batch.length >= MAX_PER_FRAME || bytes + size > this.frameBytes) send();
      a.sent = true;
      this.inFlight.set(a.id, a);
      batch.push(a.text);
      bytes += size;
    }
    send();
    ws.ref(this.inFlight.size > 0);
  }

  private connect(): void {
    if (this.connecting || this.state !== 'open') return;
    this.connecting = true;
    let ws: ApiWebSocket | undefined;
    openSocket(
      { url: this.wsUrl, headers: this.headers, timeout: this.opts.timeout, tls: this.opts.tls },
      {
        message: (text) => this.answers(text),
        closed: (reason, code) => {
          // 1009: a frame was over the server's limits.maxApiBodySize; send smaller ones from now on
          // (a single request too big for them goes over HTTP, which answers 413).
          if (code === 1009) this.frameBytes = Math.max(MIN_FRAME_BYTES, Math.floor(this.frameBytes / 2));
          // Closed inside the 101's own bytes: `ws` is not set yet and the `then` below sees it closed.
          if (ws !== undefined) this.dropped(ws, reason);
        },
      },
    ).then(
      (socket) => {
        this.connecting = false;
        ws = socket;
        if (this.state !== 'open') {
          socket.close();
          return;
        }
        if (!socket.open) {
          // Closed by the server as it opened: fail the queue as unsent (retried with backoff), not
          // reconnect at once, which would spin against a server that closes every connection.
          this.refused(new Error('the connection closed as it opened'));
          return;
        }
        this.ws = socket;
        const { maxFrameBytes, maxInFlight } = socket.limits;
        if (maxFrameBytes !== undefined) this.frameBytes = Math.min(this.frameBytes, maxFrameBytes);
        if (maxInFlight !== undefined) this.window = Math.min(this.opts.window, maxInFlight);
        this.pump();
      },
      (err: unknown) => {
        this.connecting = false;
        this.refused(err);
      },
    );
  }

  /** The upgrade failed: the queued requests fail (not sent), or go over HTTP. */
  private refused(err: unknown): void {
    const queued = this.queue.splice(0);
    if (noApiSocket(err)) {
      this.state = 'http';
      for (const a of queued) this.settle(a, { http: true });
      return;
    }
    for (const a of queued) this.fail(a, refusal(a.method, this.wsUrl, err), false);
  }

  /** The connection ended: the requests in flight on it failed after being sent (retried with their keys). */
  private dropped(ws: ApiWebSocket | undefined, reason: string): void {
    if (ws !== undefined && this.ws !== ws) return;
    this.ws = undefined;
    const lost = [...this.inFlight.values()];
    this.inFlight.clear();
    for (const a of lost) {
      const error = new HeraldApiError(
        'HERALD_ERR_CLIENT_DISCONNECTED',
        `${a.method}: the connection to ${this.wsUrl.origin} dropped before the answer (${reason})`,
        { method: a.method, retriable: true },
      );
      this.fail(a, error, true);
    }
    if (this.queue.length > 0) this.schedule();
  }

  private answers(text: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return; // not an answer: the attempt it belongs to times out
    }
    for (const answer of Array.isArray(parsed) ? (parsed as unknown[]) : [parsed]) {
      if (!isObject(answer) || typeof answer['id'] !== 'number') continue;
      const a = this.inFlight.get(answer['id']);
      if (a === undefined) continue;
      this.inFlight.delete(a.id);
      if ('result' in answer) {
        this.settle(a, { json: answer['result'] });
        continue;
      }
      const body = errorBodyOf(answer);
      const code = body?.code ?? 'HERALD_ERR_INTERNAL';
      const status = ErrorCodes[code].status;
      const error = new HeraldApiError(code, body?.message ?? `${a.method}: an answer without result or error`, {
        status,
        method: a.method,
        retriable: status >= 500 || status === 429,
      });
      this.settle(a, { failure: { error, sent: true } });
    }
    if (this.queue.length > 0) this.pump();
    else this.ws?.ref(this.inFlight.size > 0);
  }

  private fail(a: Attempt, error: HeraldApiError, sent: boolean): void {
    this.forget(a);
    this.settle(a, { failure: { error, sent } });
  }

  private settle(a: Attempt, outcome: Outcome): void {
    clearTimeout(a.timer);
    a.settle(outcome);
  }

  /** Takes `a` out of the queue or the window (its answer, if any comes, is ignored). */
  private forget(a: Attempt): void {
    clearTimeout(a.timer);
    if (this.inFlight.delete(a.id)) {
      // A timed-out or aborted publish frees its place: let a waiting one go, and let the process
      // exit if none is left (the socket stays referenced while answers are awaited).
      if (this.queue.length > 0) this.schedule();
      else this.ws?.ref(this.inFlight.size > 0);
      return;
    }
    const i = this.queue.indexOf(a);
    if (i !== -1) this.queue.splice(i, 1);
  }
}

/**
 * Whether a failed upgrade means "no `/api/ws` here", so HTTP takes over for good: 404 (an older
 * Herald), 426 (a proxy that drops the `Upgrade` header, so Herald saw a plain GET), or another
 * refusal below 500 without a Herald error body (a proxy or server that is not Herald answered:
 * HTTP then gets its own answer, and its own error). A Herald error (401 wrong key, 503 shutting
 * down) and a 5xx from a proxy (Herald down) are errors of the request, not a missing endpoint.
 */
function noApiSocket(err: unknown): boolean {
  if (!(err instanceof UpgradeRefused)) return false;
  if (err.status === 404 || err.status === 426) return true;
  if (err.status >= 500) return false;
  let body: unknown;
  try {
    body = JSON.parse(err.body);
  } catch {
    return true;
  }
  const herald = errorBodyOf(body);
  return herald === undefined || !isErrorCode(herald.code);
}

function closed(method: string): HeraldApiError {
  return new HeraldApiError('HERALD_ERR_CLIENT_CLOSED', `${method}: the client is closed`, {
    method,
    retriable: false,
  });
}

/** Why the upgrade failed, as the error of a request that was not sent. */
function refusal(method: string, url: URL, err: unknown): HeraldApiError {
  if (err instanceof UpgradeRefused) {
    let body: unknown;
    try {
      body = JSON.parse(err.body);
    } catch {
      body = undefined;
    }
    const herald = errorBodyOf(body);
    const status = err.status;
    const code =
      herald !== undefined && isErrorCode(herald.code)
        ? herald.code
        : status >= 500
          ? 'HERALD_ERR_CLIENT_DISCONNECTED'
          : 'HERALD_ERR_API_BAD_REQUEST';
    return new HeraldApiError(
      code,
      herald?.message ?? `${method}: ${url.href} answered the upgrade with HTTP ${status}`,
      {
        status,
        method,
        retriable: status >= 500 || status === 429,
      },
    );
  }
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : 'error';
  return new HeraldApiError(
    'HERALD_ERR_CLIENT_DISCONNECTED',
    `${method}: cannot connect to ${url.origin} (${code}: ${String(e?.message ?? err)})`,
    { method, retriable: true, cause: err },
  );
}
