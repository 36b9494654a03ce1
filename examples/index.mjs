// @ts-check
/**
 * The demo apps, in the order `herald serve` lists them at `/demo/`. Each is a folder here with
 * `backend.mjs` (exports `meta` and `createBackend`) and `public/` (the page). A folder that is
 * missing is skipped, and one whose backend fails to load is reported with its error, so one broken
 * example never stops the server or the others. What the pages share (`shared/public/`: base.css,
 * the layouts, page.js) is served beside them, at `/demo/shared/`.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DEMO_NAMES = ['tictactoe', 'chat', 'progress', 'ticker'];

/** The files every page may load as `../shared/<file>` (not a demo: no backend, not listed). */
export const SHARED_PUBLIC_DIR = fileURLToPath(new URL('./shared/public/', import.meta.url));

/**
 * @typedef {{ title: string, description: string, namespaces?: Record<string, object>, rpc?: boolean }} DemoMeta
 * @typedef {{ heraldUrl: string, publicUrl: string, apiKey: string, secret: string, base: string }} BackendOptions
 * @typedef {{ allow: boolean, data?: unknown, reason?: string }} HookAnswer
 * @typedef {{
 *   handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse, path: string): boolean | Promise<boolean>,
 *   hook?(event: string, body: any): HookAnswer | Promise<HookAnswer>,
 *   close?(): void | Promise<void>,
 * }} Backend
 * @typedef {{ name: string, dir: string, publicDir: string, meta: DemoMeta, createBackend: (o: BackendOptions) => Backend }} Demo
 * @typedef {{ name: string, error: string }} BrokenDemo
 */

/**
 * Imports every demo that exists.
 * @returns {Promise<Array<Demo | BrokenDemo>>}
 */
export async function loadDemos() {
  /** @type {Array<Demo | BrokenDemo>} */
  const demos = [];
  for (const name of DEMO_NAMES) {
    const dir = new URL(`./${name}/`, import.meta.url);
    const backend = new URL('backend.mjs', dir);
    if (!existsSync(backend)) continue;
    try {
      const mod = await import(backend.href);
      if (typeof mod.createBackend !== 'function' || typeof mod.meta?.title !== 'string') {
        throw new Error('backend.mjs must export meta ({ title, description, namespaces }) and createBackend()');
      }
      demos.push({
        name,
        dir: fileURLToPath(dir),
        publicDir: fileURLToPath(new URL('public/', dir)),
        meta: mod.meta,
        createBackend: mod.createBackend,
      });
    } catch (err) {
      demos.push({ name, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return demos;
}
