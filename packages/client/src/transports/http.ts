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

/** A failed `fetch` as text, with its cause when it has one (Node: `connect ECONNREFUSED ...`). */
export function describe(err: unknown): string {
  const cause = (err as { cause?: Error } | undefined)?.cause;
  return `${String(err)}${cause ? ` (${cause.message})` : ''}`;
}

/**
 * Sends commands with `POST /send` (the session id in the query: no CORS preflight). Their replies
 * come back as NDJSON; a failed request answers each command with an error instead.
 */
export function post(
  ctx: TransportContext,
  sink: TransportSink,
  session: string,
  frames: readonly OutFrame[],
  signal: AbortSignal,
): void {
  const fail = (error: ErrorBody): void => {
    for (const f of frames) sink.frame({ id: f.id, error });
  };
  ctx
    .fetch(buildUrl(ctx, '/send', { session }), {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain' },
      body: frames.map((f) => JSON.stringify(f)).join('\n'),
      credentials: ctx.credentials,
      signal,
    })
    .then(async (res) => {
      const text = await res.text();
      sink.alive(); // the long-poll counts it only while no poll is held
      if (!res.ok) {
        fail((JSON.parse(text) as { error: ErrorBody }).error);
        return;
      }
      lines(text, (line) => sink.frame(JSON.parse(line) as InFrame));
    })
    .catch((err: unknown) =>
      fail({ code: 'HERALD_ERR_CLIENT_DISCONNECTED', message: `POST /send failed: ${String(err)}` }),
    );
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
    const end = (code: number, reason: string, err?: HeraldError): void => {
      if (done) return;
      done = true;
      stream.abort();
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
        if (!res.ok || res.body === null) return end(...(await refusal(res)));
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
      // Replies over /send say nothing about the stream's health: they do not count as `alive`.
      send: (frames) => post(ctx, { ...sink, alive: () => undefined }, session, frames, sends.signal),
      close(hard) {
        done = true;
        stream.abort();
        if (hard) sends.abort();
      },
    };
  };
}
