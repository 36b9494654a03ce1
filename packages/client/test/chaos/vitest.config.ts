/**
 * `npm run chaos`: the full chaos suite (full.chaos.ts) and nothing else. Module resolution as in the
 * root vitest.config.ts (tests run on the TypeScript sources through the `herald-source` condition;
 * the Herald nodes run from packages/server/dist).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const HERALD_SOURCE = 'herald-source';

export default defineConfig({
  root: fileURLToPath(new URL('../../../..', import.meta.url)),
  resolve: {
    conditions: [HERALD_SOURCE, 'module', 'browser', 'development|production'],
  },
  ssr: {
    resolve: {
      conditions: [HERALD_SOURCE, 'module', 'node', 'development|production'],
    },
  },
  test: {
    include: ['packages/client/test/chaos/full.chaos.ts'],
    testTimeout: 20 * 60_000,
    pool: 'forks',
  },
});
