/**
 * The configuration of presence and of plain Redis ingestion: namespace options, the `presence`
 * section, `redis.ingestPlain` rules in both of their forms, and the checks between settings. Also
 * the presence commands as the protocol package decodes them.
 */
import { describe, expect, it } from 'vitest';
import { decodeCommand } from '@herald/protocol';
import { ConfigError, ENV_VARIABLES, loadConfig, resolveConfig } from '../src/config/index.js';

function issues(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('presence configuration', () => {
  it('is off by default, and per namespace', () => {
    const { config } = resolveConfig({
      namespaces: { room: { presence: true, joinLeave: 'yes', maxPresence: '50' } },
      presence: { refreshInterval: '5s', ttl: '15s' },
    });
    expect(config.namespaces['default']).toMatchObject({ presence: false, joinLeave: false, maxPresence: 1000 });
    expect(config.namespaces['room']).toMatchObject({ presence: true, joinLeave: true, maxPresence: 50 });
    expect(config.presence).toEqual({ refreshInterval: 5000, ttl: 15_000 });
    expect(resolveConfig({}).config.presence).toEqual({ refreshInterval: 10_000, ttl: 30_000 });
  });

  it('refuses bad values and a ttl that does not outlive the refresh interval', () => {
    expect(issues(() => resolveConfig({ namespaces: { room: { maxPresence: 0 } } }))).toMatch(
      /namespaces\.room\.maxPresence: must be an integer from 1 to 100000/,
    );
    expect(issues(() => resolveConfig({ namespaces: { room: { presense: true } as never } }))).toMatch(/presence/);
    expect(issues(() => resolveConfig({ presence: { refreshInterval: '10s', ttl: '10s' } }))).toMatch(
      /presence\.ttl: must be longer than presence\.refreshInterval/,
    );
  });

  it('reads the environment', async () => {
    expect(ENV_VARIABLES.get('HERALD_PRESENCE_TTL')).toBe('presence.ttl');
    expect(ENV_VARIABLES.get('HERALD_PRESENCE_REFRESH_INTERVAL')).toBe('presence.refreshInterval');
    expect(ENV_VARIABLES.get('HERALD_REDIS_INGEST_PLAIN')).toBe('redis.ingestPlain');
    const { config } = await loadConfig({
      env: {
        HERALD_ENGINE: 'redis',
        HERALD_PRESENCE_TTL: '900ms',
        HERALD_PRESENCE_REFRESH_INTERVAL: '300',
        HERALD_REDIS_INGEST_PLAIN: 'messages=chat.lobby, rooms:*=chat.*',
      },
    });
    expect(config.presence).toEqual({ refreshInterval: 300, ttl: 900 });
    expect(config.redis.ingestPlain).toEqual([
      { redisChannel: 'messages', channel: 'chat.lobby' },
      { redisChannel: 'rooms:*', channel: 'chat.*' },
    ]);
  });
});

describe('redis.ingestPlain', () => {
  const plain = (ingestPlain: unknown, extra: Record<string, unknown> = {}) =>
    resolveConfig({ engine: 'redis', redis: { ingestPlain: ingestPlain as never, ...extra } });

  it('takes {redisChannel, channel} objects and "redis=channel" strings', () => {
    expect(
      plain([{ redisChannel: 'messages', channel: 'chat.lobby' }, 'alerts:*=news.*']).config.redis.ingestPlain,
    ).toEqual([
      { redisChannel: 'messages', channel: 'chat.lobby' },
      { redisChannel: 'alerts:*', channel: 'news.*' },
    ]);
  });

  it('explains every wrong rule', () => {
    expect(issues(() => plain(['messages']))).toMatch(/redis\.ingestPlain\[0\]: must be \{redisChannel, channel\}/);
    expect(issues(() => plain([{ redisChannel: 'a b', channel: 'x' }]))).toMatch(
      /\[0\]\.redisChannel: must be a Redis channel name/,
    );
    expect(issues(() => plain([{ redisChannel: 'a*b', channel: 'x' }]))).toMatch(/only at its end/);
    expect(issues(() => plain([{ redisChannel: 'a?', channel: 'x' }]))).toMatch(/none of \?/);
    expect(issues(() => plain([{ redisChannel: 'a*', channel: 'chat.lobby' }]))).toMatch(
      /\[0\]\.channel: must end in "\*"/,
    );
    expect(issues(() => plain([{ redisChannel: 'a', channel: 'chat.*' }]))).toMatch(/must be an exact channel/);
    expect(issues(() => plain([{ redisChannel: 'a', channel: 'chat..x' }]))).toMatch(/\[0\]\.channel: .*empty segment/);
    expect(issues(() => plain([{ redisChannel: 'a', channel: 'chat.**' }]))).toMatch(/\[0\]\.channel/);
    expect(issues(() => plain([{ redisChannel: 'a', channel: 'x', extra: 1 }]))).toMatch(/unknown key "extra"/);
    expect(issues(() => plain(['a=x', 'a=y']))).toMatch(/redisChannel "a" has two rules/);
  });

  it("never takes Herald's own pub/sub channels nor the JSON ingestion channel", () => {
    expect(issues(() => plain(['*=chat.*']))).toMatch(/at least one character before the "\*"/);
    expect(issues(() => plain(['her*=chat.*']))).toMatch(/takes Herald's own pub\/sub channels/);
    expect(issues(() => plain(['herald:x=chat.x']))).toMatch(/takes Herald's own pub\/sub channels/);
    expect(issues(() => plain(['app:*=chat.*'], { prefix: 'app:herald' }))).toMatch(/own pub\/sub/);
    expect(issues(() => plain(['in*=chat.*'], { ingestChannel: 'ingest' }))).toMatch(/takes redis\.ingestChannel/);
    expect(plain(['app-messages=chat.lobby'], { ingestChannel: 'ingest' }).config.redis.ingestPlain).toHaveLength(1);
  });
});

describe('presence commands', () => {
  it('decode with an exact channel and nothing else', () => {
    expect(decodeCommand({ id: 1, cmd: 'presence', channel: 'room.a' })).toEqual({
      ok: true,
      command: { id: 1, cmd: 'presence', channel: 'room.a' },
    });
    expect(decodeCommand({ id: 2, cmd: 'presenceStats', channel: 'room.a' })).toEqual({
      ok: true,
      command: { id: 2, cmd: 'presenceStats', channel: 'room.a' },
    });
    expect(decodeCommand({ id: 3, cmd: 'presence', channel: 'room.**' })).toMatchObject({
      ok: false,
      code: 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED',
    });
    expect(decodeCommand({ id: 4, cmd: 'presenceStats' })).toMatchObject({
      ok: false,
      code: 'HERALD_ERR_PROTOCOL_BAD_FIELD',
    });
    expect(decodeCommand({ id: 5, cmd: 'presence', channel: 'a', limit: 1 })).toMatchObject({
      ok: false,
      code: 'HERALD_ERR_PROTOCOL_BAD_FIELD',
    });
    expect(decodeCommand({ id: 6, cmd: 'presence_stats', channel: 'a' })).toMatchObject({
      ok: false,
      code: 'HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND',
    });
  });
});
