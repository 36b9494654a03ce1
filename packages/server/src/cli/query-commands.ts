/**
 * `herald history`, `herald channels`, `herald presence`, `herald info`: one server API call each
 * (`POST /api/<method>`), printed as text on a terminal or as the server's JSON reply.
 */
import { parseCursor } from '@herald/protocol';
import {
  EXIT_OK,
  UsageError,
  channelArgument,
  columns,
  compact,
  humanOutput,
  intOption,
  isTerminal,
  parseCommandArgs,
  table,
  truncate,
} from './output.js';
import { callApi, resolveApiKey, resolveTarget } from './server-client.js';

const COMMON = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
} as const;

function tooMany(positionals: string[], max: number): void {
  if (positionals.length > max) throw new UsageError(`unexpected argument "${positionals[max] ?? ''}"`);
}

/** Fits a line to the terminal's width (not when piped: nothing is cut then). */
function fit(line: string): string {
  return isTerminal(process.stdout) ? truncate(line, columns(process.stdout) - 1) : line;
}

interface HistoryReply {
  stream: string;
  epoch: string;
  offset: number;
  publications: { channel: string; offset: number; data: unknown }[];
}

export async function runHistory(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, {
    ...COMMON,
    limit: { type: 'string' },
    latest: { type: 'boolean' },
    since: { type: 'string' },
  });
  const [stream] = positionals;
  if (stream === undefined) throw new UsageError('give a channel or prefix.**, e.g. herald history chat.room1');
  tooMany(positionals, 1);
  channelArgument(stream, true);
  const limit = intOption('limit', values.limit, 0, Number.MAX_SAFE_INTEGER);
  if (values.since !== undefined && parseCursor(values.since) === undefined) {
    throw new UsageError(`--since must be EPOCH:OFFSET as history prints it, got "${values.since}"`);
  }
  const target = resolveTarget(values.url);
  const key = resolveApiKey(values['api-key']);
  const body: Record<string, unknown> = { channel: stream };
  if (limit !== undefined) body['limit'] = limit;
  if (values.since !== undefined) body['since'] = values.since;
  // The newest N, answered oldest first (offset order).
  if (values.latest === true) body['latest'] = true;
  const reply = await callApi(target, key, 'history', body);
  const h = reply.value as HistoryReply;
  if (!humanOutput(values.json)) {
    console.log(reply.text);
    return EXIT_OK;
  }
  const n = h.publications.length;
  const which =
    limit !== undefined && n === limit && n > 0
      ? values.latest === true
        ? ' (the newest)'
        : ' (the oldest; --latest for the newest)'
      : '';
  console.log(
    `${h.stream}: ${n === 0 ? 'no publications' : `${n} publication${n === 1 ? '' : 's'}${which}`}; position ${h.epoch}:${h.offset}`,
  );
  for (const p of h.publications) console.log(fit(`${p.channel}  #${p.offset}  ${compact(p.data)}`));
  return EXIT_OK;
}

interface ChannelsReply {
  channels: { stream: string; subscribers: number; presence?: { clients: number; users: number } }[];
}

export async function runChannels(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { ...COMMON, limit: { type: 'string' } });
  const [pattern] = positionals;
  tooMany(positionals, 1);
  const limit = intOption('limit', values.limit, 1, 10_000);
  const target = resolveTarget(values.url);
  const key = resolveApiKey(values['api-key']);
  const body: Record<string, unknown> = {};
  if (pattern !== undefined) body['pattern'] = pattern;
  if (limit !== undefined) body['limit'] = limit;
  const reply = await callApi(target, key, 'channels', body);
  if (!humanOutput(values.json)) {
    console.log(reply.text);
    return EXIT_OK;
  }
  const list = [...(reply.value as ChannelsReply).channels].sort((a, b) => a.stream.localeCompare(b.stream));
  if (list.length === 0) {
    const hint =
      pattern !== undefined && !pattern.endsWith('*')
        ? ` (for the channels under it: herald channels '${pattern}.*')`
        : '';
    console.log(
      pattern === undefined
        ? 'no channels with subscribers on this node'
        : `no channels matching "${pattern}" with subscribers on this node${hint}`,
    );
    return EXIT_OK;
  }
  const rows = [['CHANNEL', 'SUBSCRIBERS', 'PRESENCE']];
  for (const c of list) {
    const presence = c.presence === undefined ? '-' : `${c.presence.clients} clients, ${c.presence.users} users`;
    rows.push([c.stream, String(c.subscribers), presence]);
  }
  for (const line of table(rows)) console.log(fit(line));
  return EXIT_OK;
}

interface PresenceReply {
  channel: string;
  presence: { client: string; user: string; info?: unknown; chanInfo?: unknown }[];
}

export async function runPresence(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, { ...COMMON, count: { type: 'boolean' } });
  const [channel] = positionals;
  if (channel === undefined) throw new UsageError('give a channel, e.g. herald presence game.7');
  tooMany(positionals, 1);
  channelArgument(channel, false);
  const target = resolveTarget(values.url);
  const key = resolveApiKey(values['api-key']);
  const human = humanOutput(values.json);
  if (values.count === true) {
    const reply = await callApi(target, key, 'presenceStats', { channel });
    const s = reply.value as { channel: string; clients: number; users: number };
    console.log(human ? `${s.channel}: ${plural(s.clients, 'client')}, ${plural(s.users, 'user')}` : reply.text);
    return EXIT_OK;
  }
  const reply = await callApi(target, key, 'presence', { channel });
  if (!human) {
    console.log(reply.text);
    return EXIT_OK;
  }
  const p = reply.value as PresenceReply;
  const users = new Set(p.presence.map((e) => e.user)).size;
  console.log(`${p.channel}: ${plural(p.presence.length, 'client')}, ${plural(users, 'user')}`);
  if (p.presence.length === 0) return EXIT_OK;
  const rows = [['CLIENT', 'USER', 'INFO']];
  for (const e of p.presence) {
    const info = e.chanInfo === undefined ? compact(e.info) : `${compact(e.info)} (channel: ${compact(e.chanInfo)})`;
    rows.push([e.client, e.user === '' ? '(anonymous)' : e.user, info]);
  }
  for (const line of table(rows)) console.log(fit(line));
  return EXIT_OK;
}

export async function runInfo(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, COMMON);
  tooMany(positionals, 0);
  const target = resolveTarget(values.url);
  const key = resolveApiKey(values['api-key']);
  const reply = await callApi(target, key, 'info', {});
  if (!humanOutput(values.json)) {
    console.log(reply.text);
    return EXIT_OK;
  }
  const nodes = (reply.value as { nodes: Record<string, unknown>[] }).nodes;
  for (const node of nodes) {
    console.log(`node ${String(node['id'])} at ${target.base}`);
    const rows = Object.entries(node)
      .filter(([k]) => k !== 'id')
      .map(([k, v]) => [`  ${k}`, typeof v === 'string' ? v : compact(v)]);
    for (const line of table(rows)) console.log(fit(line));
  }
  return EXIT_OK;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
