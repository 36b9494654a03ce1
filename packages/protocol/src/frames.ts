/**
 * Frames of Herald's JSON protocol (WebSocket `/ws`, and `POST /send` for HTTP sessions).
 *
 * Client → server: commands, each `{ "id": <positive integer>, "cmd": "<name>", ... }`.
 * Server → client: replies `{ "id", "result" }` or `{ "id", "error": { code, message } }`, and
 * pushes `{ "push": "<kind>", ... }`. One WebSocket message may carry several frames separated by
 * `\n` (the server batches; clients may too).
 */
import { checkChannel } from './channel.js';
import { copyStreamPosition, isStreamPosition, type StreamPosition } from './cursor.js';
import type { ErrorCode } from './codes.js';

export const PROTOCOL_VERSION = 1;
export const MAX_BACKLOG = 1000;
export const MAX_HISTORY_LIMIT = 1000;
/** Why a `history` with both `latest` and `reverse` set is refused (the server API says the same). */
export const LATEST_AND_REVERSE =
  '"latest" and "reverse" cannot both be true: "latest" gives the newest publications oldest first, "reverse" newest first';

export interface SubscribeCommand {
  id: number;
  cmd: 'subscribe';
  /** Exact channel or subtree pattern (`radio.**`). */
  channel: string;
  /** Deliver up to this many of the latest publications before live ones (when not recovering). */
  backlog?: number;
  /** Recover everything after this position (the last one the client saw). */
  since?: StreamPosition;
  /** A subscription token (a short JWT for this one channel) for namespaces that require one. */
  token?: string;
}
export interface UnsubscribeCommand {
  id: number;
  cmd: 'unsubscribe';
  channel: string;
}
export interface PublishCommand {
  id: number;
  cmd: 'publish';
  channel: string;
  data: unknown;
  idempotencyKey?: string;
}
export interface HistoryCommand {
  id: number;
  cmd: 'history';
  channel: string;
  limit?: number;
  since?: StreamPosition;
  /** Newest first. */
  reverse?: boolean;
  /**
   * The newest `limit` publications (after `since`, when given) instead of the oldest, still in
   * offset order (oldest first). Not with `reverse: true`.
   */
  latest?: boolean;
}
export interface PingCommand {
  id: number;
  cmd: 'ping';
}

/** Replaces the connection's token before it expires (same user); subscriptions stay. */
export interface RefreshCommand {
  id: number;
  cmd: 'refresh';
  token: string;
}
/** Who is subscribed to an exact channel of a namespace with `presence` on (reply: `PresenceResult`). */
export interface PresenceCommand {
  id: number;
  cmd: 'presence';
  channel: string;
}
/** How many clients and distinct users are subscribed to such a channel (reply: `PresenceStatsResult`). */
export interface PresenceStatsCommand {
  id: number;
  cmd: 'presenceStats';
  channel: string;
}
/** A call forwarded to the application backend (`auth.hooks.rpc`); the reply carries its answer. */
export interface RpcCommand {
  id: number;
  cmd: 'rpc';
  method: string;
  data?: unknown;
}

export type Command =
  | SubscribeCommand
  | UnsubscribeCommand
  | PublishCommand
  | HistoryCommand
  | PresenceCommand
  | PresenceStatsCommand
  | PingCommand
  | RefreshCommand
  | RpcCommand;
export type CommandName = Command['cmd'];
export const COMMAND_NAMES: readonly CommandName[] = [
  'subscribe',
  'unsubscribe',
  'publish',
  'history',
  'presence',
  'presenceStats',
  'ping',
  'refresh',
  'rpc',
];
export const MAX_TOKEN_LENGTH = 16_384;

/** A publication as it travels inside replies (history, subscribe recovery/backlog). */
export interface PublicationFrame<T = unknown> {
  channel: string;
  offset: number;
  data: T;
}

export interface SubscribeResult<T = unknown> {
  stream: string;
  epoch: string;
  /** Offset of the last publication included (or of the stream's top when none is included). */
  offset: number;
  /** Present when `since` was given: true when every missed publication is in `publications`. */
  recovered?: boolean;
  publications: PublicationFrame<T>[];
}
export interface PublishResult {
  channel: string;
  epoch: string;
  offset: number;
  /** True when the idempotency key was seen within the window: nothing was published again. */
  duplicate: boolean;
}
export interface HistoryResult<T = unknown> {
  stream: string;
  epoch: string;
  /** The stream's top offset. */
  offset: number;
  publications: PublicationFrame<T>[];
  /**
   * Present (true) when more publications matched than fit in one reply (limits.maxReplyBytes):
   * `publications` holds the first ones; read on with `since` at the last one's offset. With
   * `reverse` or `latest` it holds the newest ones, and the older ones were left out.
   */
  truncated?: boolean;
}

/**
 * One client in a channel's presence: its client id, its user id ('' for an anonymous client), the
 * connection token's `info` claim and the subscription token's `info` claim (`chanInfo`), when given.
 */
export interface PresenceInfo {
  client: string;
  user: string;
  info?: unknown;
  chanInfo?: unknown;
}
export interface PresenceResult {
  channel: string;
  /** Every client subscribed to the channel, on every node (at most the namespace's `maxPresence`). */
  presence: PresenceInfo[];
}
export interface PresenceStatsResult {
  channel: string;
  /** Clients subscribed (entries in the channel's presence). */
  clients: number;
  /** Distinct user ids among them (anonymous clients count as one user, ''). */
  users: number;
}

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export type Reply = { id: number; result: unknown } | { id: number; error: ErrorBody };

export interface PubPush<T = unknown> {
  push: 'pub';
  stream: string;
  channel: string;
  epoch: string;
  offset: number;
  data: T;
}
export interface ConnectedPush {
  push: 'connected';
  client: string;
  version: number;
  /** HTTP transports only: the session id for `POST /send` (header `X-Herald-Session`). */
  session?: string;
  /**
   * Server ping interval in ms. Server pings are WebSocket control frames that browsers answer
   * without showing them to scripts; a client that wants its own liveness check sends `ping`
   * commands.
   */
  pingInterval: number;
}
export interface DisconnectPush {
  push: 'disconnect';
  code: number;
  reason: string;
  reconnect: boolean;
  /** Suggested wait before reconnecting (graceful shutdown spreads clients out). */
  retryAfterMs?: number;
}
export interface UnsubscribedPush {
  push: 'unsubscribed';
  stream: string;
  code: ErrorCode;
  reason: string;
}
/** HTTP streaming transports: a subscription named in the request (or added by `/send`) is active. */
export interface SubscribedPush<T = unknown> {
  push: 'subscribed';
  stream: string;
  epoch: string;
  offset: number;
  recovered?: boolean;
  /** `/stream` only: recovered or backlog publications, oldest first (SSE sends them as events). */
  publications?: PublicationFrame<T>[];
}
/** The connection's token expires at `expiresAt` (ms since the epoch): send `refresh` before then. */
export interface RefreshPush {
  push: 'refresh';
  expiresAt: number;
}
/**
 * A client subscribed to (`join`) or left (`leave`) `channel`, whose namespace has `joinLeave` on.
 * Sent to the other subscribers of that exact channel; not part of history, no offset.
 */
export interface JoinPush extends PresenceInfo {
  push: 'join';
  channel: string;
}
export interface LeavePush extends PresenceInfo {
  push: 'leave';
  channel: string;
}
/**
 * `count` publications of `stream` right after `since` (offsets `since.offset + 1` to
 * `since.offset + count`) were skipped: the subscriber read too slowly, and its namespace's
 * `slowConsumer` policy (`drop-oldest`, `latest-only`) dropped them instead of disconnecting it.
 * The publications that follow continue after them. They are in history while it keeps them:
 * `history` with this `since` and `limit: count` reads exactly them.
 */
export interface SkipPush {
  push: 'skip';
  stream: string;
  since: StreamPosition;
  count: number;
}
export type Push =
  | PubPush
  | ConnectedPush
  | DisconnectPush
  | UnsubscribedPush
  | SubscribedPush
  | RefreshPush
  | JoinPush
  | LeavePush
  | SkipPush;

export type DecodeResult =
  { ok: true; command: Command } | { ok: false; id: number | undefined; code: ErrorCode; message: string };

function bad(id: number | undefined, code: ErrorCode, message: string): DecodeResult {
  return { ok: false, id, code, message };
}

function isNonNegInt(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

const KNOWN_FIELDS: Record<CommandName, ReadonlySet<string>> = {
  subscribe: new Set(['id', 'cmd', 'channel', 'backlog', 'since', 'token']),
  unsubscribe: new Set(['id', 'cmd', 'channel']),
  publish: new Set(['id', 'cmd', 'channel', 'data', 'idempotencyKey']),
  history: new Set(['id', 'cmd', 'channel', 'limit', 'since', 'reverse', 'latest']),
  presence: new Set(['id', 'cmd', 'channel']),
  presenceStats: new Set(['id', 'cmd', 'channel']),
  ping: new Set(['id', 'cmd']),
  refresh: new Set(['id', 'cmd', 'token']),
  rpc: new Set(['id', 'cmd', 'method', 'data']),
};

/**
 * Validates one decoded JSON value as a command. Never throws. Unknown fields are rejected so that
 * typos (`chanel`) fail loudly instead of being ignored.
 */
export function decodeCommand(value: unknown): DecodeResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return bad(undefined, 'HERALD_ERR_PROTOCOL_MALFORMED', 'a frame must be a JSON object');
  }
  const v = value as Record<string, unknown>;
  const rawId = v['id'];
  if (!(typeof rawId === 'number' && Number.isSafeInteger(rawId) && rawId > 0)) {
    return bad(undefined, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"id" must be a positive integer');
  }
  const id = rawId;
  const cmd = v['cmd'];
  if (typeof cmd !== 'string') return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"cmd" must be a string');
  if (!(COMMAND_NAMES as readonly string[]).includes(cmd)) {
    return bad(id, 'HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND', `unknown command "${cmd.slice(0, 32)}"`);
  }
  const name = cmd as CommandName;
  for (const key of Object.keys(v)) {
    if (!KNOWN_FIELDS[name].has(key)) {
      return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', `unknown field "${key.slice(0, 32)}" in ${name}`);
    }
  }
  if (name === 'ping') return { ok: true, command: { id, cmd: 'ping' } };
  if (name === 'refresh') {
    const token = v['token'];
    if (!(typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_LENGTH)) {
      return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"token" must be a non-empty string');
    }
    return { ok: true, command: { id, cmd: 'refresh', token } };
  }
  if (name === 'rpc') {
    const method = v['method'];
    if (!(typeof method === 'string' && /^[A-Za-z0-9_.:-]{1,128}$/.test(method))) {
      return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"method" must be 1-128 characters of [A-Za-z0-9_.:-]');
    }
    const c: RpcCommand = { id, cmd: 'rpc', method };
    if (v['data'] !== undefined) c.data = v['data'];
    return { ok: true, command: c };
  }

  const channel = v['channel'];
  const check = checkChannel(channel);
  if (!check.ok) {
    return bad(
      id,
      typeof channel === 'string' ? 'HERALD_ERR_CHANNEL_INVALID' : 'HERALD_ERR_PROTOCOL_BAD_FIELD',
      check.reason,
    );
  }
  const ch = check.channel;
  const since = v['since'];
  if (since !== undefined && !isStreamPosition(since)) {
    return bad(
      id,
      'HERALD_ERR_CURSOR_INVALID',
      '"since" must be {"epoch": string, "offset": integer >= 0}, with no other field',
    );
  }
  switch (name) {
    case 'subscribe': {
      const backlog = v['backlog'];
      if (backlog !== undefined && !isNonNegInt(backlog, MAX_BACKLOG)) {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', `"backlog" must be an integer from 0 to ${MAX_BACKLOG}`);
      }
      const token = v['token'];
      if (token !== undefined && !(typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_LENGTH)) {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"token" must be a non-empty string (a subscription token)');
      }
      const c: SubscribeCommand = { id, cmd: name, channel: ch };
      if (token !== undefined) c.token = token as string;
      if (backlog !== undefined) c.backlog = backlog;
      if (since !== undefined) c.since = copyStreamPosition(since);
      return { ok: true, command: c };
    }
    case 'unsubscribe':
      return { ok: true, command: { id, cmd: name, channel: ch } };
    case 'presence':
    case 'presenceStats':
      if (check.subtree) {
        return bad(id, 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED', `${name} needs an exact channel, not a pattern`);
      }
      return { ok: true, command: { id, cmd: name, channel: ch } };
    case 'publish': {
      if (check.subtree) {
        return bad(id, 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED', 'publish needs an exact channel, not a pattern');
      }
      if (!('data' in v) || v['data'] === undefined) {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"data" is required');
      }
      const key = v['idempotencyKey'];
      if (key !== undefined && !(typeof key === 'string' && key.length > 0 && key.length <= 128)) {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"idempotencyKey" must be a string of 1-128 characters');
      }
      const c: PublishCommand = { id, cmd: name, channel: ch, data: v['data'] };
      if (key !== undefined) c.idempotencyKey = key;
      return { ok: true, command: c };
    }
    case 'history': {
      const limit = v['limit'];
      if (limit !== undefined && !isNonNegInt(limit, MAX_HISTORY_LIMIT)) {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', `"limit" must be an integer from 0 to ${MAX_HISTORY_LIMIT}`);
      }
      const reverse = v['reverse'];
      if (reverse !== undefined && typeof reverse !== 'boolean') {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"reverse" must be a boolean');
      }
      const latest = v['latest'];
      if (latest !== undefined && typeof latest !== 'boolean') {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', '"latest" must be a boolean');
      }
      if (latest === true && reverse === true) {
        return bad(id, 'HERALD_ERR_PROTOCOL_BAD_FIELD', LATEST_AND_REVERSE);
      }
      const c: HistoryCommand = { id, cmd: name, channel: ch };
      if (limit !== undefined) c.limit = limit;
      if (since !== undefined) c.since = copyStreamPosition(since);
      if (reverse !== undefined) c.reverse = reverse;
      if (latest !== undefined) c.latest = latest;
      return { ok: true, command: c };
    }
    default: {
      const never: never = name;
      return bad(id, 'HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND', `unknown command "${String(never)}"`);
    }
  }
}

/** Splits one transport message into frames (`\n`-separated JSON); blank lines are skipped. */
export function splitFrames(text: string): string[] {
  if (text.indexOf('\n') === -1) return text.trim() === '' ? [] : [text];
  return text.split('\n').filter((l) => l.trim() !== '');
}
