/**
 * Three Herald nodes as one, through Redis: the multi-node suite (conformance/multinode-suite.ts),
 * and one Redis subscription per stream per node.
 */
import { expect } from 'vitest';
import { multinodeSuite } from './conformance/multinode-suite.js';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode } from './support/redis-nodes.js';

const prefix = testPrefix();

multinodeSuite('Redis', {
  skip: skipRedis,
  start: (config) => startRedisNode(prefix, config),
  cleanup: () => dropPrefix(prefix),
  afterFanOut: (node) => {
    // One Redis subscription per stream per node, however many clients read it there.
    expect(node.engine.status().streams).toBe(1);
  },
});
