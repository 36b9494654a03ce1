/**
 * Several Herald nodes sharing one Redis, in this test process: each is a HeraldServer with its own
 * RedisEngine (its own connections) and the same key prefix.
 */
import { DEFAULT_CONFIG, type RedisOptions } from '../../src/config/config.js';
import { RedisEngine } from '../../src/engines/redis/redis-engine.js';
import { startServer, type TestConfigInput, type TestServer } from '@herald/test-support/server';
import { REDIS_URL } from './redis.js';

export interface RedisNode extends TestServer {
  engine: RedisEngine;
}

export async function startRedisNode(
  prefix: string,
  over: TestConfigInput = {},
  redis: Partial<RedisOptions> = {},
): Promise<RedisNode> {
  const options: RedisOptions = { ...DEFAULT_CONFIG.redis, urls: [REDIS_URL], prefix, ...redis };
  const engine = new RedisEngine({ urls: options.urls, cluster: options.cluster, prefix, commandTimeout: 2000 });
  const srv = await startServer({ ...over, engine: 'redis', redis: options } as TestConfigInput, { engine });
  return { ...srv, engine };
}
