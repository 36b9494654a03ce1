/**
 * The query of the HTTP transports: `channel` (repeatable; exact or `x.**`), `cursor` (a cursor
 * set, or a plain `epoch:offset` when there is one channel), `backlog`, `timeout` (long-poll),
 * `session` (long-poll), `token`. Every problem is a HeraldError with a code, answered before the
 * response starts.
 */
import { HeraldError, checkChannel, parseCursor, parseCursorSet, type CursorSet } from '@herald/protocol';

export const MAX_URL_LENGTH = 8192;

export interface TransportQuery {
  readonly streams: string[];
  readonly cursors: CursorSet;
  readonly backlog: number | undefined;
  readonly timeoutMs: number | undefined;
  readonly session: string | undefined;
  readonly token: string | undefined;
}

export function parseTransportQuery(
  url: string,
  opts: { maxChannels: number; lastEventId?: string | undefined; requireChannel: boolean },
): TransportQuery {
  if (url.length > MAX_URL_LENGTH) {
    throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', `the URL is longer than ${MAX_URL_LENGTH} bytes`);
  }
  const q = url.indexOf('?');
  const params = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const streams: string[] = [];
  for (const raw of params.getAll('channel')) {
    for (const name of raw.split(',')) {
      const check = checkChannel(name);
      if (!check.ok)
        throw new HeraldError('HERALD_ERR_CHANNEL_INVALID', `channel "${name.slice(0, 64)}": ${check.reason}`);
      if (!streams.includes(name)) streams.push(name);
    }
  }
  // Cursors: Last-Event-ID (SSE reconnects) wins over the `cursor` parameter (first connect).
  const cursors: CursorSet = new Map();
  const texts = [params.get('cursor') ?? undefined, opts.lastEventId].filter(
    (t): t is string => t !== undefined && t !== '',
  );
  for (const text of texts) {
    const set = parseCursorSet(text);
    if (set !== undefined) {
      for (const [stream, pos] of set) {
        const check = checkChannel(stream);
        if (!check.ok)
          throw new HeraldError(
            'HERALD_ERR_CURSOR_INVALID',
            `cursor names an invalid channel "${stream.slice(0, 64)}"`,
          );
        cursors.set(stream, pos);
        if (!streams.includes(stream)) streams.push(stream);
      }
      continue;
    }
    const single = parseCursor(text);
    if (single !== undefined && streams.length === 1) {
      cursors.set(streams[0] as string, single);
      continue;
    }
    throw new HeraldError(
      'HERALD_ERR_CURSOR_INVALID',
      'cursor must be "<stream>;<epoch>;<offset>[,...]" (or "<epoch>:<offset>" with one channel)',
    );
  }
  if (streams.length > opts.maxChannels) {
    throw new HeraldError('HERALD_ERR_SUBSCRIBE_LIMIT', `at most ${opts.maxChannels} channels per request`);
  }
  if (opts.requireChannel && streams.length === 0) {
    throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', 'give at least one channel: ?channel=news');
  }
  return {
    streams,
    cursors,
    backlog: intParam(params, 'backlog', 0, 1000),
    timeoutMs: secondsParam(params, 'timeout'),
    session: params.get('session') || undefined,
    token: params.get('token') || undefined,
  };
}

function intParam(params: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const v = params.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) {
    throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', `"${name}" must be an integer from ${min} to ${max}`);
  }
  return n;
}

function secondsParam(params: URLSearchParams, name: string): number | undefined {
  const v = params.get(name);
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n > 3600) {
    throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', `"${name}" must be a number of seconds`);
  }
  return Math.round(n * 1000);
}
