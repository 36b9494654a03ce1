// Copies the files `tsc` does not emit (the Redis engine's Lua scripts, the admin page's files under
// src/admin/public/) from src/ to dist/, keeping their paths: packages/server/src/engines/redis/publish.lua →
// packages/server/dist/engines/redis/publish.lua. Also uPlot's browser build and styles, which Herald serves
// to the admin page itself (no CDN): node_modules/uplot/dist/ → packages/server/dist/admin/public/vendor/.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ASSET = /\.lua$/;
/** What a page folder (`public/`) holds besides its tsconfig.json (there for the editor and ESLint). */
const PAGE_ASSET = /\.(html|js|css|svg|png|ico)$/;

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (ASSET.test(entry.name) || (PAGE_ASSET.test(entry.name) && path.includes(`${sep}public${sep}`))) {
      yield path;
    }
  }
}

let copied = 0;
for (const pkg of readdirSync(join(root, 'packages'))) {
  const src = join(root, 'packages', pkg, 'src');
  let files;
  try {
    files = [...walk(src)];
  } catch {
    continue;
  }
  for (const file of files) {
    const target = join(root, 'packages', pkg, 'dist', relative(src, file));
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file, target);
    copied += 1;
  }
}
const uplot = dirname(
  createRequire(join(root, 'packages', 'server', 'package.json')).resolve('uplot/dist/uPlot.iife.min.js'),
);
const vendor = join(root, 'packages', 'server', 'dist', 'admin', 'public', 'vendor');
mkdirSync(vendor, { recursive: true });
for (const name of ['uPlot.iife.min.js', 'uPlot.min.css']) {
  copyFileSync(join(uplot, name), join(vendor, name));
  copied += 1;
}
if (process.argv.includes('--verbose')) console.log(`copied ${copied} asset(s)`);
