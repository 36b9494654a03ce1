/**
 * Long-polling (`GET /poll`): stateless on the server, so the cursors of the subscriptions are the
 * whole request. A first poll without channels is the handshake (client id and session id for
 * `POST /send`); subscriptions are made with `/send` (which answers a snapshot: position, recovered
 * or backlog publications), then every poll asks for what follows the current cursors and is held
 * by the server until something arrives or the timeout passes. A change of subscriptions starts a
 * new poll (the server answers the older one).
 *
 * Liveness: only the poll says the connection is alive (a reply to `POST /send` comes over another
 * HTTP connection), and a poll gets `pollTimeout + connectTimeout` to answer: the server holds it at
 * most `pollTimeout` (what it was asked for with `timeout=`, or less), so a poll not answered by then
 * went down with its connection, and the transport ends.
 */
import {
  formatCursorSet,
  type DisconnectPush,
  type ErrorBody,
  type HeraldError,
  type JoinPush,
  type LeavePush,
  type PubPush,
  type RefreshPush,
} from '@herald/protocol';
import { describe, hold, refusal, sender, watch } from './http.js';
import { buildUrl, type HeraldTransport, type TransportFactory } from './transport.js';

type StreamState =
  { stream: string; epoch: string; offset: number; recovered?: boolean } | { stream: string; error: ErrorBody };

interface PollAnswer {
  client: string;
  session: string;
  streams: Record<string, StreamState>;
  publications: PubPush[];
  disconnect?: DisconnectPush;
  /** The token expires soon: renew it (the next polls carry the new one). */
  refresh?: RefreshPush;
  /** Presence joins and leaves on the polled channels since the last answer. */
  pushes?: (JoinPush | LeavePush)[];
}

const open: TransportFactory = (ctx, sink) => {
  const sends = new AbortController();
  let current: AbortController | undefined;
  let session: string | undefined;
  let done = false;
  let queued = false;
  // The handshake is watched for the browser's connection limit; then the transport holds a slot.
  const stop = watch(ctx, sink);
  let free = stop;

  const end = (code: number, reason: string, err?: HeraldError): void => {
    if (done) return;
    done = true;
    current?.abort();
    free();
    sink.closed(code, reason, err);
  };

  const get = async (params: Record<string, string | undefined>, signal: AbortSignal): Promise<PollAnswer> => {
    const res = await ctx.fetch(buildUrl(ctx, '/poll', { ...params, session }), {
      cache: 'no-store',
      credentials: ctx.credentials,
      signal,
    });
    if (!res.ok) throw await refusal(res);
    const answer = (await res.json()) as PollAnswer;
    sink.alive();
    session = answer.session;
    return answer;
  };

  const fail = (err: unknown): void => {
    if (Array.isArray(err)) end(...(err as [number, string, HeraldError]));
    else end(1006, describe(err));
  };

  const handle = (answer: PollAnswer): void => {
    for (const st of Object.values(answer.streams)) {
      if ('error' in st)
        sink.frame({ push: 'unsubscribed', stream: st.stream, code: st.error.code, reason: st.error.message });
      else if (st.recovered === false) {
        // The position publications of this answer follow (before the first one, or the top).
        const first = answer.publications.find((p) => p.stream === st.stream);
        sink.frame({ push: 'subscribed', ...st, offset: first === undefined ? st.offset : first.offset - 1 });
      }
    }
    for (const pub of answer.publications) sink.frame(pub);
    for (const p of answer.pushes ?? []) sink.frame(p);
    if (answer.refresh !== undefined) sink.frame(answer.refresh);
    if (answer.disconnect !== undefined) {
      sink.frame(answer.disconnect);
      end(answer.disconnect.code, answer.disconnect.reason);
    }
  };

  const poll = (): void => {
    queued = false;
    current?.abort();
    current = undefined;
    const cursors = ctx.cursors();
    if (done || cursors.size === 0) return;
    const mine = (current = new AbortController());
    const ms = ctx.pollTimeout + ctx.connectTimeout;
    const timer = setTimeout(() => mine.abort(new Error(`no answer to the poll within ${ms} ms`)), ms);
    get({ cursor: formatCursorSet(cursors), timeout: String(ctx.pollTimeout / 1000) }, mine.signal).then(
      (answer) => {
        clearTimeout(timer);
        if (mine !== current) return;
        handle(answer);
        poll();
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (mine === current) fail(err);
      },
    );
  };

  const hello = new AbortController();
  current = hello;
  get({ timeout: '0' }, hello.signal).then(
    (answer) => {
      stop();
      if (hello !== current) return;
      current = undefined;
      free = hold(ctx);
      sink.frame({
        push: 'connected',
        client: answer.client,
        session: answer.session,
        version: 1,
        pingInterval: ctx.pollTimeout,
      });
      poll();
    },
    (err: unknown) => {
      stop();
      fail(err);
    },
  );

  return {
    // A reply to /send is a sign of life only while no poll is held (no subscription to poll for).
    send: sender(
      ctx,
      { ...sink, alive: () => current === undefined && sink.alive() },
      () => session ?? '',
      sends.signal,
    ),
    refresh() {
      if (queued || done) return;
      queued = true;
      queueMicrotask(poll);
    },
    close(hard) {
      done = true;
      current?.abort();
      free();
      if (hard) sends.abort();
    },
  };
};

export const longPoll: HeraldTransport = { name: 'long-poll', open };
