/**
 * The published type definitions show the API and nothing of the insides: builds
 * `packages/client/dist` (`tsc -b packages/client`), then
 * - walks the declaration files that `dist/index.d.ts` reaches, and fails if one names an internal
 *   member (`_deliver`, `_set`, `_on`, `_held`, `_id`, `removeSubscription`, ...) or reaches an
 *   internal module (requests, internal);
 * - type-checks, against those files, that the public members of `Herald`, `Subscription` and
 *   `Emitter` are exactly the documented ones, and that `state` cannot be assigned from outside.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dist = join(root, 'packages/client/dist/');
const require = createRequire(import.meta.url);

const INTERNAL = [
  '_deliver',
  '_set',
  '_on',
  '_held',
  '_id',
  '_apply',
  'removeSubscription',
  'SubscriptionHost',
  'requests',
  'resubscribe',
  'suspend',
];

beforeAll(() => {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'packages/client'], { cwd: root });
}, 120_000);

/** The declaration files reachable from `index.d.ts` through relative imports and re-exports. */
function reachable(): Map<string, string> {
  const seen = new Map<string, string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    const text = readFileSync(file, 'utf8');
    seen.set(file, text);
    for (const m of text.matchAll(/from '(\.[^']+)\.js'/g)) visit(resolve(dirname(file), `${m[1]}.d.ts`));
  };
  visit(join(dist, 'index.d.ts'));
  return seen;
}

it('names no internal member, and reaches no internal module, from index.d.ts', () => {
  const files = reachable();
  const names = [...files.keys()].map((f) => f.slice(dist.length)).sort();
  expect(names).not.toContain('requests.d.ts');
  expect(names).not.toContain('internal.d.ts');
  for (const [file, text] of files) {
    const code = text.replace(/\/\*\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, ''); // declarations, not comments
    for (const name of INTERNAL) {
      expect(new RegExp(`\\b${name}\\b`).test(code), `${name} in ${file.slice(dist.length)}`).toBe(false);
    }
  }
});

it('exposes exactly the documented members, with `state` read-only', async () => {
  const ts = (await import('typescript')).default;
  const dir = mkdtempSync(join(tmpdir(), 'herald-types-'));
  try {
    const file = join(dir, 'use.ts');
    writeFileSync(
      file,
      `import type { Emitter, Herald, Subscription } from ${JSON.stringify(join(dist, 'index.js'))};
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;
type EmitterKeys = 'on' | 'once' | 'off';
export type HeraldKeys = Expect<Equal<keyof Herald, EmitterKeys | 'state' | 'client' | 'transport' | 'connect' | 'setToken'
  | 'subscribe' | 'subscriptions' | 'getSubscription' | 'publish' | 'history' | 'presence' | 'presenceStats' | 'rpc'
  | 'ping' | 'close'>>;
export type SubscriptionKeys = Expect<Equal<keyof Subscription, EmitterKeys | 'channel' | 'state' | 'cursor' | 'publish'
  | 'history' | 'presence' | 'presenceStats' | 'unsubscribe' | 'ready' | typeof Symbol.asyncIterator>>;
export type EmitterOnly = Expect<Equal<keyof Emitter<object>, EmitterKeys>>;
export function tryToWrite(h: Herald, s: Subscription): void {
  // @ts-expect-error: read-only from outside
  h.state = 'closed';
  // @ts-expect-error: read-only from outside
  s.state = 'subscribed';
  // @ts-expect-error: read-only from outside
  s.cursor = undefined;
  // @ts-expect-error: read-only from outside
  s.channel = 'x';
}
export function readSkipped(s: Subscription): void {
  s.on('skip', (e) => void s.history({ since: e.since, limit: e.count }));
}
// @ts-expect-error: made by herald.subscribe(), not by applications
export const made = new (Object as unknown as typeof Subscription)();
`,
    );
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
      types: [],
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map(
        (d) => `${d.file?.fileName.slice(dir.length) ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`,
      );
    expect(problems).toEqual([]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
