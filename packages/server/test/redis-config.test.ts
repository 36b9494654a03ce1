/** The `redis` section of the configuration: defaults, environment, flags, and the checks. */
import { describe, expect, it } from 'vitest';
import { ConfigError, ENV_VARIABLES, loadConfig, parseServeFlags, resolveConfig } from '../src/config/index.js';

async function configError(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe('redis configuration', () => {
  it('has defaults for one local Redis, with ingestion off', () => {
    const { config } = resolveConfig({});
    expect(config.redis).toEqual({
      urls: ['redis://127.0.0.1:6379'],
      cluster: false,
      prefix: 'herald',
      ingestChannel: '',
      ingestPlain: [],
      connectTimeout: 5000,
      commandTimeout: 5000,
    });
  });

  it('reads every option from the environment and the --redis flag', async () => {
    expect(ENV_VARIABLES.get('HERALD_REDIS_URLS')).toBe('redis.urls');
    expect(ENV_VARIABLES.get('HERALD_REDIS_INGEST_CHANNEL')).toBe('redis.ingestChannel');
    const { config } = await loadConfig({
      env: {
        HERALD_ENGINE: 'redis',
        HERALD_REDIS_URLS: 'redis://a:6379, redis://b:6380/2',
        HERALD_REDIS_CLUSTER: 'no',
        HERALD_REDIS_PREFIX: 'app1',
        HERALD_REDIS_INGEST_CHANNEL: 'herald:ingest',
        HERALD_REDIS_COMMAND_TIMEOUT: '2s',
      },
    });
    expect(config.engine).toBe('redis');
    expect(config.redis).toMatchObject({
      urls: ['redis://a:6379', 'redis://b:6380/2'],
      prefix: 'app1',
      ingestChannel: 'herald:ingest',
      commandTimeout: 2000,
    });
    const { flags } = parseServeFlags([
      '--engine',
      'redis',
      '--redis',
      'redis://x:1',
      '--redis=redis://y:2,redis://z:3',
    ]);
    const fromFlags = await loadConfig({ env: {}, flags });
    expect(fromFlags.config.redis.urls).toEqual(['redis://x:1', 'redis://y:2', 'redis://z:3']);
    expect(fromFlags.warnings).toEqual([]);
  });

  it('refuses wrong values without ever quoting a password', async () => {
    const err = await configError(
      loadConfig({
        env: {
          HERALD_REDIS_URLS: 'http://h:1,redis://:s3cret@host:6379/db,redis://',
          HERALD_REDIS_PREFIX: 'has{brace}',
          HERALD_REDIS_INGEST_CHANNEL: 'has space',
        },
      }),
    );
    expect(err.issues.map((i) => i.path)).toEqual([
      'redis.urls[0]',
      'redis.urls[1]',
      'redis.urls[2]',
      'redis.prefix',
      'redis.ingestChannel',
    ]);
    expect(err.message).not.toContain('s3cret');
    expect(err.message).toContain('redis://:***@host:6379/db');
    const empty = await configError(loadConfig({ env: { HERALD_REDIS_URLS: ' , ' } }));
    expect(empty.message).toContain('redis.urls: must list at least one Redis URL');
  });

  it('warns when redis settings are given but the engine is memory', async () => {
    const { warnings } = await loadConfig({ env: {}, flags: { redis: ['redis://x:1'] } });
    expect(warnings).toEqual([
      'redis settings (from --redis) are ignored: the engine is "memory" (set engine to "redis")',
    ]);
  });
});
