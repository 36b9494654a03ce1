// @ts-check
/**
 * Builds the browser bundles of @herald/client with esbuild (from the TypeScript sources, with
 * @herald/protocol bundled in):
 *   packages/client/dist/herald.min.js   single-file IIFE for a <script> tag; defines `Herald`
 *   packages/client/dist/herald.min.mjs  single-file ES module (`import { Herald } from ...`)
 *   packages/client/dist/herald-shared.min.js  IIFE of the opt-in cross-tab sharing (global
 *                                        `SharedHerald`, Herald included); also its SharedWorker script
 * `ws` stays out: browsers have WebSocket, and Node loads `ws` itself.
 * `userBundle` bundles a module the way an application's bundler does (through the packages'
 * `exports`, from dist/): the size test measures what users get, with and without transports.
 * Run directly (`node scripts/bundle-client.mjs`, part of `npm run build`), or import `bundleClient`
 * (the size test does, without writing files).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const client = fileURLToPath(new URL('../packages/client/', import.meta.url));

/**
 * @param {'iife' | 'esm'} format
 * @param {string} [entry]
 */
function one(format, entry = format === 'iife' ? 'src/global.ts' : 'src/index.ts') {
  return measure({ entryPoints: [client + entry], format, conditions: ['herald-source'] });
}

/**
 * Runs esbuild with what every bundle here shares (minified, ES2022 browsers, `ws` left out) and
 * measures the output.
 * @param {import('esbuild').BuildOptions} options
 * @returns {Promise<Bundle>}
 */
async function measure(options) {
  const result = await build({
    bundle: true,
    minify: true,
    target: 'es2022',
    platform: 'browser',
    external: ['ws'],
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
    ...options,
  });
  const code = result.outputFiles?.[0]?.contents ?? new Uint8Array();
  return { code, bytes: code.byteLength, gzipBytes: gzipSync(code, { level: 9 }).byteLength };
}

/** @typedef {{ code: Uint8Array, bytes: number, gzipBytes: number }} Bundle */

/**
 * Bundles `source` (an ES module importing `@herald/client...`) as an application's bundler would:
 * minified, for browsers, resolving the packages through their `exports` to the built dist/.
 * @param {string} source
 * @returns {Promise<Bundle>}
 */
export function userBundle(source) {
  return measure({ stdin: { contents: source, resolveDir: client, loader: 'js' }, format: 'esm' });
}

/**
 * @param {{ write?: boolean }} [opts]
 * @returns {Promise<{ iife: Bundle, esm: Bundle, shared: Bundle }>}
 */
export async function bundleClient(opts = {}) {
  const [iife, esm, shared] = await Promise.all([one('iife'), one('esm'), one('iife', 'src/shared/global.ts')]);
  if (opts.write === true) {
    mkdirSync(client + 'dist', { recursive: true });
    writeFileSync(client + 'dist/herald.min.js', iife.code);
    writeFileSync(client + 'dist/herald.min.mjs', esm.code);
    writeFileSync(client + 'dist/herald-shared.min.js', shared.code);
  }
  return { iife, esm, shared };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { iife, esm, shared } = await bundleClient({ write: true });
  console.log(
    `@herald/client bundles: herald.min.js ${iife.bytes} B (${iife.gzipBytes} B gzipped), herald.min.mjs ${esm.bytes} B (${esm.gzipBytes} B gzipped), herald-shared.min.js ${shared.bytes} B (${shared.gzipBytes} B gzipped)`,
  );
}
