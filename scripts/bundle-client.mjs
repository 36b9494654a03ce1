// @ts-check
/**
 * Builds the browser bundles of @herald/client with esbuild (from the TypeScript sources, with
 * @herald/protocol bundled in):
 *   packages/client/dist/herald.min.js   single-file IIFE for a <script> tag; defines `Herald`
 *   packages/client/dist/herald.min.mjs  single-file ES module (`import { Herald } from ...`)
 * `ws` stays out: browsers have WebSocket, and Node loads `ws` itself.
 * The bundles leave out the descriptions of the code table (`ErrorCodes[code].description`, about
 * 1.5 KB gzipped): every error the SDK raises or receives carries its own message, and
 * docs/errors.md has the descriptions. Codes and statuses stay.
 * Run directly (`node scripts/bundle-client.mjs`, part of `npm run build`), or import `bundleClient`
 * (the size test does, without writing files).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const client = fileURLToPath(new URL('../packages/client/', import.meta.url));

/** @type {import('esbuild').Plugin} */
const dropDescriptions = {
  name: 'drop-code-descriptions',
  setup(b) {
    b.onLoad({ filter: /[\\/]protocol[\\/]src[\\/]codes\.ts$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const contents = source.replace(/description:\s*(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")/g, "description: ''");
      if (contents === source)
        throw new Error(`no descriptions found in ${args.path}: update scripts/bundle-client.mjs`);
      return { contents, loader: 'ts' };
    });
  },
};

/** @param {'iife' | 'esm'} format */
async function one(format) {
  const result = await build({
    entryPoints: [client + (format === 'iife' ? 'src/global.ts' : 'src/index.ts')],
    bundle: true,
    minify: true,
    format,
    target: 'es2022',
    platform: 'browser',
    conditions: ['herald-source'],
    external: ['ws'],
    legalComments: 'none',
    plugins: [dropDescriptions],
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  return { code, bytes: code.byteLength, gzipBytes: gzipSync(code, { level: 9 }).byteLength };
}

/**
 * @param {{ write?: boolean }} [opts]
 * @returns {Promise<{ iife: { code: Uint8Array, bytes: number, gzipBytes: number }, esm: { code: Uint8Array, bytes: number, gzipBytes: number } }>}
 */
export async function bundleClient(opts = {}) {
  const [iife, esm] = await Promise.all([one('iife'), one('esm')]);
  if (opts.write === true) {
    mkdirSync(client + 'dist', { recursive: true });
    writeFileSync(client + 'dist/herald.min.js', iife.code);
    writeFileSync(client + 'dist/herald.min.mjs', esm.code);
  }
  return { iife, esm };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { iife, esm } = await bundleClient({ write: true });
  console.log(
    `@herald/client bundles: herald.min.js ${iife.bytes} B (${iife.gzipBytes} B gzipped), herald.min.mjs ${esm.bytes} B (${esm.gzipBytes} B gzipped)`,
  );
}
