/**
 * The browser bundle: built with esbuild from the sources (all four transports, recovery, upgrade,
 * tokens), minified and gzipped, must stay within 8 KB. Prints the figures.
 */
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { bundleClient } from '../../../scripts/bundle-client.mjs';

const LIMIT = 8192;

it(`keeps the minified + gzipped browser bundle within ${LIMIT} bytes`, async () => {
  const { iife, esm } = await bundleClient();
  console.log(
    `@herald/client browser bundle: herald.min.js ${iife.bytes} B minified, ${iife.gzipBytes} B gzipped ` +
      `(limit ${LIMIT}); herald.min.mjs ${esm.gzipBytes} B gzipped`,
  );
  expect(iife.gzipBytes).toBeLessThanOrEqual(LIMIT);
  expect(esm.gzipBytes).toBeLessThanOrEqual(LIMIT);
});

it('defines the global Herald with HeraldError attached, and leaves `ws` out', async () => {
  const { iife } = await bundleClient();
  const code = new TextDecoder().decode(iife.code);
  const sandbox: Record<string, unknown> = {};
  sandbox['globalThis'] = sandbox;
  runInNewContext(code, sandbox);
  const Herald = sandbox['Herald'] as {
    new (url: string): unknown;
    HeraldError: new (code: string, m: string) => Error;
  };
  expect(typeof Herald).toBe('function');
  const err = new Herald.HeraldError('HERALD_ERR_TIMEOUT', 'too slow');
  expect(err).toMatchObject({ name: 'HeraldError', code: 'HERALD_ERR_TIMEOUT', message: 'too slow' });
  expect(code).not.toMatch(/require\(|from"ws"/);
});
