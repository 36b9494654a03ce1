/**
 * Test support for the Redis engine: whether a Redis is there, isolated key prefixes, and cleanup.
 *
 * Skip rule: when Redis at HERALD_TEST_REDIS_URL (default redis://127.0.0.1:6379) does not answer,
 * the Redis tests are skipped with a note on the console, so the suite still passes on a machine
 * without Redis. With CI=true they are not skipped: they run and fail loudly.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env['HERALD_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const IN_CI = process.env['CI'] === 'true';

async function probe(): Promise<string | undefined> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    r.disconnect();
  }
}

const failure = await probe();
/** Redis answers at REDIS_URL. */
export const redisUp = failure === undefined;
/** Skip the Redis tests: Redis is absent and this is not CI. */
export const skipRedis = !redisUp && !IN_CI;
if (skipRedis) {
  console.warn(
    `[herald] Redis tests skipped: no Redis at ${REDIS_URL} (${failure ?? ''}). ` +
      'Start one (redis-server) or set HERALD_TEST_REDIS_URL; with CI=true they run and fail.',
  );
}

/** `redis-server` and `redis-cli` can be spawned (for tests that start their own servers). */
export const redisServerBinary = ((): boolean => {
  const server = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  const cli = spawnSync('redis-cli', ['--version'], { encoding: 'utf8' });
  return server.status === 0 && cli.status === 0;
})();
export const skipSpawnedRedis = !redisServerBinary && !IN_CI;
if (skipSpawnedRedis) {
  console.warn('[herald] Redis shard/cluster tests skipped: redis-server or redis-cli not found on PATH.');
}

/** A key prefix no other test run uses. */
export function testPrefix(): string {
  return `herald-test-${randomBytes(5).toString('hex')}`;
}

/** Deletes every key under `prefix` (SCAN + UNLINK). */
export async function dropPrefix(prefix: string, url = REDIS_URL): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

/** A plain connection for assertions and fault injection (CLIENT KILL, MEMORY USAGE, ...). */
export async function adminClient(url = REDIS_URL): Promise<Redis> {
  const r = new Redis(url, { lazyConnect: true, retryStrategy: () => null });
  r.on('error', () => undefined);
  await r.connect();
  return r;
}

/** Kills every connection whose CLIENT SETNAME starts with `namePrefix`; returns how many. */
export async function killClients(admin: Redis, namePrefix: string): Promise<number> {
  const ids = await clientIds(admin, namePrefix);
  for (const id of ids) await admin.client('KILL', 'ID', id);
  return ids.length;
}

/** The ids of the Redis connections whose name starts with `namePrefix`. */
export async function clientIds(admin: Redis, namePrefix: string): Promise<string[]> {
  const list = (await admin.client('LIST')) as string;
  const ids: string[] = [];
  for (const line of list.split('\n')) {
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
    const name = /(?:^| )name=(\S*)/.exec(line)?.[1] ?? '';
    if (id !== undefined && name.startsWith(namePrefix)) ids.push(id);
  }
  return ids;
}
