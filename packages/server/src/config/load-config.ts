/**
 * Loading the configuration: defaults, then a config file (JSON or YAML), then `HERALD_*` environment
 * variables, then command-line flags; later sources win. Every value is checked where it comes from,
 * and every problem of every source is reported at once in one `ConfigError`. Nothing here logs: the
 * caller gets the config, the generated API key (if any) and warnings, and decides what to print.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import {
  DEFAULT_CONFIG,
  DEFAULT_NAMESPACE,
  DEFAULT_NAMESPACE_OPTIONS,
  type ConfigInput,
  type HeraldConfig,
  type NamespaceOptions,
} from './config.js';
import { formatDuration } from './duration.js';
import { tlsKeyMatches } from './tls-files.js';
import {
  ConfigError,
  ENV_VARIABLES,
  NAMESPACE_OPTIONS,
  SETTINGS,
  SHAPE,
  isPlainObject,
  show,
  suggest,
  type ConfigIssue,
  type Field,
  type Shape,
} from './schema.js';

export { ConfigError, ENV_VARIABLES, envVarName, type ConfigIssue } from './schema.js';

/** Values of the `herald serve` flags (see `parseServeFlags`). */
export interface FlagValues {
  port?: number | string;
  host?: string;
  engine?: string;
  apiKey?: string[];
  logLevel?: string;
  logFormat?: string;
  config?: string;
  /** `--redis <url>`, repeatable (or comma-separated): `redis.urls`. */
  redis?: string[];
  /** `--nats <url>`, repeatable (or comma-separated): `nats.servers`. */
  nats?: string[];
  /** `--no-demos` gives `false`: `demos`. */
  demos?: boolean;
  /** `--workers N|auto`: `workers`. */
  workers?: string;
}

export interface LoadConfigOptions {
  /** Path of a `.json`, `.yaml` or `.yml` file; else `flags.config`, else `HERALD_CONFIG`. */
  configFile?: string;
  /** Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  flags?: Partial<FlagValues>;
}

export interface LoadedConfig {
  config: HeraldConfig;
  /** Set when no API key was configured and one was generated for this run: show it to the operator. */
  generatedApiKey?: string;
  /** Absolute path of the config file that was read, if any. */
  configFile?: string;
  /** Non-fatal findings, such as an unknown `HERALD_*` variable. */
  warnings: string[];
}

const CONFIG_FILE_VAR = 'HERALD_CONFIG';

// ---------------------------------------------------------------------------------------------------
// Collecting values from the sources.

interface Assigned<T> {
  source: string;
  apply: (target: T) => void;
}

class Collector {
  readonly settings = new Map<string, Assigned<HeraldConfig>>();
  /** Namespace name → option name → the value that wins so far. */
  readonly namespaces = new Map<string, Map<string, Assigned<NamespaceOptions>>>();
  readonly issues: ConfigIssue[] = [];
  readonly warnings: string[] = [];

  issue(issuePath: string, message: string, source: string): void {
    this.issues.push({ path: issuePath, message, source });
  }

  read<T>(field: Field<T>, issuePath: string, raw: unknown, source: string): Assigned<T> | undefined {
    const result = field(raw);
    if (result.ok) return { source, apply: result.apply };
    for (const p of result.problems) this.issue(issuePath + (p.sub ?? ''), p.message, source);
    return undefined;
  }

  setting(settingPath: string, raw: unknown, source: string): void {
    const field = SETTINGS.get(settingPath);
    if (!field) throw new Error(`no field for setting ${settingPath}`); // a bug: SHAPE and SETTINGS differ
    const assigned = this.read(field, settingPath, raw, source);
    if (assigned) this.settings.set(settingPath, assigned);
  }

  namespace(name: string): Map<string, Assigned<NamespaceOptions>> {
    let options = this.namespaces.get(name);
    if (!options) this.namespaces.set(name, (options = new Map()));
    return options;
  }
}

function unknownKey(key: string, known: readonly string[], prefix: string): string {
  const hint = suggest(key, known);
  if (hint !== undefined) return `unknown option, did you mean "${hint}"?`;
  if (prefix === '' && NAMESPACE_OPTIONS.has(key)) {
    return `unknown option; namespace options go under namespaces (did you mean "namespaces.${DEFAULT_NAMESPACE}.${key}"?)`;
  }
  return `unknown option (the options here are: ${known.join(', ')})`;
}

/** Reads a config object (a file's content) against the shape of the settings. */
function readTree(c: Collector, raw: unknown, shape: Shape, prefix: string, source: string): void {
  if (!isPlainObject(raw)) {
    const where = prefix === '' ? '' : prefix.slice(0, -1);
    c.issue(where, `must be an object of options, got ${show(raw)}`, source);
    return;
  }
  for (const [key, value] of Object.entries(raw)) {
    const p = prefix + key;
    const sub = shape.get(key);
    if (sub === undefined) c.issue(p, unknownKey(key, [...shape.keys()], prefix), source);
    else if (p === 'namespaces') readNamespaces(c, value, source);
    else if (sub === null) c.setting(p, value, source);
    else if (value !== null) readTree(c, value, sub, `${p}.`, source);
  }
}

const NAMESPACE_NAME = /^[A-Za-z0-9_@~=+:-]{1,255}$/;

function readNamespaces(c: Collector, raw: unknown, source: string): void {
  if (raw === null) return;
  if (!isPlainObject(raw)) {
    const example = '{ chat: { clientPublish: true } }';
    c.issue('namespaces', `must map namespace names to options, like ${example}, got ${show(raw)}`, source);
    return;
  }
  for (const [name, options] of Object.entries(raw)) {
    const p = `namespaces.${name}`;
    if (!NAMESPACE_NAME.test(name)) {
      const rule = 'use letters, digits and _ @ ~ = + : - only (a namespace is the first segment of a channel)';
      c.issue('namespaces', `${JSON.stringify(name)} is not a valid namespace name: ${rule}`, source);
      continue;
    }
    const target = c.namespace(name);
    if (options === null) continue;
    if (!isPlainObject(options)) {
      c.issue(p, `must be an object of namespace options, got ${show(options)}`, source);
      continue;
    }
    for (const [key, value] of Object.entries(options)) {
      const field = NAMESPACE_OPTIONS.get(key);
      if (!field) {
        c.issue(`${p}.${key}`, unknownKey(key, [...NAMESPACE_OPTIONS.keys()], `${p}.`), source);
        continue;
      }
      const assigned = c.read(field, `${p}.${key}`, value, source);
      if (assigned) target.set(key, assigned);
    }
  }
}

function readEnv(c: Collector, env: NodeJS.ProcessEnv): void {
  for (const [name, settingPath] of ENV_VARIABLES) {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') continue;
    if (settingPath !== 'namespaces') {
      c.setting(settingPath, raw, name);
      continue;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (err) {
      const example = '{"chat":{"clientPublish":true}}';
      c.issue('namespaces', `must be a JSON object like ${example}: ${errorText(err)}`, name);
      continue;
    }
    readNamespaces(c, parsed, name);
  }
  const known = [...ENV_VARIABLES.keys(), CONFIG_FILE_VAR];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('HERALD_') || ENV_VARIABLES.has(name) || name === CONFIG_FILE_VAR) continue;
    const hint = suggest(
      name.slice('HERALD_'.length),
      known.map((k) => k.slice('HERALD_'.length)),
    );
    c.warnings.push(`${name} is not a Herald setting and was ignored${hint ? `; did you mean HERALD_${hint}?` : ''}`);
  }
}

const FLAG_SETTINGS = [
  ['port', 'port', '--port'],
  ['host', 'host', '--host'],
  ['engine', 'engine', '--engine'],
  ['apiKey', 'apiKeys', '--api-key'],
  ['logLevel', 'logLevel', '--log-level'],
  ['logFormat', 'logFormat', '--log-format'],
  ['redis', 'redis.urls', '--redis'],
  ['nats', 'nats.servers', '--nats'],
  ['demos', 'demos', '--no-demos'],
  ['workers', 'workers', '--workers'],
] as const satisfies ReadonlyArray<readonly [keyof FlagValues, string, string]>;

function readFlags(c: Collector, flags: Partial<FlagValues>): void {
  for (const [key, settingPath, flag] of FLAG_SETTINGS) {
    const value = flags[key];
    if (value !== undefined) c.setting(settingPath, value, flag);
  }
}

// ---------------------------------------------------------------------------------------------------
// Config files.

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** JSON.parse's message, with the position turned into a line and column. */
function jsonErrorText(err: unknown, text: string): string {
  const message = errorText(err);
  const at = / in JSON at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
  if (!at) return message;
  const before = text.slice(0, Number(at[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `${message.replace(at[0], '')} at line ${line}, column ${column}`;
}

function fileErrorText(err: unknown): string {
  const code = err instanceof Error && 'code' in err ? err.code : undefined;
  if (code === 'ENOENT') return 'the file does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory, not a file';
  return errorText(err);
}

/** Parses a config file, or reports why it cannot: returns `undefined` after adding issues. */
async function readConfigFile(c: Collector, file: string): Promise<unknown> {
  const ext = path.extname(file).toLowerCase();
  if (ext !== '.json' && ext !== '.yaml' && ext !== '.yml') {
    c.issue(
      '',
      `cannot tell the config file's format from "${ext || '(no extension)'}": use .json, .yaml or .yml`,
      file,
    );
    return undefined;
  }
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).replace(/^\uFEFF/, '');
  } catch (err) {
    c.issue('', `cannot read the config file: ${fileErrorText(err)}`, file);
    return undefined;
  }
  if (ext === '.json') {
    try {
      return JSON.parse(text);
    } catch (err) {
      c.issue('', `invalid JSON: ${jsonErrorText(err, text)}`, file);
      return undefined;
    }
  }
  const doc = parseDocument(text, { prettyErrors: true });
  for (const err of doc.errors) {
    // prettyErrors puts "at line L, column C:" and a code excerpt after the message; keep line one.
    const first = (err.message.split('\n')[0] ?? err.message).replace(/:$/, '');
    c.issue('', `invalid YAML: ${first}`, file);
  }
  if (doc.errors.length > 0) return undefined;
  try {
    return doc.toJS();
  } catch (err) {
    c.issue('', `invalid YAML: ${errorText(err)}`, file);
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------
// Resolving.

function finish(c: Collector): LoadedConfig {
  const config = structuredClone(DEFAULT_CONFIG);
  for (const assigned of c.settings.values()) assigned.apply(config);

  const base: NamespaceOptions = { ...DEFAULT_NAMESPACE_OPTIONS };
  for (const assigned of c.namespace(DEFAULT_NAMESPACE).values()) assigned.apply(base);
  const entries: Array<[string, NamespaceOptions]> = [[DEFAULT_NAMESPACE, base]];
  for (const [name, overrides] of c.namespaces) {
    if (name === DEFAULT_NAMESPACE) continue;
    const options: NamespaceOptions = { ...base };
    for (const assigned of overrides.values()) assigned.apply(options);
    entries.push([name, options]);
  }
  // fromEntries defines own properties: a namespace named `__proto__` stays an ordinary entry.
  config.namespaces = Object.fromEntries(entries);
  checkNamespaces(c, config);
  checkAuth(c, config);
  checkTls(c, config);
  checkHttpTimeouts(c, config);
  checkPresence(c, config);
  checkPlainIngest(c, config);
  checkAmqp(c, config);

  if (c.issues.length > 0) throw new ConfigError(c.issues);
  if (config.engine !== 'redis') {
    const redis = [...c.settings].filter(([p]) => p.startsWith('redis.'));
    if (redis.length > 0) {
      const from = [...new Set(redis.map(([, a]) => a.source))].join(', ');
      c.warnings.push(
        `redis settings (from ${from}) are ignored: the engine is "${config.engine}" (set engine to "redis")`,
      );
    }
  }
  if (config.engine !== 'nats') {
    const nats = [...c.settings].filter(([p]) => p.startsWith('nats.'));
    if (nats.length > 0) {
      const from = [...new Set(nats.map(([, a]) => a.source))].join(', ');
      c.warnings.push(
        `nats settings (from ${from}) are ignored: the engine is "${config.engine}" (set engine to "nats")`,
      );
    }
  }
  const result: LoadedConfig = { config, warnings: c.warnings };
  if (config.apiKeys.length === 0) {
    const key = randomBytes(24).toString('base64url');
    config.apiKeys = [key];
    result.generatedApiKey = key;
  }
  return result;
}

/** TLS needs both files, and the key must be the certificate's; h2c is for cleartext only. */
function checkTls(c: Collector, config: HeraldConfig): void {
  const { cert, key } = config.tls;
  const sourceOf = (settingPath: string): string => c.settings.get(settingPath)?.source ?? 'defaults';
  // A file that failed its own check was not applied (it reads as ''): that issue says enough.
  if (c.issues.some((i) => i.path === 'tls.cert' || i.path === 'tls.key')) return;
  if ((cert === '') !== (key === '')) {
    const missing = cert === '' ? 'tls.cert' : 'tls.key';
    const given = cert === '' ? 'tls.key' : 'tls.cert';
    c.issue(missing, `is needed too: ${given} is set, and TLS needs both a certificate and its key`, sourceOf(given));
    return;
  }
  if (cert === '') return;
  if (!tlsKeyMatches(cert, key)) {
    c.issue(
      'tls.key',
      'is not the private key of the certificate in tls.cert',
      `${sourceOf('tls.key')} and ${sourceOf('tls.cert')}`,
    );
  }
  if (config.http.h2c) {
    c.warnings.push('http.h2c is ignored with TLS: HTTP/2 is negotiated by ALPN on the TLS port');
  }
}

/** A request cannot be given less time to arrive whole than to send its headers (Node refuses it too). */
function checkHttpTimeouts(c: Collector, config: HeraldConfig): void {
  const { headersTimeout, requestTimeout } = config.http;
  if (headersTimeout <= requestTimeout) return;
  const sourceOf = (settingPath: string): string => c.settings.get(settingPath)?.source ?? 'defaults';
  c.issue(
    'http.requestTimeout',
    `must be at least http.headersTimeout (${headersTimeout} ms), got ${requestTimeout} ms`,
    `${sourceOf('http.requestTimeout')} and ${sourceOf('http.headersTimeout')}`,
  );
}

/** An entry must outlive the interval of its refreshes, or it would expire between two of them. */
function checkPresence(c: Collector, config: HeraldConfig): void {
  const { refreshInterval, ttl } = config.presence;
  if (ttl > refreshInterval) return;
  const sourceOf = (settingPath: string): string => c.settings.get(settingPath)?.source ?? 'defaults';
  c.issue(
    'presence.ttl',
    `must be longer than presence.refreshInterval (${formatDuration(refreshInterval)}), got ${formatDuration(ttl)} (3 times it is a good choice)`,
    `${sourceOf('presence.ttl')} and ${sourceOf('presence.refreshInterval')}`,
  );
}

/**
 * A plain-ingestion rule must not take Herald's own pub/sub channels (every publication would come
 * back as a new one, for ever) nor the JSON ingestion channel.
 */
function checkPlainIngest(c: Collector, config: HeraldConfig): void {
  const source = c.settings.get('redis.ingestPlain')?.source ?? 'defaults';
  const own = `${config.redis.prefix}:`;
  config.redis.ingestPlain.forEach((rule, i) => {
    const name = rule.redisChannel;
    const prefix = name.endsWith('*') ? name.slice(0, -1) : undefined;
    const takes = (channel: string): boolean => (prefix !== undefined ? channel.startsWith(prefix) : channel === name);
    if (prefix === '') {
      c.issue(`redis.ingestPlain[${i}].redisChannel`, 'needs at least one character before the "*"', source);
    } else if ((prefix !== undefined && own.startsWith(prefix)) || name.startsWith(own)) {
      c.issue(
        `redis.ingestPlain[${i}].redisChannel`,
        `takes Herald's own pub/sub channels (${own}...; redis.prefix): choose a name outside them`,
        source,
      );
    } else if (config.redis.ingestChannel !== '' && takes(config.redis.ingestChannel)) {
      c.issue(
        `redis.ingestPlain[${i}].redisChannel`,
        `takes redis.ingestChannel (${config.redis.ingestChannel}), whose messages are JSON`,
        source,
      );
    }
  });
}

/** AMQP options that would do nothing are worth a warning: without `amqp.url`, or without `declare`. */
function checkAmqp(c: Collector, config: HeraldConfig): void {
  const set = [...c.settings].filter(([p]) => p.startsWith('amqp.') && p !== 'amqp.url');
  if (config.amqp.url === '' && set.length > 0) {
    const from = [...new Set(set.map(([, a]) => a.source))].join(', ');
    c.warnings.push(`amqp settings (from ${from}) are ignored: amqp.url is empty (set it to consume from RabbitMQ)`);
  } else if (!config.amqp.declare && config.amqp.deadLetterExchange !== '') {
    c.warnings.push(
      'amqp.deadLetterExchange is ignored with amqp.declare off: set it on the queue where you declare it',
    );
  }
}

/** Hooks need a URL: an event switched on without `auth.hooks.url` would have nowhere to go. */
function checkAuth(c: Collector, config: HeraldConfig): void {
  if (config.auth.hooks.url !== '') return;
  const sourceOf = (settingPath: string): string => c.settings.get(settingPath)?.source ?? 'defaults';
  for (const key of ['connect', 'rpc'] as const) {
    if (config.auth.hooks[key]) {
      c.issue(`auth.hooks.${key}`, 'needs auth.hooks.url (the backend to ask)', sourceOf(`auth.hooks.${key}`));
    }
  }
  for (const [name, options] of Object.entries(config.namespaces)) {
    // A namespace that inherits `hooks` from default is reported once, as default.
    const own = c.namespaces.get(name)?.get('hooks');
    if (options.hooks.length === 0 || own === undefined) continue;
    c.issue(`namespaces.${name}.hooks`, 'needs auth.hooks.url (the backend to ask)', own.source);
  }
}

/** Checks between options of a namespace (each option alone was checked where it was read). */
function checkNamespaces(c: Collector, config: HeraldConfig): void {
  const keys = ['historyTtl', 'historyMetaTtl'] as const;
  // A wrong value of either was not applied; comparing the remaining ones would only add noise.
  if (c.issues.some((i) => keys.some((k) => i.path.startsWith('namespaces.') && i.path.endsWith(`.${k}`)))) return;
  const sourceOf = (name: string, key: string): string | undefined =>
    c.namespaces.get(name)?.get(key)?.source ??
    (name === DEFAULT_NAMESPACE ? undefined : c.namespaces.get(DEFAULT_NAMESPACE)?.get(key)?.source);

  for (const [name, options] of Object.entries(config.namespaces)) {
    const own = c.namespaces.get(name);
    // A namespace that sets neither inherits both from default, which is checked on its own.
    if (name !== DEFAULT_NAMESPACE && !keys.some((k) => own?.has(k))) continue;
    if (options.historyMetaTtl >= options.historyTtl) continue;
    const sources = [...new Set(keys.map((k) => sourceOf(name, k)).filter((s) => s !== undefined))];
    c.issue(
      `namespaces.${name}.historyMetaTtl`,
      `must be at least historyTtl (${formatDuration(options.historyTtl)}), got ${formatDuration(options.historyMetaTtl)}`,
      sources.join(' and ') || 'defaults',
    );
  }
}

/**
 * Resolves a config object shaped like a config file (durations and sizes may be strings) over the
 * defaults, with the same checks as `loadConfig`, but no file, environment or flags. Handy for
 * embedding Herald and for tests. Throws `ConfigError`.
 */
export function resolveConfig(input: ConfigInput = {}, source = 'resolveConfig()'): LoadedConfig {
  const c = new Collector();
  readTree(c, input, SHAPE, '', source);
  return finish(c);
}

/**
 * Loads the configuration: defaults < config file < `HERALD_*` environment < flags. Rejects with a
 * `ConfigError` listing every problem found in every source.
 */
export async function loadConfig(opts: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = opts.env ?? process.env;
  const flags = opts.flags ?? {};
  const c = new Collector();
  const envFile = env[CONFIG_FILE_VAR]?.trim();
  const file = opts.configFile ?? flags.config ?? (envFile ? envFile : undefined);
  if (file !== undefined) {
    const data = await readConfigFile(c, file);
    // An empty file (or one with only comments) is an empty config.
    if (data !== undefined && data !== null) readTree(c, data, SHAPE, '', file);
  }
  readEnv(c, env);
  readFlags(c, flags);
  const result = finish(c);
  if (file !== undefined) result.configFile = path.resolve(file);
  return result;
}

// ---------------------------------------------------------------------------------------------------
// `herald serve` flags.

const SERVE_OPTIONS = {
  config: { type: 'string', short: 'c' },
  port: { type: 'string', short: 'p' },
  host: { type: 'string' },
  engine: { type: 'string' },
  'api-key': { type: 'string', multiple: true },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  redis: { type: 'string', multiple: true },
  nats: { type: 'string', multiple: true },
  'no-demos': { type: 'boolean' },
  workers: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Parses `herald serve` arguments (without `serve` itself) with `node:util` parseArgs. Throws a
 * `ConfigError` for unknown options (with a suggestion), missing values and stray arguments.
 */
export function parseServeFlags(argv: string[]): { flags: Partial<FlagValues>; help: boolean } {
  const { tokens } = parseArgs({
    args: argv,
    options: SERVE_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const flags: Partial<FlagValues> = {};
  const issues: ConfigIssue[] = [];
  const source = 'command line';
  let help = false;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') {
      issues.push({ path: '', message: `unexpected argument ${JSON.stringify(token.value)}`, source });
      continue;
    }
    const { name, rawName, value } = token;
    if (name === 'help') {
      if (value !== undefined) issues.push({ path: rawName, message: 'takes no value', source });
      help = true;
      continue;
    }
    if (name === 'no-demos') {
      if (value !== undefined) issues.push({ path: rawName, message: 'takes no value', source });
      else flags.demos = false;
      continue;
    }
    if (!Object.prototype.hasOwnProperty.call(SERVE_OPTIONS, name)) {
      const hint = suggest(name, Object.keys(SERVE_OPTIONS));
      const message = `unknown option${hint ? `, did you mean "--${hint}"?` : ''} (see --help)`;
      issues.push({ path: rawName, message, source });
      continue;
    }
    // Without strict mode, `--port --host x` would take "--host" as the port.
    if (value === undefined || (token.inlineValue === false && value.startsWith('--'))) {
      issues.push({ path: rawName, message: 'needs a value', source });
      continue;
    }
    if (name === 'config') flags.config = value;
    else if (name === 'port') flags.port = value;
    else if (name === 'host') flags.host = value;
    else if (name === 'engine') flags.engine = value;
    else if (name === 'log-level') flags.logLevel = value;
    else if (name === 'log-format') flags.logFormat = value;
    else if (name === 'workers') flags.workers = value;
    else if (name === 'redis') (flags.redis ??= []).push(...value.split(',').filter((u) => u.trim() !== ''));
    else if (name === 'nats') (flags.nats ??= []).push(...value.split(',').filter((u) => u.trim() !== ''));
    else (flags.apiKey ??= []).push(value);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { flags, help };
}
