// @ts-check
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/**
 * Layering (docs/architecture.md, "Packages"): protocol ← core ← engines, transports ← api, auth, cli.
 * Enforced with `no-restricted-imports`. ESLint replaces (not merges) a rule's options when several
 * config objects set it for one file, so each layer below gets exactly one object and the globs do
 * not overlap.
 */

/** Relative paths that climb out of a folder: `../x` from its top level, `../../x` one level down, ... */
function escapes(folder, maxDepth = 4) {
  return Array.from({ length: maxDepth + 1 }, (_, depth) => ({
    files: [depth === 0 ? `${folder}/*.ts` : `${folder}/${'*/'.repeat(depth)}*.ts`],
    regex: `^(\\.\\./){${depth + 1}}`,
  }));
}

const protocolMessage = 'packages/protocol is browser-safe and dependency-free: it may import only its own modules.';

/** protocol/src: relative imports inside src only; no `node:*`, no packages. */
const protocolLayer = escapes('packages/protocol/src').map(({ files, regex }) => ({
  files,
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          { regex: '^(?!\\.\\.?/)', message: protocolMessage },
          { regex, message: protocolMessage },
        ],
      },
    ],
  },
}));

const coreMessage =
  'core does no I/O of its own: it reaches sockets, HTTP, Redis and logging through interfaces (see core/engine.ts, core/logger.ts).';

const coreLayer = {
  files: ['packages/server/src/core/**/*.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        paths: ['node:http', 'node:https', 'node:net', 'http', 'https', 'net', 'ws', 'ioredis', 'redis', 'pino'].map(
          (name) => ({ name, message: coreMessage }),
        ),
        patterns: [
          { regex: '^(ws|ioredis|redis|pino|@redis)/', message: coreMessage },
          {
            regex: '^(\\.\\./)+(transports|engines|api|cli)(/|$)',
            message: 'core sits below transports, engines, api and cli and must not import them.',
          },
        ],
      },
    ],
  },
};

const enginesLayer = {
  files: ['packages/server/src/engines/**/*.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: '^(\\.\\./)+transports(/|$)',
            message: 'Engines and transports never import each other; they meet in core.',
          },
        ],
      },
    ],
  },
};

const transportsLayer = {
  files: ['packages/server/src/transports/**/*.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: '^(\\.\\./)+engines(/|$)',
            message: 'Engines and transports never import each other; they meet in core.',
          },
        ],
      },
    ],
  },
};

const testSupportMessage =
  "Tests share their support through @herald/test-support (packages/test-support), not by reaching into another package's test folder.";

/** Tests: their own package's files, and any package through its name; never another package's test folder. */
const testImports = {
  files: ['packages/*/test/**/*.ts', 'bench/test/**/*.ts'],
  rules: {
    '@typescript-eslint/no-restricted-imports': [
      'error',
      { patterns: [{ regex: '^(\\.\\./)+(packages/)?[^/.]+/test(/|$)', message: testSupportMessage }] },
    ],
  },
};

/** Globals of the examples (no-undef): Node for the backends, the browser (and `Herald`) for the pages. */
const NODE_GLOBALS = (
  'Buffer setTimeout clearTimeout setInterval clearInterval setImmediate queueMicrotask fetch AbortController ' +
  'AbortSignal TextEncoder TextDecoder URLSearchParams structuredClone performance crypto'
).split(' ');
const BROWSER_GLOBALS = (
  'window document location history navigator localStorage sessionStorage alert confirm fetch URL URLSearchParams ' +
  'performance requestAnimationFrame cancelAnimationFrame setTimeout clearTimeout setInterval clearInterval ' +
  'queueMicrotask structuredClone atob btoa crypto console Event CustomEvent AbortController TextEncoder ' +
  'TextDecoder HTMLElement EventSource WebSocket BroadcastChannel Herald'
).split(' ');
const readonlyGlobals = (names) => Object.fromEntries(names.map((n) => [n, 'readonly']));

const testSupportLayerMessage =
  'packages/test-support reaches the packages through their public entry points (@herald/server, ...), not their files.';

/** test-support/src: relative imports inside src only. */
const testSupportLayer = escapes('packages/test-support/src').map(({ files, regex }) => ({
  files,
  rules: {
    '@typescript-eslint/no-restricted-imports': ['error', { patterns: [{ regex, message: testSupportLayerMessage }] }],
  },
}));

export default defineConfig(
  {
    ignores: ['**/dist/**', '**/node_modules/**', '**/coverage/**', 'bench/results/**', '**/*.tsbuildinfo'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: {
        // Each file is type-checked with the tsconfig.json nearest to it (packages/*/tsconfig.json for
        // src, packages/*/test/tsconfig.json for tests). Root-level config files and scripts belong to no
        // project and get a default one.
        projectService: {
          allowDefaultProject: ['*.js', '*.mjs', '*.ts', 'scripts/*.mjs'],
          maximumDefaultProjectFileMatchCount_THIS_WILL_SLOW_DOWN_LINTING: 16,
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: {
      reportUnusedDisableDirectives: 'error',
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { prefer: 'type-imports', fixStyle: 'inline-type-imports' },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Library code logs through the injected logger; only the CLI talks to the terminal.
    files: ['packages/*/src/**/*.ts'],
    ignores: ['packages/server/src/cli/**', 'packages/test-support/**'],
    rules: {
      'no-console': 'error',
    },
  },
  {
    // Node scripts and configs: Node globals, and type imports are not a thing in plain JS.
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/consistent-type-imports': 'off',
    },
  },
  {
    // The examples' backends and runners (examples/**/*.mjs) are Node programs.
    files: ['examples/**/*.mjs'],
    languageOptions: { globals: readonlyGlobals(NODE_GLOBALS) },
  },
  {
    // The demo pages: plain browser scripts, with the SDK bundle's global `Herald`.
    files: ['examples/*/public/**/*.js'],
    languageOptions: { globals: readonlyGlobals(BROWSER_GLOBALS) },
  },
  {
    // The admin page's script (packages/server/src/admin/public/): a plain browser script, with uPlot's global.
    files: ['packages/server/src/admin/public/**/*.js'],
    languageOptions: { globals: readonlyGlobals([...BROWSER_GLOBALS, 'uPlot']) },
  },
  {
    // Tests read protocol frames as loose JSON (`Frame = Record<string, any>`); production code may not.
    files: ['packages/*/test/**/*.ts', 'packages/test-support/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  ...protocolLayer,
  coreLayer,
  enginesLayer,
  transportsLayer,
  testImports,
  ...testSupportLayer,
);
