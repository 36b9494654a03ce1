// @ts-check
/**
 * Builds the browser bundles of @herald/client with esbuild (from the TypeScript sources, with
 * @herald/protocol bundled in):
 *   packages/client/dist/herald.min.js   single-file IIFE for a <script> tag; defines `Herald`
 *   packages/client/dist/herald.min.mjs  single-file ES module (`import { Herald } from ...`)
 *   packages/client/dist/herald-shared.min.js  IIFE of the opt-in cross-tab sharing (global
 *                                        `SharedHerald`, Herald included); also its SharedWorker script
 *   packages/client/dist/herald-msgpack.min.mjs  the MessagePack codec (`format: 'msgpack'`), an ES
 *                                        module the bundles above import next to themselves on first use
 * `ws` stays out: browsers have WebSocket, and Node loads `ws` itself.
 * `userBundle` bundles a module the way an application's bundler does (through the packages'
 * `exports`, from dist/, splitting dynamic imports into lazy chunks): the size test measures what
 * users get, with and without transports, and the lazy MessagePack chunk apart.
 * Run directly (`node scripts/bundle-client.mjs`, part of `npm run build`), or import `bundleClient`
 * (the size test does, without writing files).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TextDecoder, TextEncoder } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const client = fileURLToPath(new URL('../packages/client/', import.meta.url));

/**
 * @param {'iife' | 'esm'} format
 * @param {string} [entry]
 */
async function one(format, entry = format === 'iife' ? 'src/global.ts' : 'src/index.ts') {
  const esm = await measure({
    entryPoints: [client + entry],
    format: 'esm',
    conditions: ['herald-source'],
    plugins: [codecNextDoor],
  });
  return format === 'esm' ? esm : asScript(esm);
}

/**
 * An ES module bundle with no imports or exports (a `<script>` entry) wrapped as a classic script.
 * Not esbuild's `iife` format: it adds a `require` shim and CommonJS interop helpers (~400 bytes
 * gzipped, all dead code) as soon as the bundle has an `import()` of an external module.
 * @param {Bundle} esm
 * @returns {Bundle}
 */
function asScript(esm) {
  return sized(new TextEncoder().encode(`"use strict";(()=>{${new TextDecoder().decode(esm.code)}})();\n`));
}

/** The name of the MessagePack codec's bundle, which the prebuilt bundles import from their own URL. */
const CODEC_FILE = 'herald-msgpack.min.mjs';

/**
 * Leaves the MessagePack codec out of the prebuilt bundles (it would be inlined: a single-file
 * bundle has no chunks): `import('./msgpack.js')` becomes `import('./herald-msgpack.min.mjs')`, which
 * a browser resolves against the bundle's own URL, classic script or module alike.
 * @type {import('esbuild').Plugin}
 */
const codecNextDoor = {
  name: 'herald-msgpack-next-door',
  setup(b) {
    b.onResolve({ filter: /^\.\/msgpack\.js$/ }, () => ({ path: './' + CODEC_FILE, external: true }));
  },
};

/** The codec's own bundle: an ES module exporting `decode` and `encode`, @msgpack/msgpack included. */
function codec() {
  return measure({ entryPoints: [client + 'src/transports/msgpack.ts'], format: 'esm' });
}

/** What every bundle here shares: minified, ES2022 browsers, `ws` left out, nothing written. */
/** @type {import('esbuild').BuildOptions} */
const COMMON = {
  bundle: true,
  minify: true,
  target: 'es2022',
  platform: 'browser',
  external: ['ws'],
  legalComments: 'none',
  write: false,
  logLevel: 'silent',
};

/**
 * Runs esbuild and measures the output.
 * @param {import('esbuild').BuildOptions} options
 * @returns {Promise<Bundle>}
 */
async function measure(options) {
  const result = await build({ ...COMMON, ...options });
  return sized(result.outputFiles?.[0]?.contents ?? new Uint8Array());
}

/**
 * @param {Uint8Array} code
 * @returns {Bundle}
 */
function sized(code) {
  return { code, bytes: code.byteLength, gzipBytes: gzipSync(code, { level: 9 }).byteLength };
}

/**
 * Like `measure`, splitting dynamic imports into chunks as an application's bundler does: the
 * bundle is the entry chunk and the chunks it imports statically; `lazy` holds the chunks it loads
 * only through `import()` (the MessagePack codec). Each chunk is gzipped on its own, as served.
 * @param {import('esbuild').BuildOptions} options
 * @returns {Promise<Bundle & { lazy: Bundle }>}
 */
async function measureSplit(options) {
  const outdir = client + '.bundle-measure'; // nothing is written there (`write: false`)
  const result = await build({ ...COMMON, splitting: true, format: 'esm', outdir, metafile: true, ...options });
  const outputs = result.metafile?.outputs ?? {};
  const contents = new Map((result.outputFiles ?? []).map((f) => [f.path, f.contents]));
  const codeOf = (/** @type {string} */ name) =>
    [...contents].find(([path]) => path.endsWith(name.slice(name.lastIndexOf('/'))))?.[1] ?? new Uint8Array();
  const names = Object.keys(outputs).filter((n) => n.endsWith('.js'));
  const entry = names.find((n) => outputs[n]?.entryPoint !== undefined);
  const eager = new Set(entry === undefined ? [] : [entry]);
  for (const name of eager)
    for (const imp of outputs[name]?.imports ?? []) if (imp.kind === 'import-statement') eager.add(imp.path);
  /** @param {string[]} group */
  const join = (group) => {
    const parts = group.map(codeOf);
    const code = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
    parts.reduce((at, p) => (code.set(p, at), at + p.byteLength), 0);
    return { code, bytes: code.byteLength, gzipBytes: parts.reduce((a, p) => a + sized(p).gzipBytes, 0) };
  };
  return { ...join(names.filter((n) => eager.has(n))), lazy: join(names.filter((n) => !eager.has(n))) };
}

/** @typedef {{ code: Uint8Array, bytes: number, gzipBytes: number }} Bundle */

/**
 * Bundles `source` (an ES module importing `@herald/client...`) as an application's bundler would:
 * minified, for browsers, resolving the packages through their `exports` to the built dist/.
 * @param {string} source
 * @returns {Promise<Bundle & { lazy: Bundle }>}
 */
export function userBundle(source) {
  return measureSplit({ stdin: { contents: source, resolveDir: client, loader: 'js' } });
}

/**
 * @param {{ write?: boolean }} [opts]
 * @returns {Promise<{ iife: Bundle, esm: Bundle, shared: Bundle, msgpack: Bundle }>}
 */
export async function bundleClient(opts = {}) {
  const [iife, esm, shared, msgpack] = await Promise.all([
    one('iife'),
    one('esm'),
    one('iife', 'src/shared/global.ts'),
    codec(),
  ]);
  if (opts.write === true) {
    mkdirSync(client + 'dist', { recursive: true });
    writeFileSync(client + 'dist/herald.min.js', iife.code);
    writeFileSync(client + 'dist/herald.min.mjs', esm.code);
    writeFileSync(client + 'dist/herald-shared.min.js', shared.code);
    writeFileSync(client + 'dist/' + CODEC_FILE, msgpack.code);
  }
  return { iife, esm, shared, msgpack };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { iife, esm, shared, msgpack } = await bundleClient({ write: true });
  console.log(
    `@herald/client bundles: herald.min.js ${iife.bytes} B (${iife.gzipBytes} B gzipped), herald.min.mjs ${esm.bytes} B (${esm.gzipBytes} B gzipped), herald-shared.min.js ${shared.bytes} B (${shared.gzipBytes} B gzipped), ${CODEC_FILE} ${msgpack.bytes} B (${msgpack.gzipBytes} B gzipped)`,
  );
}
