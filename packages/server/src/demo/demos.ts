/**
 * The demo apps (examples/, docs/demos.md) served by `herald serve` under `/demo/`: an index page,
 * the SDK bundle (`/demo/herald.min.js`), what the pages share (`/demo/shared/`: the folder the
 * examples' `index.mjs` names as `SHARED_PUBLIC_DIR`), each demo's `public/` folder
 * (`/demo/<name>/`) and its backend (`/demo/<name>/api/*`). The backends are the examples' own code and talk to Herald only
 * over HTTP, through the server API at the loopback URL of the listening server, as a separate
 * business tier would.
 *
 * `prepareDemos(config)` loads them and adjusts the configuration before the server is built: each
 * demo's namespaces (unless the operator defined that namespace), an HMAC secret for the run when
 * none is set (so backends can mint connection tokens; clients without one still connect as
 * anonymous), and backend hooks routed to the demos when they need some and none are configured.
 * `HeraldServer` gets the result as its `demos` option: it hands `/demo` requests over (nothing on
 * the delivery path looks at them), starts the backends once listening and closes them first at
 * shutdown. Embedding `HeraldServer` never mounts demos unless given one.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFAULT_NAMESPACE, type HeraldConfig, type NamespaceOptions } from '../config/config.js';
import { NAMESPACE_OPTIONS, isPlainObject } from '../config/schema.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { sendJsonError } from '../http/admission.js';
import { DemoHookListener, type HookAnswer } from './hooks.js';
import { indexPage } from './index-page.js';
import { notFound, readOnly, sendFile, serveStatic } from './static.js';

/** What `examples/<name>/backend.mjs` exports as `meta`. */
export interface DemoMeta {
  title: string;
  description: string;
  /** Namespace options as in the config file's `namespaces` (`{ progress: { historySize: 5 } }`). */
  namespaces?: Record<string, unknown>;
  /** The backend answers client `rpc` calls whose method starts with `<name>.` (through `hook('rpc', ...)`). */
  rpc?: boolean;
}

/** What `createBackend` is given. */
export interface DemoBackendOptions {
  /** Herald's base URL for the server API (here: the loopback URL of this server). */
  heraldUrl: string;
  /** Herald's URL as pages should use it; '' means the page's own origin. */
  publicUrl: string;
  apiKey: string;
  /** The HS256 secret (`auth.hmacSecret`) that signs connection tokens. */
  secret: string;
  /** Where the demo is mounted: `/demo/<name>`. */
  base: string;
}

/** What `createBackend` returns. */
export interface DemoBackend {
  /** Answers a request under the demo's `api/`; `path` is like `/api/start` (no query). True when it answered. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): boolean | Promise<boolean>;
  /** Backend hooks (`subscribe` / `publish` on its namespaces, `rpc`), when its namespaces list some. */
  hook?(event: string, body: Record<string, unknown>): HookAnswer | Promise<HookAnswer>;
  close?(): void | Promise<void>;
}

export interface DemoApp {
  name: string;
  publicDir: string;
  meta: DemoMeta;
  createBackend(options: DemoBackendOptions): DemoBackend | Promise<DemoBackend>;
}

interface BrokenDemo {
  name: string;
  error: string;
}

/** What `HeraldServer` needs of the demos (its `demos` option). */
export interface DemoHost {
  /** The mounted demos, in order. */
  readonly names: readonly string[];
  /** Starts the backends; `heraldUrl` is the listening server's loopback URL. Never rejects. */
  start(heraldUrl: string): Promise<void>;
  /** Serves a request whose path is `/demo` or under `/demo/`. */
  handle(req: IncomingMessage, res: ServerResponse, path: string): void;
  /** Stops the backends (timers, jobs) and the hook listener. */
  close(): Promise<void>;
}

export interface DemoOptions {
  logger?: Logger;
  /** The folder with `index.mjs` listing the demos; default: the repository's `examples/`. */
  examplesDir?: string;
  /** The SDK's `<script>` bundle; default: the repository's `packages/client/dist/herald.min.js`. */
  sdkPath?: string;
}

/** Where the pages' shared files are served (`/demo/shared/`): a name no demo may have. */
const SHARED = 'shared';

/** packages/server/{src,dist}/demo/ → the repository. */
const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
export const DEFAULT_EXAMPLES_DIR = path.join(REPO, 'examples');
export const DEFAULT_SDK_PATH = path.join(REPO, 'packages', 'client', 'dist', 'herald.min.js');

/**
 * Loads the demos when `config.demos` is on (else resolves undefined) and adjusts `config` for them
 * (see the top of this file). Call it before `new HeraldServer(config, { demos })`. A demo that
 * fails to load, or whose namespaces are invalid, is left out with a warning; a missing `examples/`
 * folder (an installed package) leaves no demos at all, with a warning.
 */
export async function prepareDemos(config: HeraldConfig, opts: DemoOptions = {}): Promise<Demos | undefined> {
  if (config.demos === false) return undefined;
  const logger = (opts.logger ?? silentLogger).child({ component: 'demos' });
  const examplesDir = opts.examplesDir ?? DEFAULT_EXAMPLES_DIR;
  const index = path.join(examplesDir, 'index.mjs');
  if (!existsSync(index)) {
    logger.warn({ examplesDir }, 'demos: no examples folder here (they ship with the repository); none mounted');
    return undefined;
  }
  let loaded: Array<DemoApp | BrokenDemo>;
  let sharedDir: string | undefined;
  try {
    const mod = (await import(pathToFileURL(index).href)) as {
      loadDemos(): Promise<Array<DemoApp | BrokenDemo>>;
      SHARED_PUBLIC_DIR?: unknown;
    };
    loaded = await mod.loadDemos();
    if (typeof mod.SHARED_PUBLIC_DIR === 'string') sharedDir = mod.SHARED_PUBLIC_DIR;
  } catch (err) {
    logger.warn({ err, index }, 'demos: the list of demos failed to load; none mounted');
    return undefined;
  }
  const apps: DemoApp[] = [];
  const owners = new Map<string, string>();
  for (const demo of loaded) {
    if ('error' in demo) {
      logger.warn({ demo: demo.name, error: demo.error }, 'demos: a demo failed to load and is left out');
      continue;
    }
    if (demo.name === SHARED) {
      logger.warn({ demo: demo.name }, "demos: a demo may not be named 'shared' (the pages' shared files); left out");
      continue;
    }
    const problems = addNamespaces(config, demo, owners, logger);
    if (problems.length > 0) {
      logger.warn({ demo: demo.name, problems }, 'demos: invalid namespace options; the demo is left out');
      continue;
    }
    apps.push(demo);
  }
  if (config.auth.hmacSecret === '') config.auth.hmacSecret = randomBytes(32).toString('base64url');
  if (config.apiKeys.length === 0) config.apiKeys = [randomBytes(24).toString('base64url')];
  const sdkPath = opts.sdkPath ?? DEFAULT_SDK_PATH;
  if (!existsSync(sdkPath)) logger.warn({ sdkPath }, 'demos: the SDK bundle is not built (npm run build)');

  const demos = new Demos(apps, {
    apiKey: config.apiKeys[0] ?? '',
    secret: config.auth.hmacSecret,
    sdkPath,
    sharedDir,
    logger,
  });
  const hooked = [...owners.keys()].some((ns) => (config.namespaces[ns]?.hooks.length ?? 0) > 0);
  const rpc = apps.some((a) => a.meta.rpc === true);
  if (hooked || rpc) {
    if (config.auth.hooks.url !== '') {
      logger.warn(
        { url: config.auth.hooks.url },
        'demos: auth.hooks.url is set, so the demos that use hooks are asked at that URL, not in their own backends',
      );
    } else {
      const key = randomBytes(24).toString('base64url');
      const listener = new DemoHookListener((event, body) => demos.hook(event, body, owners), key, logger);
      config.auth.hooks.url = await listener.listen();
      config.auth.hooks.apiKey = key;
      if (rpc) config.auth.hooks.rpc = true;
      demos.hookListener = listener;
    }
  }
  return demos;
}

/** Merges a demo's namespaces into the config (the operator's own entries win); returns problems. */
function addNamespaces(config: HeraldConfig, demo: DemoApp, owners: Map<string, string>, logger: Logger): string[] {
  const problems: string[] = [];
  const wanted = demo.meta.namespaces ?? {};
  const resolved: Array<[string, NamespaceOptions]> = [];
  for (const [ns, raw] of Object.entries(wanted)) {
    if (ns === DEFAULT_NAMESPACE || !/^[A-Za-z0-9_@~=+:-]{1,255}$/.test(ns) || owners.has(ns)) {
      problems.push(`${ns}: not a namespace a demo may define (default, invalid, or another demo's)`);
      continue;
    }
    if (Object.prototype.hasOwnProperty.call(config.namespaces, ns)) {
      logger.info({ demo: demo.name, namespace: ns }, 'demos: the configured namespace options are kept');
      owners.set(ns, demo.name);
      continue;
    }
    const options = { ...(config.namespaces[DEFAULT_NAMESPACE] as NamespaceOptions) };
    for (const [key, value] of Object.entries(isPlainObject(raw) ? raw : {})) {
      const field = NAMESPACE_OPTIONS.get(key);
      const r = field?.(value);
      if (r?.ok === true) r.apply(options);
      else problems.push(`${ns}.${key}: ${r ? r.problems.map((p) => p.message).join('; ') : 'unknown option'}`);
    }
    resolved.push([ns, options]);
  }
  if (problems.length > 0) return problems;
  for (const [ns, options] of resolved) {
    owners.set(ns, demo.name);
    config.namespaces[ns] = options;
  }
  return problems;
}

export class Demos implements DemoHost {
  /** The listener Herald's hooks call, when demos need hooks (see hooks.ts). */
  hookListener: DemoHookListener | undefined;
  private readonly apps: Map<string, DemoApp>;
  private readonly backends = new Map<string, DemoBackend>();
  private closed = false;

  constructor(
    apps: readonly DemoApp[],
    private readonly settings: {
      apiKey: string;
      secret: string;
      sdkPath: string;
      /** The pages' shared files, served at `/demo/shared/` (none when undefined). */
      sharedDir?: string | undefined;
      logger: Logger;
    },
  ) {
    this.apps = new Map(apps.map((a) => [a.name, a]));
  }

  get names(): readonly string[] {
    return [...this.apps.keys()];
  }

  async start(heraldUrl: string): Promise<void> {
    for (const app of this.apps.values()) {
      if (this.closed || this.backends.has(app.name)) continue;
      try {
        const backend = await app.createBackend({
          heraldUrl,
          publicUrl: '',
          apiKey: this.settings.apiKey,
          secret: this.settings.secret,
          base: `/demo/${app.name}`,
        });
        if (this.closed) await backend.close?.();
        else this.backends.set(app.name, backend);
      } catch (err) {
        this.settings.logger.error({ err, demo: app.name }, 'demos: the backend failed to start');
      }
    }
  }

  handle(req: IncomingMessage, res: ServerResponse, urlPath: string): void {
    this.route(req, res, urlPath).catch((err: unknown) => {
      this.settings.logger.error({ err, path: urlPath.slice(0, 100) }, 'demos: request failed');
      if (!res.headersSent) sendJsonError(res, 500, { code: 'HERALD_ERR_INTERNAL', message: 'internal error' });
      else res.destroy();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse, urlPath: string): Promise<void> {
    const url = req.url ?? '/';
    const query = url.includes('?') ? url.slice(url.indexOf('?')) : '';
    const rest = urlPath.slice('/demo/'.length); // '' for `/demo/` and `/demo`
    const slash = rest.indexOf('/');
    const name = slash === -1 ? rest : rest.slice(0, slash);
    const app = this.apps.get(name);
    const sub = slash === -1 ? undefined : rest.slice(slash); // `/`, `/app.js`, `/api/start`
    if (app !== undefined && sub !== undefined && (sub === '/api' || sub.startsWith('/api/'))) {
      return this.api(req, res, app.name, sub);
    }
    req.resume();
    if (urlPath === '/demo' || (app !== undefined && sub === undefined)) {
      res.writeHead(301, { Location: `${urlPath}/${query}`, 'Content-Length': 0 });
      res.end();
      return;
    }
    if (urlPath === '/demo/') {
      if (!readOnly(req, res)) return;
      const body = indexPage([...this.apps.values()].map((a) => ({ name: a.name, meta: a.meta })));
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
        'Cache-Control': 'no-cache',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (urlPath === '/demo/herald.min.js') return sendFile(req, res, this.settings.sdkPath);
    if (name === SHARED && sub !== undefined && this.settings.sharedDir !== undefined) {
      return serveStatic(req, res, this.settings.sharedDir, sub.slice(1));
    }
    if (app === undefined || sub === undefined) return notFound(res, `no demo at ${urlPath.slice(0, 100)}`);
    return serveStatic(req, res, app.publicDir, sub.slice(1));
  }

  private async api(req: IncomingMessage, res: ServerResponse, name: string, sub: string): Promise<void> {
    const backend = this.backends.get(name);
    if (backend === undefined) {
      req.resume();
      sendJsonError(res, 503, { code: 'HERALD_ERR_INTERNAL', message: `the ${name} demo's backend is not running` });
      return;
    }
    const answered = await backend.handle(req, res, sub);
    if (!answered && !res.headersSent) {
      req.resume();
      notFound(res, `no route for ${sub.slice(0, 100)} in the ${name} demo`);
    }
  }

  /** Routes a hook call to the demo that owns its namespace (or, for rpc, its method's prefix). */
  async hook(
    event: string,
    body: Record<string, unknown>,
    owners: ReadonlyMap<string, string>,
  ): Promise<HookAnswer | undefined> {
    let name: string | undefined;
    if (event === 'rpc') {
      const method = typeof body['method'] === 'string' ? body['method'] : '';
      name = method.split(/[./]/, 1)[0];
    } else if (typeof body['channel'] === 'string') {
      name = owners.get(body['channel'].split('.', 1)[0] ?? '');
    }
    const backend = name === undefined ? undefined : this.backends.get(name);
    if (backend?.hook === undefined) return undefined;
    return backend.hook(event, body);
  }

  /** Closes every backend (waiting at most 2 s for them), then the hook listener. */
  async close(): Promise<void> {
    this.closed = true;
    const backends = [...this.backends.entries()];
    this.backends.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(
        backends.map(async ([name, b]) => {
          try {
            await b.close?.();
          } catch (err) {
            this.settings.logger.warn({ err, demo: name }, 'demos: a backend failed to close');
          }
        }),
      ),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000))),
    ]);
    clearTimeout(timer);
    await this.hookListener?.close();
  }
}

/** The base URL a server listening at `address` is reached at from this machine. */
export function loopbackUrl(address: { address: string; family: string; port: number }, secure: boolean): string {
  const any = address.address === '0.0.0.0' || address.address === '::';
  const host = any ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${secure ? 'https' : 'http'}://${host}:${address.port}`;
}
