import { defineConfig } from 'vitest/config';

/**
 * Tests run on the TypeScript sources, with no build step: every workspace package's `exports` maps the
 * custom condition `herald-source` to `./src/index.ts`, so `import '@herald/protocol'` in a test (or in
 * server code under test) loads `packages/protocol/src/index.ts`.
 *
 * Since Vite 6, setting `resolve.conditions` replaces the defaults instead of adding to them, and the
 * server side (where node tests run) reads `ssr.resolve.conditions`, not `resolve.conditions`. Both lists
 * therefore spell out Vite's defaults (`defaultClientConditions` / `defaultServerConditions`) plus ours.
 * Vitest also passes the server list to the test workers as `--conditions` flags.
 */
const HERALD_SOURCE = 'herald-source';

export default defineConfig({
  resolve: {
    conditions: [HERALD_SOURCE, 'module', 'browser', 'development|production'],
  },
  ssr: {
    resolve: {
      conditions: [HERALD_SOURCE, 'module', 'node', 'development|production'],
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'bench/test/**/*.test.ts'],
    testTimeout: 20_000,
    pool: 'forks',
  },
});
