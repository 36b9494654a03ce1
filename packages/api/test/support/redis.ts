/**
 * The Redis the Redis tests of @herald/api use (the same rule as packages/server's Redis tests):
 * HERALD_TEST_REDIS_URL, default redis://127.0.0.1:6379. When it does not answer, those tests are
 * skipped with a note on the console, except under CI=true, where they run and fail loudly.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { CI } from '@herald/test-support';

export const REDIS_URL = process.env['HERALD_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

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
/** Skip the Redis tests: Redis is absent and this is not CI. */
export const skipRedis = failure !== undefined && !CI;
if (skipRedis) {
  console.warn(
    `[herald] @herald/api Redis tests skipped: no Redis at ${REDIS_URL} (${failure ?? ''}). ` +
      'Start one (redis-server) or set HERALD_TEST_REDIS_URL; with CI=true they run and fail.',
  );
}

/** A key prefix no other test run uses. */
export function testPrefix(): string {
  return `herald-api-test-${randomBytes(5).toString('hex')}`;
}

/** Deletes every key under `prefix` (SCAN + UNLINK). */
export async function dropPrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null });
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
