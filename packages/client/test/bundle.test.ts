/**
 * Size: the prebuilt browser bundles (all four transports, recovery, upgrade, tokens), and what an
 * application's bundler makes of `import { Herald } from '@herald/client'`, minified and gzipped,
 * stay within 8 KB; with `@herald/client/core` a bundle holds only the transports it lists. Prints
 * the figures. Bundles the built dist/ (`npm test` builds first).
 */
import { runInNewContext } from 'node:vm';
import { expect, it } from 'vitest';
import { bundleClient, userBundle } from '../../../scripts/bundle-client.mjs';

const LIMIT = 8192;

it(`keeps the minified + gzipped browser bundle within ${LIMIT} bytes`, async () => {
  const { iife, esm, msgpack } = await bundleClient();
  console.log(
    `@herald/client browser bundle: herald.min.js ${iife.bytes} B minified, ${iife.gzipBytes} B gzipped ` +
      `(limit ${LIMIT}); herald.min.mjs ${esm.gzipBytes} B gzipped; ` +
      `herald-msgpack.min.mjs (loaded with format: 'msgpack') ${msgpack.gzipBytes} B gzipped`,
  );
  expect(iife.gzipBytes).toBeLessThanOrEqual(LIMIT);
  expect(esm.gzipBytes).toBeLessThanOrEqual(LIMIT);
});

it('leaves the MessagePack codec out of the bundles: they import it next to themselves', async () => {
  const { iife, esm, msgpack } = await bundleClient();
  for (const b of [iife, esm]) {
    const text = new TextDecoder().decode(b.code);
    expect(text).toContain('import("./herald-msgpack.min.mjs")');
    // A string of @msgpack/msgpack's decoder.
    expect(text).not.toContain('Insufficient data');
  }
  expect(new TextDecoder().decode(msgpack.code)).toContain('Insufficient data');
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

// What marks each transport in a minified bundle: the path it requests.
const MARKS = { websocket: '"/ws"', 'http-stream': '"/stream"', sse: '"/sse"', 'long-poll': '"/poll"' } as const;

it(`keeps import { Herald } from '@herald/client', as a bundler makes it, within ${LIMIT} bytes`, async () => {
  const full = await userBundle("import { Herald } from '@herald/client'; globalThis.h = new Herald('https://rt');");
  console.log(
    `import { Herald } from '@herald/client': ${full.bytes} B minified, ${full.gzipBytes} B gzipped; ` +
      `its lazy MessagePack chunk ${full.lazy.gzipBytes} B gzipped`,
  );
  expect(full.gzipBytes).toBeLessThanOrEqual(LIMIT);
  // The codec is a chunk of its own, loaded only with format: 'msgpack'.
  expect(new TextDecoder().decode(full.code)).not.toContain('Insufficient data');
  expect(new TextDecoder().decode(full.lazy.code)).toContain('Insufficient data');
  const text = new TextDecoder().decode(full.code);
  for (const mark of Object.values(MARKS)) expect(text).toContain(mark);
  // The code table's descriptions stay out: errors carry their own messages.
  expect(text).not.toContain('The frame is not valid JSON');
});

it('leaves out of a bundle the transports @herald/client/core is not given', async () => {
  const full = await userBundle("import { Herald } from '@herald/client'; globalThis.h = new Herald('https://rt');");
  const sizes: string[] = [];
  for (const [name, only] of [
    ['websocket', 'websocket'],
    ['sse', 'sse'],
    ['long-poll', 'longPoll'],
  ] as const) {
    const one = await userBundle(
      `import { Herald, ${only} } from '@herald/client/core'; globalThis.h = new Herald('https://rt', { transports: [${only}] });`,
    );
    sizes.push(`${name} ${one.gzipBytes} B`);
    const text = new TextDecoder().decode(one.code);
    for (const [other, mark] of Object.entries(MARKS)) {
      if (other === name) expect(text).toContain(mark);
      else expect(text, `${other} is in a bundle that lists only ${name}`).not.toContain(mark);
    }
    expect(one.gzipBytes).toBeLessThan(full.gzipBytes);
  }
  console.log(`@herald/client/core with one transport, gzipped: ${sizes.join(', ')} (all four: ${full.gzipBytes} B)`);
});
