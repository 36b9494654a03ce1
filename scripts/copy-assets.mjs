// Copies the files `tsc` does not emit (the Redis engine's Lua scripts) from src/ to dist/, keeping
// their paths: packages/server/src/engines/redis/publish.lua → packages/server/dist/engines/redis/publish.lua.
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ASSET = /\.lua$/;

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (ASSET.test(entry.name)) yield path;
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
if (process.argv.includes('--verbose')) console.log(`copied ${copied} asset(s)`);
