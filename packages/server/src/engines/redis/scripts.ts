/**
 * The Lua scripts, read at run time from the `.lua` files beside this module. The build copies them
 * into `dist/` (scripts/copy-assets.mjs); a build made by a bare `tsc -b` finds them in `src/`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface LuaScripts {
  readonly publish: string;
  readonly history: string;
  readonly lease: string;
  readonly presence: string;
}

function readLua(name: string): string {
  const beside = new URL(`./${name}`, import.meta.url);
  if (existsSync(beside)) return readFileSync(beside, 'utf8');
  // dist/engines/redis/x.js → src/engines/redis/x.lua in a checkout.
  const inSrc = new URL(`../../../src/engines/redis/${name}`, import.meta.url);
  if (existsSync(inSrc)) return readFileSync(inSrc, 'utf8');
  throw new Error(
    `Redis engine script ${name} not found beside ${fileURLToPath(beside)}; rebuild with "npm run build"`,
  );
}

export function loadScripts(): LuaScripts {
  return {
    publish: readLua('publish.lua'),
    history: readLua('history.lua'),
    lease: readLua('lease.lua'),
    presence: readLua('presence.lua'),
  };
}
