/**
 * What each setting accepts: one check per option, turning a raw value (from a file: any JSON/YAML
 * value; from the environment or flags: a string) into the typed value, or into problems for the
 * error message. Also the error type, and the "did you mean" helper.
 */
import { readFileSync } from 'node:fs';
import { checkChannel } from '@herald/protocol';
import { bindingKeyPrefix } from '../ingest/amqp-message.js';
import {
  AMQP_FORMATS,
  DEFAULT_CONFIG,
  NATS_STORAGES,
  ENGINES,
  JWT_ALGORITHMS,
  LOG_FORMATS,
  LOG_LEVELS,
  NAMESPACE_HOOK_EVENTS,
  PLANNED_ENGINES,
  type AmqpBinding,
  type EngineName,
  type HeraldConfig,
  type JwtAlgorithm,
  type NamespaceHookEvent,
  type NamespaceOptions,
  type PlainIngestRule,
  type PublicKeyOption,
} from './config.js';
import { parseDuration, parseSize } from './duration.js';
import { MIN_HMAC_SECRET_BYTES, parsePublicKey, readPem } from './pem.js';
import { checkTlsFile, type TlsFileKind } from './tls-files.js';
import { SLOW_CONSUMER_POLICIES, type SlowConsumerOptions } from '../core/policy.js';

/** One wrong value. `path` is the setting (`limits.maxConnections`, `apiKeys[1]`); `source` where it came from. */
export interface ConfigIssue {
  path: string;
  message: string;
  /** The config file, the environment variable (`HERALD_PORT`), the flag (`--port`), ... */
  source: string;
}

export function formatIssue(issue: ConfigIssue): string {
  return `${issue.path ? `${issue.path}: ` : ''}${issue.message} (from ${issue.source})`;
}

/** The configuration is wrong. `message` lists every issue, one per line. */
export class ConfigError extends Error {
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A raw value as quoted in messages, cut short. */
export function show(raw: unknown): string {
  if (raw === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(raw) ?? String(raw);
  } catch {
    text = String(raw);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Edit distance counting a swap of two neighbours as one edit (optimal string alignment). */
function distance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const prev = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? Math.max(a.length, b.length);
}

/** The candidate closest to `word` (ignoring case, `_` and `-`), if it is close enough to be a typo. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_\s]/g, '');
  const w = norm(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(w, norm(candidate));
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  const limit = w.length <= 3 ? 1 : w.length <= 8 ? 2 : 3;
  return bestDistance <= limit ? best : undefined;
}

// ---------------------------------------------------------------------------------------------------
// Checks.

export interface Problem {
  /** Appended to the setting's path: `[1]` for the second item of a list. */
  sub?: string;
  message: string;
}

type Checked<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };
type Check<T> = (raw: unknown) => Checked<T>;

/** Reads one setting: on success, a function that stores the value into the config (or namespace). */
export type Field<Target> = (
  raw: unknown,
) => { ok: true; apply: (target: Target) => void } | { ok: false; problems: Problem[] };

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const bad = (message: string): Checked<never> => ({ ok: false, problems: [{ message }] });

const DURATION_HINT = 'a number of ms, or a string like "250ms", "30s", "5m", "1h"';
const SIZE_HINT = 'a number of bytes, or a string like "512b", "64kb", "1mb"';

function toNumber(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'string' && /^\s*[+-]?\d+(?:\.\d+)?\s*$/.test(raw)) return Number(raw);
  return NaN;
}

function inRange(n: number | undefined, min: number, max: number): n is number {
  return n !== undefined && Number.isSafeInteger(n) && n >= min && n <= max;
}

function integer(min: number, max: number, what: string): Check<number> {
  return (raw) => {
    const n = toNumber(raw);
    return inRange(n, min, max) ? ok(n) : bad(`must be ${what}, got ${show(raw)}`);
  };
}

function duration(min: number, max: number, what: string): Check<number> {
  return (raw) => {
    const n = parseDuration(raw);
    return inRange(n, min, max) ? ok(n) : bad(`must be ${what} (${DURATION_HINT}), got ${show(raw)}`);
  };
}

function size(min: number, max: number, what: string): Check<number> {
  return (raw) => {
    const n = parseSize(raw);
    return inRange(n, min, max) ? ok(n) : bad(`must be ${what} (${SIZE_HINT}), got ${show(raw)}`);
  };
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

const bool: Check<boolean> = (raw) => {
  if (typeof raw === 'boolean') return ok(raw);
  const text = typeof raw === 'string' || typeof raw === 'number' ? String(raw).trim().toLowerCase() : '';
  if (TRUE.has(text)) return ok(true);
  if (FALSE.has(text)) return ok(false);
  return bad(`must be true or false (also 1/0, yes/no), got ${show(raw)}`);
};

function oneOf<T extends string>(values: readonly T[]): Check<T> {
  return (raw) => {
    const text = typeof raw === 'string' ? raw.trim().toLowerCase() : undefined;
    const found = values.find((v) => v === text);
    return found !== undefined ? ok(found) : bad(`must be one of ${values.join(', ')}, got ${show(raw)}`);
  };
}

const engine: Check<EngineName> = (raw) => {
  const text = typeof raw === 'string' ? raw.trim().toLowerCase() : undefined;
  const found = ENGINES.find((e) => e === text);
  if (found !== undefined) return ok(found);
  const available = ENGINES.map((e) => `"${e}"`).join(', ');
  if (text !== undefined && PLANNED_ENGINES.includes(text)) {
    return bad(`engine "${text}" is not available yet; this version has ${available}`);
  }
  return bad(`must be one of ${available}, got ${show(raw)}`);
};

const host: Check<string> = (raw) => {
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (text !== '' && !/\s/.test(text)) return ok(text);
  return bad(`must be a host name or IP address to listen on (like "0.0.0.0", "127.0.0.1" or "::"), got ${show(raw)}`);
};

/**
 * A list of `item`s, from an array or from one comma-separated string (environment variables,
 * flags). `wrongType` says what was expected; `clash` names what must not appear twice among the
 * values (undefined: nothing).
 */
function list<T>(
  item: Check<T>,
  wrongType: (raw: unknown) => string = (raw) => `must be a list (or a comma-separated string), got ${show(raw)}`,
  clash: (values: T[]) => string | undefined = () => undefined,
): Check<T[]> {
  return (raw) => {
    let items: unknown[];
    if (Array.isArray(raw)) items = raw;
    else if (typeof raw === 'string')
      items = raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    else return bad(wrongType(raw));
    const values: T[] = [];
    const problems: Problem[] = [];
    items.forEach((x, i) => {
      const r = item(x);
      if (r.ok) values.push(r.value);
      else for (const p of r.problems) problems.push({ sub: `[${i}]${p.sub ?? ''}`, message: p.message });
    });
    const message = clash(values);
    if (message !== undefined) problems.push({ message });
    return problems.length > 0 ? { ok: false, problems } : ok(values);
  };
}

export const MIN_API_KEY_LENGTH = 16;

/** Never quotes the key: messages end up in logs. */
const apiKey: Check<string> = (raw) => {
  if (typeof raw !== 'string') return bad(`must be a string, got ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  if (raw.length < MIN_API_KEY_LENGTH) {
    return bad(
      `is too short: an API key needs at least ${MIN_API_KEY_LENGTH} characters, got ${raw.length} ` +
        '(make one with `openssl rand -base64 24`)',
    );
  }
  if (/[\s,]/.test(raw)) return bad('must not contain spaces or commas');
  return ok(raw);
};

export const MIN_ADMIN_PASSWORD_LENGTH = 10;

/** Never quotes the password: messages end up in logs. */
const adminPassword: Check<string> = (raw) => {
  if (typeof raw !== 'string') return bad(`must be a string, got ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  if (raw === '') return ok(raw);
  if (raw.length < MIN_ADMIN_PASSWORD_LENGTH) {
    return bad(
      `is too short: the admin password needs at least ${MIN_ADMIN_PASSWORD_LENGTH} characters, got ${raw.length} ` +
        '(make one with `openssl rand -base64 18`)',
    );
  }
  return ok(raw);
};

/** `*`, or scheme://host[:port] as browsers send it in `Origin` (normalized: lower case, no default port). */
const origin: Check<string> = (raw) => {
  if (raw === '*') return ok('*');
  const expected = 'must be "*" or an origin like "https://app.example.com" (scheme://host[:port], no path)';
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (text.includes('*')) return bad(`cannot hold a wildcard: list each origin, or use "*" alone; got ${show(raw)}`);
  const url = parseUrl(text);
  const bare = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+$/i.test(text);
  if (url === undefined || !bare || url.host === '' || url.username !== '' || url.password !== '') {
    return bad(`${expected}, got ${show(raw)}`);
  }
  return ok(`${url.protocol}//${url.host}`);
};

/** `text` as a URL, or undefined when it is not one. */
function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/** `text` as a URL of one of `protocols` (`redis:`, ...) with a host, or undefined. */
function serverUrl(text: string, protocols: readonly string[]): URL | undefined {
  const url = parseUrl(text);
  return url !== undefined && protocols.includes(url.protocol) && url.hostname !== '' ? url : undefined;
}

/** A list of at least one `what`. */
function atLeastOne<T>(item: Check<T>, what: string): Check<T[]> {
  return (raw) => {
    const r = list(item)(raw);
    return r.ok && r.value.length === 0 ? bad(`must list at least one ${what}`) : r;
  };
}

/** A Redis URL as quoted in messages: the password replaced by `***`. */
function redactUrl(raw: unknown): string {
  return typeof raw === 'string' ? show(raw.replace(/^([a-z]+:\/\/[^:@/]*:)[^@/]*@/i, '$1***@')) : show(raw);
}

/** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. Never quotes a password. */
const redisUrl: Check<string> = (raw) => {
  const expected =
    'must be a URL like "redis://127.0.0.1:6379", "redis://:password@host:6379/0" or "rediss://host:6380"';
  const text = typeof raw === 'string' ? raw.trim() : '';
  const url = serverUrl(text, ['redis:', 'rediss:']);
  if (url === undefined) return bad(`${expected}, got ${redactUrl(raw)}`);
  if (!/^\/?(\d{1,2})?$/.test(url.pathname) || url.search !== '' || url.hash !== '') {
    return bad(`${expected} (the path may only be a database number), got ${redactUrl(raw)}`);
  }
  return ok(text);
};

/** Key prefix: no `{` or `}` (they would change Redis Cluster hash tags), no spaces. */
const redisPrefix: Check<string> = (raw) => {
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (/^[A-Za-z0-9_:.@~=+-]{1,64}$/.test(text)) return ok(text);
  return bad(`must be 1-64 characters of letters, digits and _ : . @ ~ = + -, got ${show(raw)}`);
};

/** A Redis pub/sub channel name for ingestion, or empty (off). */
const ingestChannel: Check<string> = (raw) => {
  const text = typeof raw === 'string' ? raw.trim() : undefined;
  if (text !== undefined && /^[\x21-\x7e]{0,255}$/.test(text)) return ok(text);
  return bad(
    `must be a Redis channel name (printable, no spaces, at most 255 characters) or "" to turn ingestion off, got ${show(raw)}`,
  );
};

const PLAIN_RULE_HINT = '{redisChannel, channel} or "<redis channel>=<channel>"';

/**
 * One plain-ingestion rule: a Redis channel and the Herald channel its messages go to; or a Redis
 * channel prefix ending in `*` and a Herald channel prefix ending in `*` (the rest of the Redis
 * channel's name replaces it).
 */
function plainRule(raw: unknown): Checked<PlainIngestRule> {
  let redisChannel: unknown;
  let channel: unknown;
  if (isPlainObject(raw)) {
    const extra = Object.keys(raw).filter((k) => k !== 'redisChannel' && k !== 'channel');
    if (extra.length > 0) return bad(`has unknown key ${JSON.stringify(extra[0])}; a rule is ${PLAIN_RULE_HINT}`);
    redisChannel = raw['redisChannel'];
    channel = raw['channel'];
  } else if (typeof raw === 'string' && raw.includes('=')) {
    const eq = raw.indexOf('=');
    redisChannel = raw.slice(0, eq).trim();
    channel = raw.slice(eq + 1).trim();
  } else {
    return bad(`must be ${PLAIN_RULE_HINT}, got ${show(raw)}`);
  }
  if (typeof redisChannel !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(redisChannel) || /[?[\]\\]/.test(redisChannel)) {
    return {
      ok: false,
      problems: [
        {
          sub: '.redisChannel',
          message: `must be a Redis channel name (printable, no spaces, none of ? [ ] \\), got ${show(redisChannel)}`,
        },
      ],
    };
  }
  const star = redisChannel.indexOf('*');
  if (star !== -1 && star !== redisChannel.length - 1) {
    return { ok: false, problems: [{ sub: '.redisChannel', message: 'may hold a "*" only at its end (a prefix)' }] };
  }
  const prefix = star !== -1;
  if (typeof channel !== 'string') {
    return { ok: false, problems: [{ sub: '.channel', message: `must be a Herald channel, got ${show(channel)}` }] };
  }
  if (prefix !== channel.endsWith('*')) {
    const message = prefix
      ? `must end in "*" like redisChannel (the rest of the Redis channel's name replaces it), got ${show(channel)}`
      : `must be an exact channel (a "*" needs one at the end of redisChannel too), got ${show(channel)}`;
    return { ok: false, problems: [{ sub: '.channel', message }] };
  }
  // A prefix is checked as the channel it makes with a one-character rest.
  const check = checkChannel(prefix ? `${channel.slice(0, -1)}x` : channel, { allowSubtree: false });
  if (!check.ok) {
    return { ok: false, problems: [{ sub: '.channel', message: `${check.reason}, got ${show(channel)}` }] };
  }
  return ok({ redisChannel, channel });
}

/** A list of plain-ingestion rules; from the environment, one comma-separated string of `a=b`. */
const plainRules: Check<PlainIngestRule[]> = list(
  plainRule,
  (raw) => `must be a list of ${PLAIN_RULE_HINT} (or a comma-separated string), got ${show(raw)}`,
  (values) => {
    const twice = repeated(values.map((v) => v.redisChannel));
    return twice === undefined ? undefined : `redisChannel ${JSON.stringify(twice)} has two rules`;
  },
);

/** `nats://host[:port]` (`tls://` for TLS; credentials in the URL are allowed). Never quotes a password. */
const natsUrl: Check<string> = (raw) => {
  const expected = 'must be a URL like "nats://127.0.0.1:4222" or "tls://nats.example.com:4222"';
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (serverUrl(text, ['nats:', 'tls:']) === undefined) {
    const url = parseUrl(text);
    return bad(`${expected}, got ${url === undefined ? redactUrl(raw) : `a ${url.protocol} URL`}`);
  }
  return ok(text);
};

/** One token of NATS subjects and part of JetStream stream names. */
const natsPrefix: Check<string> = (raw) => {
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (/^[A-Za-z0-9_-]{1,32}$/.test(text)) return ok(text);
  return bad(`must be 1-32 letters, digits, "_" or "-", got ${show(raw)}`);
};

/** A readable file, or '' (none). */
function optionalFile(what: string): Check<string> {
  return (raw) => {
    if (raw === '') return ok('');
    if (typeof raw !== 'string' || raw.trim() === '') return bad(`must be the path of ${what}, got ${show(raw)}`);
    try {
      readFileSync(raw.trim());
    } catch (err) {
      return bad(`cannot read ${what} ${raw.trim()}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return ok(raw.trim());
  };
}

/** A secret (never quoted). */
const secret: Check<string> = (raw) =>
  typeof raw === 'string' ? ok(raw) : bad(`must be a string, got ${typeName(raw)}`);

/** `amqp://[user:password@]host[:port][/vhost]`, `amqps://` for TLS, or '' (off). Never quotes a password. */
const amqpUrl: Check<string> = (raw) => {
  if (raw === '') return ok('');
  const expected =
    'must be a URL like "amqp://guest:guest@127.0.0.1:5672" or "amqps://user:password@host/vhost", or "" (off)';
  const text = typeof raw === 'string' ? raw.trim() : '';
  const url = serverUrl(text, ['amqp:', 'amqps:']);
  if (url === undefined) return bad(`${expected}, got ${redactUrl(raw)}`);
  if (url.hash !== '') return bad(`${expected} (no #fragment), got ${redactUrl(raw)}`);
  return ok(text);
};

/** An AMQP queue or exchange name (a short string: at most 255 bytes, printable). */
function amqpName(what: string, allowEmpty: boolean): Check<string> {
  return (raw) => {
    const text = typeof raw === 'string' ? raw.trim() : undefined;
    if (text !== undefined && (allowEmpty || text !== '') && /^[\x21-\x7e]{0,255}$/.test(text)) return ok(text);
    return bad(`must be ${what} (printable, no spaces, at most 255 characters), got ${show(raw)}`);
  };
}

const AMQP_BINDING_HINT = '{exchange, routingKey, channel?} or "<exchange>/<routing key>[=<channel>]"';

/**
 * One AMQP binding: an exchange, a binding key, and the Herald channel its messages go to: `""` (the
 * routing key), an exact channel, or a prefix ending in `*` (the rest of the routing key after the
 * binding key's literal start replaces it).
 */
function amqpBinding(raw: unknown): Checked<AmqpBinding> {
  let exchange: unknown;
  let routingKey: unknown;
  let channel: unknown = '';
  if (isPlainObject(raw)) {
    const extra = Object.keys(raw).filter((k) => k !== 'exchange' && k !== 'routingKey' && k !== 'channel');
    if (extra.length > 0) return bad(`has unknown key ${JSON.stringify(extra[0])}; a binding is ${AMQP_BINDING_HINT}`);
    exchange = raw['exchange'];
    routingKey = raw['routingKey'];
    channel = raw['channel'] ?? '';
  } else if (typeof raw === 'string' && raw.includes('/')) {
    const slash = raw.indexOf('/');
    const rest = raw.slice(slash + 1);
    const eq = rest.indexOf('=');
    exchange = raw.slice(0, slash).trim();
    routingKey = (eq === -1 ? rest : rest.slice(0, eq)).trim();
    channel = eq === -1 ? '' : rest.slice(eq + 1).trim();
  } else {
    return bad(`must be ${AMQP_BINDING_HINT}, got ${show(raw)}`);
  }
  const ex = amqpName('an exchange name (not the default exchange "")', false)(exchange);
  if (!ex.ok) return { ok: false, problems: ex.problems.map((p) => ({ ...p, sub: '.exchange' })) };
  if (typeof routingKey !== 'string' || Buffer.byteLength(routingKey) > 255) {
    const message = `must be a routing key or topic pattern of at most 255 bytes, like "orders.#", got ${show(routingKey)}`;
    return { ok: false, problems: [{ sub: '.routingKey', message }] };
  }
  if (typeof channel !== 'string') {
    return { ok: false, problems: [{ sub: '.channel', message: `must be a Herald channel, got ${show(channel)}` }] };
  }
  const prefix = channel.endsWith('*');
  if (prefix && bindingKeyPrefix(routingKey) === routingKey) {
    const message = `can end in "*" only when routingKey is a pattern with "*" or "#" (the rest of each routing key replaces it), got ${show(channel)}`;
    return { ok: false, problems: [{ sub: '.channel', message }] };
  }
  if (channel !== '') {
    // A prefix is checked as the channel it makes with a one-word rest.
    const check = checkChannel(prefix ? `${channel.slice(0, -1)}x` : channel, { allowSubtree: false });
    if (!check.ok) {
      const message = `${check.reason} ("" for the routing key itself, or a prefix ending in "*"), got ${show(channel)}`;
      return { ok: false, problems: [{ sub: '.channel', message }] };
    }
  }
  return ok({ exchange: ex.value, routingKey, channel });
}

/** A list of AMQP bindings; from the environment, one comma-separated string of `exchange/key=channel`. */
const amqpBindings: Check<AmqpBinding[]> = list(
  amqpBinding,
  (raw) => `must be a list of ${AMQP_BINDING_HINT} (or a comma-separated string), got ${show(raw)}`,
  (values) => {
    const twice = repeated(values.map((v) => `${v.exchange}/${v.routingKey}`));
    return twice === undefined ? undefined : `binding ${JSON.stringify(twice)} is listed twice`;
  },
);

/** The first name that appears twice in `names`. */
function repeated(names: readonly string[]): string | undefined {
  return names.find((n, i) => names.indexOf(n) !== i);
}

/** '' (no TLS) or the path of a readable PEM file of that kind. */
function tlsFile(kind: TlsFileKind): Check<string> {
  return (raw) => {
    if (raw === '') return ok('');
    if (typeof raw !== 'string' || raw.trim() === '') return bad(`must be the path of a PEM file, got ${show(raw)}`);
    try {
      checkTlsFile(kind, raw.trim());
      return ok(raw.trim());
    } catch (err) {
      return bad(err instanceof Error ? err.message : String(err));
    }
  };
}

// ---------------------------------------------------------------------------------------------------
// Auth checks (docs/auth.md). Secrets and keys are never quoted: messages end up in logs.

function typeName(raw: unknown): string {
  return raw === null ? 'null' : Array.isArray(raw) ? 'a list' : typeof raw;
}

const hmacSecret: Check<string> = (raw) => {
  if (typeof raw !== 'string') return bad(`must be a string, got ${typeName(raw)}`);
  if (raw === '') return ok('');
  const bytes = Buffer.byteLength(raw);
  if (bytes < MIN_HMAC_SECRET_BYTES) {
    return bad(
      `is too short: an HMAC secret needs at least ${MIN_HMAC_SECRET_BYTES} bytes (RFC 7518), got ${bytes} ` +
        '(make one with `openssl rand -base64 32`)',
    );
  }
  return ok(raw);
};

const KEY_ENTRY_HINT = 'PEM text, a PEM file path, or {kid, key}';

/** One public key: PEM text or a file path, or `{kid, key}` with `key` PEM text or a file path. */
function publicKey(raw: unknown): Checked<PublicKeyOption> {
  let kid = '';
  let key: unknown = raw;
  if (isPlainObject(raw)) {
    const extra = Object.keys(raw).filter((k) => k !== 'kid' && k !== 'key');
    if (extra.length > 0) return bad(`has unknown key ${JSON.stringify(extra[0])}; an entry is ${KEY_ENTRY_HINT}`);
    if (raw['kid'] !== undefined) {
      if (typeof raw['kid'] !== 'string' || raw['kid'] === '')
        return { ok: false, problems: [{ sub: '.kid', message: 'must be a non-empty string' }] };
      kid = raw['kid'];
    }
    key = raw['key'];
    if (typeof key !== 'string')
      return { ok: false, problems: [{ sub: '.key', message: `must be ${KEY_ENTRY_HINT.slice(0, -14)}` }] };
  }
  if (typeof key !== 'string') return bad(`must be ${KEY_ENTRY_HINT}, got ${typeName(raw)}`);
  try {
    const pem = readPem(key);
    parsePublicKey(pem);
    return ok({ kid, pem });
  } catch (err) {
    return bad(err instanceof Error ? err.message : String(err));
  }
}

/** A list of public keys; from the environment, one comma-separated string of PEM texts or paths. */
const publicKeys: Check<PublicKeyOption[]> = list(
  publicKey,
  (raw) => `must be a list of ${KEY_ENTRY_HINT} (or a comma-separated string), got ${typeName(raw)}`,
  (values) => {
    const twice = repeated(values.map((v) => v.kid).filter((k) => k !== ''));
    return twice === undefined ? undefined : `kid ${JSON.stringify(twice)} is used by two keys`;
  },
);

/** '' (none) or an http(s) URL without credentials in it. */
function httpUrl(what: string): Check<string> {
  return (raw) => {
    if (raw === '') return ok('');
    const url = parseUrl(typeof raw === 'string' ? raw.trim() : '');
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      return bad(`must be an http(s) URL (${what}), got ${show(raw)}`);
    }
    if (url.username !== '' || url.password !== '') return bad('must not hold a user name or password');
    if (url.hash !== '') return bad('must not have a #fragment');
    return ok(url.href);
  };
}

const algorithm: Check<string> = (raw) => {
  const text = typeof raw === 'string' ? raw.trim() : '';
  if (text.toLowerCase() === 'none') return bad('"none" (unsigned tokens) can never be accepted');
  const found = JWT_ALGORITHMS.find((a) => a.toLowerCase() === text.toLowerCase());
  return found !== undefined ? ok(found) : bad(`must be one of ${JWT_ALGORITHMS.join(', ')}, got ${show(raw)}`);
};

const algorithms: Check<JwtAlgorithm[]> = (raw) => {
  const r = list(algorithm)(raw);
  if (!r.ok) return r;
  if (r.value.length === 0) return bad(`must name at least one algorithm (${JWT_ALGORITHMS.join(', ')})`);
  return ok([...new Set(r.value)] as JwtAlgorithm[]);
};

const text: Check<string> = (raw) =>
  typeof raw === 'string' ? ok(raw.trim()) : bad(`must be a string, got ${typeName(raw)}`);

const hookEvent: Check<string> = (raw) => {
  const t = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  return (NAMESPACE_HOOK_EVENTS as readonly string[]).includes(t)
    ? ok(t)
    : bad(
        `must be one of ${NAMESPACE_HOOK_EVENTS.join(', ')} (connect and rpc are auth.hooks.connect and auth.hooks.rpc), got ${show(raw)}`,
      );
};

const hookEvents: Check<NamespaceHookEvent[]> = (raw) => {
  const r = list(hookEvent)(raw);
  return r.ok ? ok([...new Set(r.value)] as NamespaceHookEvent[]) : r;
};

/** `auto` (one worker per core) or a number of worker processes. */
const workerCount: Check<number | 'auto'> = (raw) =>
  typeof raw === 'string' && raw.trim().toLowerCase() === 'auto'
    ? ok('auto')
    : integer(1, 256, '"auto" (one per core) or an integer from 1 to 256')(raw);

const slowPolicy = oneOf(SLOW_CONSUMER_POLICIES);
const slowKeep = integer(1, 10_000, 'an integer from 1 to 10000');

/**
 * `slowConsumer`: a policy name, or `{ policy, keep }` with either left out (it is then the one the
 * namespace inherits from `default`).
 */
const slowConsumer: Check<Partial<SlowConsumerOptions>> = (raw) => {
  if (!isPlainObject(raw)) {
    const r = slowPolicy(raw);
    return r.ok ? ok({ policy: r.value }) : bad(`${r.problems[0]?.message ?? ''} (or { policy, keep })`);
  }
  const out: { policy?: SlowConsumerOptions['policy']; keep?: number } = {};
  const problems: Problem[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'policy') {
      const r = slowPolicy(value);
      if (r.ok) out.policy = r.value;
      else problems.push(...r.problems.map((p) => ({ ...p, sub: '.policy' })));
    } else if (key === 'keep') {
      const r = slowKeep(value);
      if (r.ok) out.keep = r.value;
      else problems.push(...r.problems.map((p) => ({ ...p, sub: '.keep' })));
    } else problems.push({ sub: `.${key}`, message: 'unknown option (the options here are: policy, keep)' });
  }
  return problems.length > 0 ? { ok: false, problems } : ok(out);
};

/** '' (none) or an API key (at least 16 characters). */
const optionalKey: Check<string> = (raw) => (raw === '' ? ok('') : apiKey(raw));

// ---------------------------------------------------------------------------------------------------
// The table of settings.

/** Dotted paths of every setting outside `namespaces`: `port`, `limits.maxConnections`, ... */
type Leaves<T, P extends string = ''> = {
  [K in keyof T & string]: T[K] extends readonly unknown[]
    ? `${P}${K}`
    : T[K] extends object
      ? Leaves<T[K], `${P}${K}.`>
      : `${P}${K}`;
}[keyof T & string];
export type SettingPath = Leaves<Omit<HeraldConfig, 'namespaces'>>;

function field<Target, T>(check: Check<T>, apply: (target: Target, value: T) => void): Field<Target> {
  return (raw) => {
    const r = check(raw);
    return r.ok ? { ok: true, apply: (target) => apply(target, r.value) } : r;
  };
}
const setting = <T>(check: Check<T>, apply: (c: HeraldConfig, v: T) => void): Field<HeraldConfig> =>
  field(check, apply);
const option = <T>(check: Check<T>, apply: (o: NamespaceOptions, v: T) => void): Field<NamespaceOptions> =>
  field(check, apply);

const DAY = 86_400_000;
/** Timers cannot wait longer than 2^31-1 ms (24.8 days); a longer value would fire at once. */
const MAX_TIMER = 24 * DAY;
const MAX_TTL = 365 * DAY;
const MAX = Number.MAX_SAFE_INTEGER;
const positive = integer(1, MAX, 'a positive integer');
const positiveSize = size(1, MAX, 'a positive size');
const timer = duration(1, MAX_TIMER, 'a positive duration of at most 24d');
const delay = duration(0, MAX_TIMER, 'a duration from 0 to 24d');
const ttl = duration(1, MAX_TTL, 'a positive duration of at most 365d');

const SETTING_TABLE: Record<SettingPath, Field<HeraldConfig>> = {
  host: setting(host, (c, v) => void (c.host = v)),
  port: setting(integer(0, 65_535, 'an integer from 0 to 65535'), (c, v) => void (c.port = v)),
  engine: setting(engine, (c, v) => void (c.engine = v)),
  apiKeys: setting(list(apiKey), (c, v) => void (c.apiKeys = v)),
  logLevel: setting(oneOf(LOG_LEVELS), (c, v) => void (c.logLevel = v)),
  logFormat: setting(oneOf(LOG_FORMATS), (c, v) => void (c.logFormat = v)),
  allowedOrigins: setting(list(origin), (c, v) => void (c.allowedOrigins = v)),
  idempotencyWindow: setting(ttl, (c, v) => void (c.idempotencyWindow = v)),
  'limits.maxConnections': setting(positive, (c, v) => void (c.limits.maxConnections = v)),
  'limits.maxFrameSize': setting(size(1024, MAX, 'a size of at least 1kb'), (c, v) => void (c.limits.maxFrameSize = v)),
  'limits.maxSubscriptionsPerConnection': setting(
    positive,
    (c, v) => void (c.limits.maxSubscriptionsPerConnection = v),
  ),
  'limits.maxQueueBytes': setting(positiveSize, (c, v) => void (c.limits.maxQueueBytes = v)),
  'limits.maxCommandsInFlight': setting(
    integer(1, 100_000, 'an integer from 1 to 100000'),
    (c, v) => void (c.limits.maxCommandsInFlight = v),
  ),
  'limits.maxCommandsWaiting': setting(
    integer(0, 1_000_000, 'an integer from 0 to 1000000'),
    (c, v) => void (c.limits.maxCommandsWaiting = v),
  ),
  'limits.maxReplyBytes': setting(
    size(1024, 1 << 30, 'a size from 1kb to 1gb'),
    (c, v) => void (c.limits.maxReplyBytes = v),
  ),
  'limits.maxApiBodySize': setting(positiveSize, (c, v) => void (c.limits.maxApiBodySize = v)),
  'heartbeat.pingInterval': setting(timer, (c, v) => void (c.heartbeat.pingInterval = v)),
  'heartbeat.pingTimeout': setting(timer, (c, v) => void (c.heartbeat.pingTimeout = v)),
  'shutdown.timeout': setting(delay, (c, v) => void (c.shutdown.timeout = v)),
  'shutdown.reconnectJitter': setting(delay, (c, v) => void (c.shutdown.reconnectJitter = v)),
  'transports.websocket': setting(bool, (c, v) => void (c.transports.websocket = v)),
  'transports.sse': setting(bool, (c, v) => void (c.transports.sse = v)),
  'transports.stream': setting(bool, (c, v) => void (c.transports.stream = v)),
  'transports.poll': setting(bool, (c, v) => void (c.transports.poll = v)),
  'http.heartbeatInterval': setting(timer, (c, v) => void (c.http.heartbeatInterval = v)),
  'http.pollTimeout': setting(
    duration(1000, 300_000, 'a duration from 1s to 5m'),
    (c, v) => void (c.http.pollTimeout = v),
  ),
  'http.padding': setting(size(0, 65_536, 'a size from 0 to 64kb'), (c, v) => void (c.http.padding = v)),
  'http.sseRetry': setting(delay, (c, v) => void (c.http.sseRetry = v)),
  'http.keepAliveTimeout': setting(timer, (c, v) => void (c.http.keepAliveTimeout = v)),
  'http.headersTimeout': setting(
    duration(50, 600_000, 'a duration from 50ms to 10m'),
    (c, v) => void (c.http.headersTimeout = v),
  ),
  'http.requestTimeout': setting(
    duration(50, 3_600_000, 'a duration from 50ms to 1h'),
    (c, v) => void (c.http.requestTimeout = v),
  ),
  'http.maxChannelsPerRequest': setting(
    integer(1, 1000, 'an integer from 1 to 1000'),
    (c, v) => void (c.http.maxChannelsPerRequest = v),
  ),
  'http.sessionSecret': setting(apiKey, (c, v) => void (c.http.sessionSecret = v)),
  'http.sendForwardTimeout': setting(
    duration(50, 60_000, 'a duration from 50ms to 1m'),
    (c, v) => void (c.http.sendForwardTimeout = v),
  ),
  'http.corsCredentials': setting(bool, (c, v) => void (c.http.corsCredentials = v)),
  'http.h2c': setting(bool, (c, v) => void (c.http.h2c = v)),
  'tls.cert': setting(tlsFile('cert'), (c, v) => void (c.tls.cert = v)),
  'tls.key': setting(tlsFile('key'), (c, v) => void (c.tls.key = v)),
  'auth.hmacSecret': setting(hmacSecret, (c, v) => void (c.auth.hmacSecret = v)),
  'auth.publicKeys': setting(publicKeys, (c, v) => void (c.auth.publicKeys = v)),
  'auth.jwksUrl': setting(httpUrl('the JWKS of the token issuer'), (c, v) => void (c.auth.jwksUrl = v)),
  'auth.jwksCacheTtl': setting(
    duration(1_000, 7 * DAY, 'a duration from 1s to 7d'),
    (c, v) => void (c.auth.jwksCacheTtl = v),
  ),
  'auth.jwksCooldown': setting(duration(0, DAY, 'a duration from 0 to 1d'), (c, v) => void (c.auth.jwksCooldown = v)),
  'auth.algorithms': setting(algorithms, (c, v) => void (c.auth.algorithms = v)),
  'auth.issuer': setting(text, (c, v) => void (c.auth.issuer = v)),
  'auth.audience': setting(text, (c, v) => void (c.auth.audience = v)),
  'auth.clockTolerance': setting(
    duration(0, 3_600_000, 'a duration from 0 to 1h'),
    (c, v) => void (c.auth.clockTolerance = v),
  ),
  'auth.maxTokenLength': setting(
    size(256, 1024 ** 2, 'a size from 256b to 1mb'),
    (c, v) => void (c.auth.maxTokenLength = v),
  ),
  'auth.anonymousConnect': setting(bool, (c, v) => void (c.auth.anonymousConnect = v)),
  'auth.maxFailuresPerMinute': setting(
    integer(0, 1_000_000, 'an integer from 0 (no limit) to 1000000'),
    (c, v) => void (c.auth.maxFailuresPerMinute = v),
  ),
  'auth.hooks.url': setting(httpUrl('the base URL of the backend hooks'), (c, v) => void (c.auth.hooks.url = v)),
  'auth.hooks.apiKey': setting(optionalKey, (c, v) => void (c.auth.hooks.apiKey = v)),
  'auth.hooks.timeout': setting(
    duration(1, 300_000, 'a duration from 1ms to 5m'),
    (c, v) => void (c.auth.hooks.timeout = v),
  ),
  'auth.hooks.maxConnections': setting(
    integer(1, 1024, 'an integer from 1 to 1024'),
    (c, v) => void (c.auth.hooks.maxConnections = v),
  ),
  'auth.hooks.connect': setting(bool, (c, v) => void (c.auth.hooks.connect = v)),
  'auth.hooks.rpc': setting(bool, (c, v) => void (c.auth.hooks.rpc = v)),
  'redis.urls': setting(atLeastOne(redisUrl, 'Redis URL'), (c, v) => void (c.redis.urls = v)),
  'redis.cluster': setting(bool, (c, v) => void (c.redis.cluster = v)),
  'redis.prefix': setting(redisPrefix, (c, v) => void (c.redis.prefix = v)),
  'redis.ingestChannel': setting(ingestChannel, (c, v) => void (c.redis.ingestChannel = v)),
  'redis.ingestPlain': setting(plainRules, (c, v) => void (c.redis.ingestPlain = v)),
  'redis.connectTimeout': setting(timer, (c, v) => void (c.redis.connectTimeout = v)),
  'redis.commandTimeout': setting(timer, (c, v) => void (c.redis.commandTimeout = v)),
  'nats.servers': setting(atLeastOne(natsUrl, 'NATS URL'), (c, v) => void (c.nats.servers = v)),
  'nats.user': setting(secret, (c, v) => void (c.nats.user = v)),
  'nats.pass': setting(secret, (c, v) => void (c.nats.pass = v)),
  'nats.token': setting(secret, (c, v) => void (c.nats.token = v)),
  'nats.credsFile': setting(optionalFile('a NATS .creds file'), (c, v) => void (c.nats.credsFile = v)),
  'nats.tls': setting(bool, (c, v) => void (c.nats.tls = v)),
  'nats.tlsCaFile': setting(optionalFile('a PEM CA file'), (c, v) => void (c.nats.tlsCaFile = v)),
  'nats.tlsCertFile': setting(optionalFile('a PEM certificate'), (c, v) => void (c.nats.tlsCertFile = v)),
  'nats.tlsKeyFile': setting(optionalFile('a PEM private key'), (c, v) => void (c.nats.tlsKeyFile = v)),
  'nats.prefix': setting(natsPrefix, (c, v) => void (c.nats.prefix = v)),
  'nats.connectTimeout': setting(timer, (c, v) => void (c.nats.connectTimeout = v)),
  'nats.commandTimeout': setting(timer, (c, v) => void (c.nats.commandTimeout = v)),
  'nats.replicas': setting(integer(1, 5, 'an integer from 1 to 5'), (c, v) => void (c.nats.replicas = v)),
  'nats.storage': setting(oneOf(NATS_STORAGES), (c, v) => void (c.nats.storage = v)),
  'amqp.url': setting(amqpUrl, (c, v) => void (c.amqp.url = v)),
  'amqp.queue': setting(amqpName('a queue name', false), (c, v) => void (c.amqp.queue = v)),
  'amqp.declare': setting(bool, (c, v) => void (c.amqp.declare = v)),
  'amqp.deadLetterExchange': setting(
    amqpName('an exchange name, or "" for none', true),
    (c, v) => void (c.amqp.deadLetterExchange = v),
  ),
  'amqp.bindings': setting(amqpBindings, (c, v) => void (c.amqp.bindings = v)),
  'amqp.format': setting(oneOf(AMQP_FORMATS), (c, v) => void (c.amqp.format = v)),
  'amqp.prefetch': setting(integer(1, 65_535, 'an integer from 1 to 65535'), (c, v) => void (c.amqp.prefetch = v)),
  'amqp.retryDelay': setting(
    duration(10, 30_000, 'a duration from 10ms to 30s'),
    (c, v) => void (c.amqp.retryDelay = v),
  ),
  'presence.refreshInterval': setting(
    duration(50, 3_600_000, 'a duration from 50ms to 1h'),
    (c, v) => void (c.presence.refreshInterval = v),
  ),
  'presence.ttl': setting(
    duration(100, 86_400_000, 'a duration from 100ms to 1d'),
    (c, v) => void (c.presence.ttl = v),
  ),
  demos: setting(bool, (c, v) => void (c.demos = v)),
  workers: setting(workerCount, (c, v) => void (c.workers = v)),
  'metrics.enabled': setting(bool, (c, v) => void (c.metrics.enabled = v)),
  'metrics.requireApiKey': setting(bool, (c, v) => void (c.metrics.requireApiKey = v)),
  'admin.password': setting(adminPassword, (c, v) => void (c.admin.password = v)),
  'admin.secret': setting(apiKey, (c, v) => void (c.admin.secret = v)),
  'admin.sampleInterval': setting(
    duration(200, 60_000, 'a duration from 200ms to 1m'),
    (c, v) => void (c.admin.sampleInterval = v),
  ),
};

const NAMESPACE_TABLE: Record<keyof NamespaceOptions, Field<NamespaceOptions>> = {
  historySize: option(integer(0, 10_000, 'an integer from 0 to 10000'), (o, v) => void (o.historySize = v)),
  historyTtl: option(ttl, (o, v) => void (o.historyTtl = v)),
  historyMetaTtl: option(ttl, (o, v) => void (o.historyMetaTtl = v)),
  anonymousSubscribe: option(bool, (o, v) => void (o.anonymousSubscribe = v)),
  clientPublish: option(bool, (o, v) => void (o.clientPublish = v)),
  clientHistory: option(bool, (o, v) => void (o.clientHistory = v)),
  maxMessageSize: option(size(1, 16 * 1024 ** 2, 'a size from 1 byte to 16mb'), (o, v) => void (o.maxMessageSize = v)),
  requireSubscriptionToken: option(bool, (o, v) => void (o.requireSubscriptionToken = v)),
  hooks: option(hookEvents, (o, v) => void (o.hooks = v)),
  presence: option(bool, (o, v) => void (o.presence = v)),
  joinLeave: option(bool, (o, v) => void (o.joinLeave = v)),
  maxPresence: option(integer(1, 100_000, 'an integer from 1 to 100000'), (o, v) => void (o.maxPresence = v)),
  slowConsumer: option(slowConsumer, (o, v) => void (o.slowConsumer = { ...o.slowConsumer, ...v })),
};

/** Every setting outside `namespaces`, by dotted path. */
export const SETTINGS: ReadonlyMap<string, Field<HeraldConfig>> = new Map(Object.entries(SETTING_TABLE));
/** Every namespace option, by name. */
export const NAMESPACE_OPTIONS: ReadonlyMap<string, Field<NamespaceOptions>> = new Map(Object.entries(NAMESPACE_TABLE));

// ---------------------------------------------------------------------------------------------------
// Environment variable names, derived from DEFAULT_CONFIG's keys: limits.maxConnections →
// HERALD_LIMITS_MAX_CONNECTIONS. `namespaces` is one variable holding JSON.

/** `HERALD_` + the path's keys in UPPER_SNAKE_CASE, joined by `_`. */
export function envVarName(settingPath: string): string {
  const keys = settingPath.split('.').map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase());
  return `HERALD_${keys.join('_')}`;
}

/** A setting tree: each key maps to its sub-tree, or to `null` for a setting (a leaf). */
export type Shape = ReadonlyMap<string, Shape | null>;

function shapeOf(value: Record<string, unknown>, prefix: string): Shape {
  const shape = new Map<string, Shape | null>();
  for (const [key, child] of Object.entries(value)) {
    const p = prefix + key;
    shape.set(key, isPlainObject(child) && p !== 'namespaces' ? shapeOf(child, `${p}.`) : null);
  }
  return shape;
}

/** The settings tree of DEFAULT_CONFIG (`namespaces` is a leaf: it is read by its own rules). */
export const SHAPE = shapeOf({ ...DEFAULT_CONFIG }, '');

function leafPaths(shape: Shape, prefix = ''): string[] {
  return [...shape].flatMap(([key, sub]) => (sub ? leafPaths(sub, `${prefix}${key}.`) : [prefix + key]));
}

/** Every environment variable Herald reads, mapped to its setting path (`HERALD_CONFIG` aside). */
export const ENV_VARIABLES: ReadonlyMap<string, string> = new Map(
  leafPaths(SHAPE).map((p) => [envVarName(p), p] as const),
);
