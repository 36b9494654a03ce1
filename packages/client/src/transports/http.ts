/**
 * What the HTTP transports share: `POST /send` for commands, reading a streamed response body, and
 * the streaming transport itself (`/stream` and `/sse` differ only in path and wire format).
 */
import { HeraldError, type ErrorBody, type ErrorCode } from '@herald/protocol';
import {
  buildUrl,
  refusalCode,
  type InFrame,
  type OutFrame,
  type TransportContext,
  type TransportFactory,
  type TransportSink,
} from './transport.js';

/**
 * An HTTP error answer as `[close code, reason, error]`, from its JSON body `{"error":{code,message}}`
 * (an answer without one, from a proxy say, gets `HERALD_ERR_CLIENT_DISCONNECTED`).
 */
export async function refusal(res: Response): Promise<[number, string, HeraldError]> {
  const e = ((await res.json().catch(() => ({}))) as { error?: ErrorBody }).error;
  const reason = `HTTP ${res.status}` + (e === undefined ? '' : ` ${e.code}: ${e.message}`);
  return [
    refusalCode(e?.code),
    reason,
    new HeraldError((e?.code ?? 'HERALD_ERR_CLIENT_DISCONNECTED') as ErrorCode, reason),
  ];
}

interface Locks {
  request(name: string, o: { mode: 'shared' }, cb: () => Promise<void>): Promise<unknown>;
  query(): Promise<{ held?: { name?: string }[] }>;
}
const locks = (globalThis as { navigator?: { locks?: Locks } }).navigator?.locks;

/**
 * A browser opens at most 6 HTTP/1.1 connections per host; a request beyond them waits, unseen by
 * the page. Every open HTTP transport holds a shared Web Lock named after the server (`hold`), so a
 * request that gets no answer in time can count them across the origin's tabs (`watch`): five or
 * more, and the application is told why (an `error` event, HERALD_ERR_BROWSER_CONNECTION_LIMIT).
 * Nothing happens where there are no Web Locks (Node).
 */
export function hold(ctx: TransportContext): () => void {
  let free: (() => void) | undefined;
  let gone = false;
  void locks?.request('herald ' + ctx.base, { mode: 'shared' }, () =>
    gone ? Promise.resolve() : new Promise((r) => (free = r)),
  );
  return () => {
    gone = true;
    free?.();
  };
}

/** Starts watching a request (see `hold`); returns what stops it (call it when the answer comes). */
export function watch(ctx: TransportContext, sink: TransportSink): () => void {
  let off = false;
  const ms = ctx.connectTimeout;
  const t = setTimeout(
    () =>
      void locks?.query().then((s) => {
        const n = s.held?.filter((l) => l.name === 'herald ' + ctx.base).length ?? 0;
        if (!off && n > 4)
          sink.frame({
            error: {
              code: 'HERALD_ERR_BROWSER_CONNECTION_LIMIT',
              message: `${n} Herald connections open to ${ctx.base}: a browser allows 6 per host over HTTP/1.1 (use HTTP/2 or SharedHerald)`,
            },
          });
      }),
    ms * 0.8,
  );
  return () => {
    off = true;
    clearTimeout(t);
  };
}

/** A failed `fetch` as text, with its cause when it has one (Node: `connect ECONNREFUSED ...`). */
export function describe(err: unknown): string {
  const cause = (err as { cause?: Error } | undefined)?.cause;
  return `${String(err)}${cause ? ` (${cause.message})` : ''}`;
}

/**
 * Sends commands with `POST /send` (the session id in the query: no CORS preflight), one request at
 * a time: commands made while one is unanswered go together in the next. Two requests sent at once
 * may reach the server in either order (each on its own HTTP/1.1 connection, or through another
 * node), and commands must take effect in the order they were made.
 */
export function sender(
  ctx: TransportContext,
  sink: TransportSink,
  session: () => string,
  signal: AbortSignal,
): (frames: readonly OutFrame[]) => void {
  /** Commands made while a request is unanswered (undefined when none is). */
  let held: OutFrame[] | undefined;
  /** One request; its replies come back as NDJSON, a failed one answers each command with an error. */
  const post = async (frames: readonly OutFrame[]): Promise<void> => {
    const stop = watch(ctx, sink);
    let error: ErrorBody | undefined;
    try {
      const res = await ctx.fetch(buildUrl(ctx, '/send', { session: session() }), {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: frames.map((f) => JSON.stringify(f)).join('\n'),
        credentials: ctx.credentials,
        signal,
      });
      const text = await res.text();
      sink.alive(); // the long-poll counts it only while no poll is held
      if (res.ok) lines(text, (line) => sink.frame(JSON.parse(line) as InFrame));
      else error = (JSON.parse(text) as { error: ErrorBody }).error;
    } catch (err) {
      error = { code: 'HERALD_ERR_CLIENT_DISCONNECTED', message: `POST /send failed: ${String(err)}` };
    }
    stop();
    if (error !== undefined) for (const f of frames) sink.frame({ id: f.id, error });
  };
  const send = (frames: readonly OutFrame[]): void => {
    if (held !== undefined) return void held.push(...frames);
    held = [];
    void post(frames).then(() => {
      const next = held!;
      held = undefined;
      if (next.length > 0) send(next);
    });
  };
  return send;
}

/** Calls `each` with every complete non-blank line of `text`; returns the unfinished rest. */
export function lines(text: string, each: (line: string) => void): string {
  let start = 0;
  for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
    const line = text.slice(start, nl).replace(/\r$/, '');
    start = nl + 1;
    if (line.trim() !== '') each(line);
  }
  return text.slice(start);
}

/** A parser of one wire format: gets text chunks in order, hands frames to the sink. */
export type StreamParser = (sink: TransportSink) => (chunk: string) => void;

/**
 * A transport that reads one long HTTP response (`GET /stream`, `GET /sse`) and sends commands over
 * `POST /send` with the session id from its `connected` frame. Subscriptions are all made by
 * commands, so the response's own `subscribed` frames are not needed and are dropped.
 */
export function streaming(path: string, accept: string, parser: StreamParser): TransportFactory {
  return (ctx, sink) => {
    const stream = new AbortController();
    const sends = new AbortController();
    let session = '';
    let done = false;
    const stop = watch(ctx, sink);
    let free = stop;
    // Replies over /send say nothing about the stream's health: they do not count as `alive`.
    const send = sender(ctx, { ...sink, alive: () => undefined }, () => session, sends.signal);
    const end = (code: number, reason: string, err?: HeraldError): void => {
      if (done) return;
      done = true;
      stream.abort();
      free();
      sink.closed(code, reason, err);
    };
    const feed = parser({
      frame(f) {
        if ('push' in f) {
          if (f.push === 'subscribed') return;
          if (f.push === 'connected') session = f.session ?? '';
        }
        sink.frame(f);
      },
      alive: () => sink.alive(),
      closed: end,
    });
    ctx
      .fetch(buildUrl(ctx, path), {
        headers: { Accept: accept },
        cache: 'no-store',
        credentials: ctx.credentials,
        signal: stream.signal,
      })
      .then(async (res) => {
        stop();
        if (!res.ok || res.body === null) return end(...(await refusal(res)));
        if (!done) free = hold(ctx);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done: eof } = await reader.read();
          if (eof) return end(1006, 'the stream ended');
          sink.alive();
          feed(decoder.decode(value, { stream: true }));
        }
      })
      .catch((err: unknown) => end(1006, describe(err)));

    return {
      send,
      close(hard) {
        done = true;
        stream.abort();
        free();
        if (hard) sends.abort();
      },
    };
  };
}
