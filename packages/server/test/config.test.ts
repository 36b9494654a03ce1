import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTINGS } from '../src/config/schema.js';
import {
  ConfigError,
  DEFAULT_CONFIG,
  ENV_VARIABLES,
  formatDuration,
  formatSize,
  loadConfig,
  namespaceOptions,
  parseDuration,
  parseServeFlags,
  parseSize,
  resolveConfig,
  type ConfigInput,
} from '../src/config/index.js';

const KEY = 'k'.repeat(24);
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herald-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const p = path.join(dir, name);
  await writeFile(p, text);
  return p;
}

async function configError(work: Promise<unknown> | (() => unknown)): Promise<ConfigError> {
  try {
    await (typeof work === 'function' ? work() : work);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('has the documented values and is deep-frozen', () => {
    expect(DEFAULT_CONFIG).toMatchObject({
      host: '0.0.0.0',
      port: 8080,
      engine: 'memory',
      apiKeys: [],
      logLevel: 'info',
      allowedOrigins: ['*'],
      idempotencyWindow: 300_000,
      limits: { maxConnections: 100_000, maxFrameSize: 131_072, maxSubscriptionsPerConnection: 128 },
      heartbeat: { pingInterval: 25_000, pingTimeout: 10_000 },
      shutdown: { timeout: 10_000, reconnectJitter: 5_000 },
    });
    expect(DEFAULT_CONFIG.namespaces['default']).toEqual({
      historySize: 100,
      historyTtl: 300_000,
      historyMetaTtl: 86_400_000,
      anonymousSubscribe: true,
      clientPublish: false,
      clientHistory: true,
      maxMessageSize: 65_536,
      requireSubscriptionToken: false,
      hooks: [],
      presence: false,
      joinLeave: false,
      maxPresence: 1000,
      slowConsumer: { policy: 'disconnect', keep: 100 },
    });
    expect(Object.isFrozen(DEFAULT_CONFIG)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.limits)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.allowedOrigins)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.namespaces['default'])).toBe(true);
  });

  it('loads the defaults when nothing is configured, without touching DEFAULT_CONFIG', async () => {
    const { config, warnings, configFile } = await loadConfig({ env: {} });
    expect({ ...config, apiKeys: [] }).toEqual(DEFAULT_CONFIG);
    expect(warnings).toEqual([]);
    expect(configFile).toBeUndefined();
    config.limits.maxConnections = 1;
    expect(DEFAULT_CONFIG.limits.maxConnections).toBe(100_000);
  });

  it('derives environment variable names from the keys', () => {
    expect(ENV_VARIABLES.get('HERALD_PORT')).toBe('port');
    expect(ENV_VARIABLES.get('HERALD_LOG_LEVEL')).toBe('logLevel');
    expect(ENV_VARIABLES.get('HERALD_LIMITS_MAX_CONNECTIONS')).toBe('limits.maxConnections');
    expect(ENV_VARIABLES.get('HERALD_HEARTBEAT_PING_INTERVAL')).toBe('heartbeat.pingInterval');
    expect(ENV_VARIABLES.get('HERALD_SHUTDOWN_RECONNECT_JITTER')).toBe('shutdown.reconnectJitter');
    expect(ENV_VARIABLES.get('HERALD_NAMESPACES')).toBe('namespaces');
    expect(ENV_VARIABLES.get('HERALD_HTTP_POLL_TIMEOUT')).toBe('http.pollTimeout');
    // One variable per setting, plus HERALD_NAMESPACES.
    expect(ENV_VARIABLES.size).toBe(SETTINGS.size + 1);
  });
});

describe('config files', () => {
  it('reads JSON', async () => {
    const p = await file(
      'herald.json',
      JSON.stringify({
        port: 9000,
        apiKeys: [KEY],
        idempotencyWindow: '10m',
        limits: { maxFrameSize: '128kb', maxQueueBytes: 2048 },
        heartbeat: { pingInterval: '30s' },
        namespaces: { chat: { clientPublish: true, historySize: 50 } },
      }),
    );
    const { config, generatedApiKey, configFile } = await loadConfig({ configFile: p, env: {} });
    expect(configFile).toBe(p);
    expect(generatedApiKey).toBeUndefined();
    expect(config.port).toBe(9000);
    expect(config.apiKeys).toEqual([KEY]);
    expect(config.idempotencyWindow).toBe(600_000);
    expect(config.limits).toMatchObject({ maxFrameSize: 131_072, maxQueueBytes: 2048, maxConnections: 100_000 });
    expect(config.heartbeat).toEqual({ pingInterval: 30_000, pingTimeout: 10_000 });
    expect(config.namespaces['chat']).toMatchObject({ clientPublish: true, historySize: 50, historyTtl: 300_000 });
  });

  it('reads YAML (.yaml and .yml), and an empty file is an empty config', async () => {
    const yaml = [
      '# Herald',
      'host: 127.0.0.1',
      'logLevel: debug',
      'allowedOrigins:',
      '  - https://App.Example.com:443',
      '  - http://localhost:3000',
      'shutdown:',
      '  timeout: 1m30s',
      'namespaces:',
      '  default:',
      '    historyTtl: 1h',
      '  chat:',
      '    clientPublish: yes', // YAML 1.2 reads this as a string; we accept it anyway
      '  empty:',
    ].join('\n');
    for (const name of ['herald.yaml', 'herald.yml']) {
      const { config } = await loadConfig({ configFile: await file(name, yaml), env: {} });
      expect(config.host).toBe('127.0.0.1');
      expect(config.logLevel).toBe('debug');
      expect(config.allowedOrigins).toEqual(['https://app.example.com', 'http://localhost:3000']);
      expect(config.shutdown.timeout).toBe(90_000);
      expect(config.namespaces['chat']).toMatchObject({ clientPublish: true, historyTtl: 3_600_000 });
      expect(config.namespaces['empty']).toEqual(config.namespaces['default']);
    }
    const { config } = await loadConfig({ configFile: await file('empty.yaml', '# nothing yet\n'), env: {} });
    expect(config.port).toBe(8080);
  });

  it('reports parse errors with the file name and line', async () => {
    const json = await file('broken.json', '{\n  "port": 1,\n}\n');
    const jsonError = await configError(loadConfig({ configFile: json, env: {} }));
    expect(jsonError.issues).toHaveLength(1);
    expect(jsonError.message).toMatch(/invalid JSON: .* at line 3, column 1 \(from .*broken\.json\)$/);

    const yaml = await file('broken.yaml', 'port: 1\nlimits:\n  maxConnections: [1\n');
    const yamlError = await configError(loadConfig({ configFile: yaml, env: {} }));
    expect(yamlError.message).toMatch(/invalid YAML: .*line \d+, column \d+.*broken\.yaml/);
    expect(yamlError.message.split('\n')).toHaveLength(yamlError.issues.length);

    const missing = await configError(loadConfig({ configFile: path.join(dir, 'nope.yaml'), env: {} }));
    expect(missing.message).toContain('cannot read the config file: the file does not exist');
    expect(missing.message).toContain('nope.yaml');

    const toml = await configError(loadConfig({ configFile: await file('herald.toml', 'port = 1'), env: {} }));
    expect(toml.message).toContain('use .json, .yaml or .yml');
  });

  it('rejects a file that is not an object', async () => {
    const err = await configError(loadConfig({ configFile: await file('list.json', '[1, 2]'), env: {} }));
    expect(err.message).toContain('must be an object of options, got [1,2]');
  });
});

describe('precedence: defaults < file < environment < flags', () => {
  it('lets later sources win, key by key', async () => {
    const p = await file('prec.yaml', `port: 1000\nhost: 10.0.0.1\nlogLevel: warn\napiKeys: [${KEY}]\n`);
    const env = { HERALD_PORT: '2000', HERALD_LOG_LEVEL: 'error' };
    const all = await loadConfig({ configFile: p, env, flags: { port: '3000' } });
    expect(all.config).toMatchObject({ port: 3000, logLevel: 'error', host: '10.0.0.1', apiKeys: [KEY] });
    const noFlags = await loadConfig({ configFile: p, env });
    expect(noFlags.config.port).toBe(2000);
    const fileOnly = await loadConfig({ configFile: p, env: {} });
    expect(fileOnly.config.port).toBe(1000);
  });

  it('merges namespaces option by option across sources', async () => {
    const p = await file('ns.json', JSON.stringify({ namespaces: { chat: { historySize: 5, clientPublish: true } } }));
    const env = { HERALD_NAMESPACES: '{"chat":{"historySize":7},"default":{"clientHistory":"no"}}' };
    const { config } = await loadConfig({ configFile: p, env });
    expect(config.namespaces['chat']).toMatchObject({ historySize: 7, clientPublish: true, clientHistory: false });
  });

  it('finds the file through flags.config or HERALD_CONFIG', async () => {
    const p = await file('via-env.json', '{"port": 4321}');
    expect((await loadConfig({ env: { HERALD_CONFIG: p } })).config.port).toBe(4321);
    const viaFlag = await loadConfig({ env: { HERALD_CONFIG: '/nonexistent.json' }, flags: { config: p } });
    expect(viaFlag.config.port).toBe(4321);
    expect(viaFlag.configFile).toBe(path.resolve(p));
  });

  it('parses environment values by type; empty variables count as unset', async () => {
    const env = {
      HERALD_API_KEYS: `${KEY}, ${'x'.repeat(16)}`,
      HERALD_ALLOWED_ORIGINS: 'https://a.example.com,https://b.example.com',
      HERALD_IDEMPOTENCY_WINDOW: '90s',
      HERALD_LIMITS_MAX_API_BODY_SIZE: '2MB',
      HERALD_HEARTBEAT_PING_TIMEOUT: '5000',
      HERALD_HOST: '',
    };
    const { config, generatedApiKey } = await loadConfig({ env });
    expect(config.apiKeys).toEqual([KEY, 'x'.repeat(16)]);
    expect(generatedApiKey).toBeUndefined();
    expect(config.allowedOrigins).toEqual(['https://a.example.com', 'https://b.example.com']);
    expect(config.idempotencyWindow).toBe(90_000);
    expect(config.limits.maxApiBodySize).toBe(2 * 1024 * 1024);
    expect(config.heartbeat.pingTimeout).toBe(5000);
    expect(config.host).toBe('0.0.0.0');
  });

  it('warns about unknown HERALD_* variables instead of failing', async () => {
    const { warnings, config } = await loadConfig({ env: { HERALD_PROT: '1', HERALD_WHATEVER: 'x', PATH: '/bin' } });
    expect(config.port).toBe(8080);
    expect(warnings).toEqual([
      'HERALD_PROT is not a Herald setting and was ignored; did you mean HERALD_PORT?',
      'HERALD_WHATEVER is not a Herald setting and was ignored',
    ]);
  });
});

describe('durations and sizes', () => {
  it('parses the documented forms', () => {
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration('250')).toBe(250);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1H')).toBe(3_600_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration(' 10 s ')).toBe(10_000);
    for (const bad of ['', 'abc', '-5s', '5 parsecs', '30m1h', '1m1m', 'ms', '5s!', Number.NaN, -1, null, true]) {
      expect(parseDuration(bad), String(bad)).toBeUndefined();
    }
    expect(parseSize(512)).toBe(512);
    expect(parseSize('512b')).toBe(512);
    expect(parseSize('64kb')).toBe(65_536);
    expect(parseSize('64KB')).toBe(65_536);
    expect(parseSize('1mb')).toBe(1_048_576);
    expect(parseSize('1MiB')).toBe(1_048_576);
    expect(parseSize('1.5kb')).toBe(1536);
    for (const bad of ['', '1tb', '-1kb', 'kb', '1 2kb', {}]) expect(parseSize(bad), String(bad)).toBeUndefined();
    expect(formatDuration(300_000)).toBe('5m');
    expect(formatDuration(1500)).toBe('1500ms');
    expect(formatSize(65_536)).toBe('64kb');
  });

  it('reads back `${n}ms`, `${n}b` and formatted values', () => {
    fc.assert(
      fc.property(fc.nat(), (n) => {
        expect(parseDuration(`${n}ms`)).toBe(n);
        expect(parseDuration(formatDuration(n))).toBe(n);
        expect(parseSize(`${n}b`)).toBe(n);
        expect(parseSize(formatSize(n))).toBe(n);
      }),
    );
  });

  it('rejects fractional results where whole numbers are needed', async () => {
    const input = { heartbeat: { pingInterval: '0.5ms' }, limits: { maxQueueBytes: 1.5 } };
    const err = await configError(() => resolveConfig(input));
    expect(err.issues.map((i) => i.path)).toEqual(['heartbeat.pingInterval', 'limits.maxQueueBytes']);
  });
});

describe('validation', () => {
  it('reports every wrong field of every source at once', async () => {
    const p = await file(
      'wrong.yaml',
      [
        'port: 70000',
        'host: ""',
        'logLevel: loud',
        'allowedOrigins: ["*", "https://app.example.com/path", "https://*.example.com", "example.com"]',
        'idempotencyWindow: soon',
        'limits:',
        '  maxFrameSize: 512',
        '  maxSubscriptionsPerConnection: 0',
        'heartbeat: { pingInterval: 0, pingTimeout: -1 }',
        'shutdown: { reconnectJitter: 30d }',
        'namespaces:',
        '  chat: { historySize: 10001, historyTtl: 0, maxMessageSize: 17mb, clientPublish: maybe }',
      ].join('\n'),
    );
    const env = { HERALD_LIMITS_MAX_CONNECTIONS: 'abc', HERALD_NAMESPACES: '{not json' };
    const err = await configError(loadConfig({ configFile: p, env, flags: { logLevel: 'verbose' } }));
    expect(err.issues.map((i) => i.path)).toEqual([
      'port',
      'host',
      'logLevel',
      'allowedOrigins[1]',
      'allowedOrigins[2]',
      'allowedOrigins[3]',
      'idempotencyWindow',
      'limits.maxFrameSize',
      'limits.maxSubscriptionsPerConnection',
      'heartbeat.pingInterval',
      'heartbeat.pingTimeout',
      'shutdown.reconnectJitter',
      'namespaces.chat.historySize',
      'namespaces.chat.historyTtl',
      'namespaces.chat.maxMessageSize',
      'namespaces.chat.clientPublish',
      'limits.maxConnections',
      'namespaces',
      'logLevel',
    ]);
    const lines = err.message.split('\n');
    expect(lines).toHaveLength(err.issues.length);
    expect(lines).toContain(
      'limits.maxConnections: must be a positive integer, got "abc" (from HERALD_LIMITS_MAX_CONNECTIONS)',
    );
    expect(lines).toContain(`port: must be an integer from 0 to 65535, got 70000 (from ${p})`);
    expect(lines).toContain(
      'logLevel: must be one of trace, debug, info, warn, error, fatal, silent, got "verbose" (from --log-level)',
    );
    expect(err.issues.find((i) => i.path === 'namespaces')?.message).toMatch(/^must be a JSON object/);
  });

  it('names unknown keys and suggests the closest known one', async () => {
    const input = { prot: 80, limits: { maxConection: 5 }, historySize: 1, namespaces: { chat: { histroySize: 1 } } };
    const err = await configError(() => resolveConfig(input as ConfigInput));
    expect(err.message.split('\n')).toEqual([
      'prot: unknown option, did you mean "port"? (from resolveConfig())',
      'limits.maxConection: unknown option, did you mean "maxConnections"? (from resolveConfig())',
      'historySize: unknown option; namespace options go under namespaces (did you mean "namespaces.default.historySize"?) (from resolveConfig())',
      'namespaces.chat.histroySize: unknown option, did you mean "historySize"? (from resolveConfig())',
    ]);
  });

  it('lists the known options when nothing is close', async () => {
    const err = await configError(() => resolveConfig({ heartbeat: { zzz: 1 } } as ConfigInput));
    expect(err.message).toContain('heartbeat.zzz: unknown option (the options here are: pingInterval, pingTimeout)');
  });

  it('requires historyMetaTtl >= historyTtl, per namespace', async () => {
    const err = await configError(() =>
      resolveConfig({
        namespaces: { default: { historyTtl: '2d' }, chat: { historyMetaTtl: '1h', historyTtl: '1h' } },
      }),
    );
    expect(err.message).toBe(
      'namespaces.default.historyMetaTtl: must be at least historyTtl (2d), got 1d (from resolveConfig())',
    );
    const ok = resolveConfig({ namespaces: { default: { historyTtl: '2d', historyMetaTtl: '2d' } } });
    expect(ok.config.namespaces['default']?.historyMetaTtl).toBe(172_800_000);
  });

  it('takes the nats engine with its settings, and names the engines it has', async () => {
    const { config } = await loadConfig({
      env: {
        HERALD_ENGINE: 'nats',
        HERALD_NATS_PREFIX: 'h1',
        HERALD_NATS_REPLICAS: '3',
        HERALD_NATS_STORAGE: 'memory',
      },
      flags: { nats: ['nats://a:4222', 'tls://b:4222'] },
    });
    expect(config.engine).toBe('nats');
    expect(config.nats).toMatchObject({
      servers: ['nats://a:4222', 'tls://b:4222'],
      prefix: 'h1',
      replicas: 3,
      storage: 'memory',
    });
    const bad = await configError(loadConfig({ env: { HERALD_ENGINE: 'nats', HERALD_NATS_PREFIX: 'a.b' } }));
    expect(bad.message).toContain('nats.prefix: must be 1-32 letters, digits, "_" or "-", got "a.b"');
    // A URL that does not parse is quoted with its password hidden.
    const url = await configError(
      loadConfig({ env: { HERALD_ENGINE: 'nats', HERALD_NATS_SERVERS: 'nats://u:s3cret@' } }),
    );
    expect(url.message).toContain('got "nats://u:***@"');
    expect(url.message).not.toContain('s3cret');
    const other = await configError(loadConfig({ env: {}, flags: { engine: 'postgres' } }));
    expect(other.message).toBe('engine: must be one of "memory", "redis", "nats", got "postgres" (from --engine)');
  });

  it('accepts port 0 (ephemeral) and numbers written as strings', () => {
    expect(resolveConfig({ port: 0 }).config.port).toBe(0);
    expect(resolveConfig({ port: '8081', limits: { maxConnections: '10' } }).config.limits.maxConnections).toBe(10);
  });
});

describe('namespaces', () => {
  it('merges every namespace over default, and falls back to default', () => {
    const { config } = resolveConfig({
      namespaces: { default: { historySize: 10, clientPublish: true }, chat: { historySize: 50 }, 'game:v2': {} },
    });
    expect(config.namespaces['default']).toMatchObject({ historySize: 10, clientPublish: true });
    expect(config.namespaces['chat']).toMatchObject({ historySize: 50, clientPublish: true, historyTtl: 300_000 });
    expect(config.namespaces['game:v2']).toEqual(config.namespaces['default']);
    expect(namespaceOptions(config, 'chat').historySize).toBe(50);
    expect(namespaceOptions(config, 'unknown')).toBe(config.namespaces['default']);
    expect(namespaceOptions(config, 'toString')).toBe(config.namespaces['default']);
    expect(namespaceOptions(DEFAULT_CONFIG, 'x').historySize).toBe(100);
  });

  it('keeps a namespace named like an Object.prototype property as an ordinary entry', async () => {
    const { config } = await loadConfig({ env: { HERALD_NAMESPACES: '{"__proto__":{"historySize":3}}' } });
    expect(Object.getPrototypeOf(config.namespaces)).toBe(Object.prototype);
    expect(namespaceOptions(config, '__proto__').historySize).toBe(3);
    expect(namespaceOptions(config, 'constructor').historySize).toBe(100);
  });

  it('rejects names that are not channel segments', async () => {
    const err = await configError(() => resolveConfig({ namespaces: { 'bad.name': {}, 'with space': {}, ok: {} } }));
    expect(err.issues.map((i) => i.message)).toEqual([
      expect.stringContaining('"bad.name" is not a valid namespace name'),
      expect.stringContaining('"with space" is not a valid namespace name'),
    ]);
  });

  it('rejects a namespaces value that is not an object', async () => {
    const err = await configError(loadConfig({ env: { HERALD_NAMESPACES: '[1]' } }));
    expect(err.message).toMatch(/^namespaces: must map namespace names to options/);
  });
});

describe('API keys', () => {
  it('generates a key when none is configured, different on each load', async () => {
    const a = await loadConfig({ env: {} });
    const b = await loadConfig({ env: {} });
    expect(a.generatedApiKey).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(a.config.apiKeys).toEqual([a.generatedApiKey]);
    expect(b.generatedApiKey).not.toBe(a.generatedApiKey);
  });

  it('rejects short keys without echoing them', async () => {
    const err = await configError(loadConfig({ env: {}, flags: { apiKey: [KEY, 'hunter2'] } }));
    expect(err.message).toMatch(/^apiKeys\[1\]: is too short: an API key needs at least 16 characters, got 7/);
    expect(err.message).toContain('(from --api-key)');
    expect(err.message).not.toContain('hunter2');
  });
});

describe('parseServeFlags', () => {
  it('parses the serve flags', () => {
    const argv = ['-c', 'herald.yaml', '-p', '9000', '--host=127.0.0.1', '--engine', 'memory', '--log-level', 'debug'];
    const keys = ['--api-key', KEY, `--api-key=${'y'.repeat(16)}`];
    expect(parseServeFlags([...argv, ...keys])).toEqual({
      flags: {
        config: 'herald.yaml',
        port: '9000',
        host: '127.0.0.1',
        engine: 'memory',
        logLevel: 'debug',
        apiKey: [KEY, 'y'.repeat(16)],
      },
      help: false,
    });
    expect(parseServeFlags(['-h'])).toEqual({ flags: {}, help: true });
    expect(parseServeFlags([])).toEqual({ flags: {}, help: false });
  });

  it('rejects unknown flags, missing values and stray arguments', async () => {
    const err = await configError(() => parseServeFlags(['--prot', '80', '--host']));
    expect(err.message.split('\n')).toEqual([
      '--prot: unknown option, did you mean "--port"? (see --help) (from command line)',
      'unexpected argument "80" (from command line)',
      '--host: needs a value (from command line)',
    ]);
    const swallowed = await configError(() => parseServeFlags(['--port', '--host', 'x']));
    expect(swallowed.issues[0]).toEqual({ path: '--port', message: 'needs a value', source: 'command line' });
  });

  it('feeds loadConfig, where flags win over everything', async () => {
    const { flags } = parseServeFlags(['--port', '0', '--api-key', KEY]);
    const { config } = await loadConfig({ env: { HERALD_PORT: '1234' }, flags });
    expect(config.port).toBe(0);
    expect(config.apiKeys).toEqual([KEY]);
  });
});
