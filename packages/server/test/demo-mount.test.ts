/**
 * The demos under `/demo/` (docs/demos.md), mounted as `herald serve` mounts them: the index page,
 * safe static serving (no way out of a demo's `public/`), the API routes to each backend, the
 * option that turns them off, what they change in the configuration (namespaces, HMAC secret,
 * hooks routed to the demo that owns the namespace), and the backends' lifecycle. The Ticker and
 * Progress backends are checked through the server API here; their pages in browser tests
 * (demo-pages.test.ts).
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseServeFlags, resolveConfig } from '@herald/server';
import { untilValue } from '@herald/test-support';
import { api, startChildNode, WsClient } from '@herald/test-support/server';
import { startDemoServer, type DemoServer } from './support/demo-server.js';

const API_KEY = 'demo-test-api-key-0123456789';

/** A GET (or other method) with the path sent exactly as given: no client-side normalization of `..`. */
function raw(
  port: number,
  rawPath: string,
  method = 'GET',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: rawPath, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Requests that try to get out of `/demo/<dir>/` (to `file` beside its public folder, or further),
 * or at hidden or malformed names; `inside` is a file that is there.
 */
const waysOut = (dir: string, file: string, inside: string): string[] =>
  [
    `../${file}`,
    `%2e%2e/${file}`,
    `.%2e/${file}`,
    `..%2f${file}`,
    '%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json',
    `..%5c${file}`,
    `%5c..%5c${file}`,
    `public/../../${file}`,
    `./${inside}`,
    '.hidden',
    `${inside}%00.html`,
    '%E0%A4%A',
    '/etc/passwd',
    '%2Fetc%2Fpasswd',
  ].map((p) => `/demo/${dir}/${p}`);

describe('the demos of the repository', () => {
  let srv: DemoServer;
  let sdk: string;

  beforeAll(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'herald-demo-sdk-'));
    sdk = path.join(dir, 'herald.min.js');
    await writeFile(sdk, 'globalThis.Herald = function Herald() {};\n');
    srv = await startDemoServer({ apiKeys: [API_KEY] }, { sdkPath: sdk });
  });
  afterAll(async () => {
    await srv?.close();
    await rm(path.dirname(sdk), { recursive: true, force: true });
  });

  it('lists every demo on /demo/, in order, with links', async () => {
    const res = await fetch(`${srv.url}/demo/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    expect(srv.demos?.names).toEqual(expect.arrayContaining(['progress', 'ticker']));
    const links = [...html.matchAll(/href="([a-z]+)\/"/g)].map((m) => m[1]);
    expect(links).toEqual(srv.demos?.names);
    expect(html).toContain('<h2>Progress</h2>');
    expect(html).toContain('<h2>Ticker</h2>');
  });

  it('redirects /demo and /demo/<name> to the folder, keeping the query', async () => {
    const a = await raw(srv.port, '/demo');
    expect([a.status, a.headers['location']]).toEqual([301, '/demo/']);
    const b = await raw(srv.port, '/demo/ticker?transport=poll');
    expect([b.status, b.headers['location']]).toEqual([301, '/demo/ticker/?transport=poll']);
  });

  it("serves a demo's page, script and style with their content types, not cached without checking", async () => {
    for (const [file, type, text] of [
      ['', 'text/html; charset=utf-8', '<script src="../herald.min.js"></script>'],
      ['index.html', 'text/html; charset=utf-8', 'app.js'],
      ['app.js', 'text/javascript; charset=utf-8', "fetch('api/config')"],
      ['style.css', 'text/css; charset=utf-8', '.job-meta {'],
    ] as const) {
      const res = await fetch(`${srv.url}/demo/progress/${file}`);
      expect(res.status, file).toBe(200);
      expect(res.headers.get('content-type'), file).toBe(type);
      expect(res.headers.get('cache-control'), file).toBe('no-cache');
      expect(res.headers.get('x-content-type-options'), file).toBe('nosniff');
      expect(await res.text(), file).toContain(text);
      const etag = res.headers.get('etag') ?? '';
      const again = await fetch(`${srv.url}/demo/progress/${file}`, { headers: { 'If-None-Match': etag } });
      expect(again.status, file).toBe(304);
    }
    const head = await raw(srv.port, '/demo/ticker/app.js', 'HEAD');
    expect([head.status, head.body]).toEqual([200, '']);
  });

  it('serves the SDK bundle at /demo/herald.min.js', async () => {
    const res = await fetch(`${srv.url}/demo/herald.min.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await res.text()).toContain('globalThis.Herald');
  });

  it("serves the pages' shared files at /demo/shared/ (each one a page loads), and lists no demo named shared", async () => {
    const loaded = new Set<string>();
    for (const name of srv.demos?.names ?? []) {
      const html = await (await fetch(`${srv.url}/demo/${name}/`)).text();
      const refs = [...html.matchAll(/(?:href|src)="\.\.\/shared\/([^"]+)"/g)].map((m) => m[1] ?? '');
      expect(refs, name).toEqual(expect.arrayContaining(['base.css', 'page.js']));
      for (const file of refs) loaded.add(file);
    }
    expect([...loaded].sort()).toEqual(['app-bar.css', 'base.css', 'page.js', 'toolbar.css']);
    const types: Record<string, string> = { css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8' };
    for (const file of loaded) {
      // Served as a demo's own files are (above).
      const res = await fetch(`${srv.url}/demo/shared/${file}`);
      const got = [res.status, res.headers.get('content-type'), res.headers.get('cache-control')];
      expect(got, file).toEqual([200, types[file.slice(file.lastIndexOf('.') + 1)], 'no-cache']);
    }
    expect(await (await fetch(`${srv.url}/demo/shared/page.js`)).text()).toContain('window.DemoPage');
    expect(srv.demos?.names).not.toContain('shared');
    expect(await (await fetch(`${srv.url}/demo/`)).text()).not.toContain('href="shared/"');
    const post = await raw(srv.port, '/demo/shared/page.js', 'POST');
    expect([post.status, post.headers['allow']]).toEqual([405, 'GET, HEAD']);
  });

  it('refuses every way out of the public folder', async () => {
    const attempts = [
      ...waysOut('progress', 'backend.mjs', 'app.js'),
      '/demo/../package.json',
      '/demo/%2e%2e/package.json',
    ];
    for (const p of attempts) {
      const res = await raw(srv.port, p);
      expect(res.status, p).toBe(404);
      expect(res.body, p).not.toMatch(/createBackend|"workspaces"|root:/);
    }
  });

  it('refuses every way out of the shared folder, which has no index and no API', async () => {
    const attempts = [
      ...waysOut('shared', 'herald-api.mjs', 'page.js'),
      '/demo/shared',
      '/demo/shared/',
      '/demo/shared/api/config',
    ];
    for (const p of attempts) {
      const res = await raw(srv.port, p);
      expect(res.status, p).toBe(404);
      expect(res.body, p).not.toMatch(/createHmac|DEMO_NAMES|"workspaces"|root:/);
    }
  });

  it('answers 404 for an unknown demo, file or API route, and 405 for a write to a file', async () => {
    for (const p of ['/demo/nope/', '/demo/nope/api/config', '/demo/progress/nope.js', '/demo/progress/api/nope']) {
      const res = await raw(srv.port, p);
      expect(res.status, p).toBe(404);
      expect(JSON.parse(res.body).error.code, p).toBe('HERALD_ERR_API_NOT_FOUND');
    }
    const post = await raw(srv.port, '/demo/ticker/app.js', 'POST');
    expect([post.status, post.headers['allow']]).toEqual([405, 'GET, HEAD']);
  });

  it('gives the demos their namespaces, keeps the operator’s, and makes an HMAC secret for the run', () => {
    const ns = srv.config.namespaces;
    expect(ns['progress']).toMatchObject({ historySize: 5, historyTtl: 600_000, clientPublish: false });
    expect(ns['ticker']).toMatchObject({ historySize: 20, historyTtl: 60_000 });
    expect(Buffer.byteLength(srv.config.auth.hmacSecret)).toBeGreaterThanOrEqual(32);
    expect(srv.config.apiKeys).toEqual([API_KEY]);
    // Anonymous clients still connect (the secret only lets backends mint tokens).
    expect(srv.config.auth.anonymousConnect).toBe(true);
  });

  it("runs the Ticker backend: about 20 publications a second under ticker.** while someone watches, and the page's config", async () => {
    const cfg = (await (await fetch(`${srv.url}/demo/ticker/api/config`)).json()) as Record<string, any>;
    expect(cfg).toMatchObject({ heraldUrl: srv.url, channel: 'ticker.**', rate: 20 });
    expect(cfg['quotes']).toHaveLength(10);
    const top = async (): Promise<number> =>
      (await api(srv.url, 'history', { channel: 'ticker.**', limit: 0 }, { key: API_KEY })).body.offset as number;
    // Nobody has watched yet: the backend has published nothing (its first count of viewers was 0).
    expect(await top()).toBe(0);
    const viewer = await WsClient.subscribed(`ws://127.0.0.1:${srv.port}/ws`, 'ticker.**');
    try {
      const first = await untilValue(async () => ((await top()) > 0 ? top() : undefined), 'ticker publications');
      const t0 = Date.now();
      const later = await untilValue(
        async () => ((await top()) >= first + 10 ? top() : undefined),
        'ten more',
        5000,
        20,
      );
      const rate = ((later - first) * 1000) / (Date.now() - t0);
      expect(rate).toBeGreaterThan(5); // 20 a second, with room for a busy machine
      expect(rate).toBeLessThan(40);
      expect(viewer.pubs('ticker.**').length).toBeGreaterThan(0);
    } finally {
      await viewer.close();
    }
  });

  it('runs the Progress backend: POST api/start answers a job whose state is already in Herald', async () => {
    const res = await fetch(`${srv.url}/demo/progress/api/start`, { method: 'POST' });
    expect(res.status).toBe(202);
    const { job, channel, total } = (await res.json()) as { job: string; channel: string; total: number };
    expect(channel).toBe(`progress.${job}`);
    expect(total).toBeGreaterThanOrEqual(50);
    const h = await api(srv.url, 'history', { channel, limit: 1 }, { key: API_KEY });
    expect(h.body.publications[0].data).toMatchObject({ state: 'running', total });
    expect((await fetch(`${srv.url}/demo/progress/api/start`)).status).toBe(405);
  });
});

describe('turning the demos off', () => {
  it('is the demos option: false leaves nothing under /demo/', async () => {
    const srv = await startDemoServer({ demos: false });
    try {
      expect(srv.demos).toBeUndefined();
      for (const p of ['/demo/', '/demo/ticker/', '/demo/herald.min.js']) {
        expect((await raw(srv.port, p)).status, p).toBe(404);
      }
    } finally {
      await srv.close();
    }
  });

  it('herald serve prints the demo URLs and serves them; with --no-demos, neither', async () => {
    const on = await startChildNode([]);
    try {
      expect(on.output()).toContain(`${on.url}/demo/\n`);
      expect(on.output()).toMatch(/ progress +http:\/\/127\.0\.0\.1:\d+\/demo\/progress\//);
      expect((await fetch(`${on.url}/demo/progress/`)).status).toBe(200);
    } finally {
      await on.kill();
    }
    const off = await startChildNode(['--no-demos']);
    try {
      expect(off.output()).not.toContain('/demo/');
      expect((await fetch(`${off.url}/demo/progress/`)).status).toBe(404);
    } finally {
      await off.kill();
    }
  }, 30_000);

  it('is on by default, off with HERALD_DEMOS=false or --no-demos', async () => {
    expect(resolveConfig({}).config.demos).toBe(true);
    expect((await loadConfig({ env: {} })).config.demos).toBe(true);
    expect((await loadConfig({ env: { HERALD_DEMOS: 'false' } })).config.demos).toBe(false);
    const { flags } = parseServeFlags(['--port', '0', '--no-demos']);
    expect(flags.demos).toBe(false);
    expect((await loadConfig({ env: { HERALD_DEMOS: 'true' }, flags })).config.demos).toBe(false);
    expect(() => parseServeFlags(['--no-demos=yes'])).toThrow(ConfigError);
    expect(() => resolveConfig({ demos: 'maybe' })).toThrow(/demos: must be true or false/);
  });
});

/** Demos of a test's own (`examplesDir`): a broken one, an invalid one, and one with hooks. */
const FIXTURE_INDEX = `
import { fileURLToPath } from 'node:url';
const publicDir = fileURLToPath(new URL('./public/', import.meta.url));
export async function loadDemos() {
  return [
    { name: 'broken', error: 'SyntaxError: boom' },
    { name: 'shared', publicDir, meta: { title: 'Shared', description: '' }, createBackend: () => ({ handle: () => false }) },
    {
      name: 'bad', publicDir, meta: { title: 'Bad', description: '', namespaces: { bad: { historySize: 'lots' } } },
      createBackend: () => ({ handle: () => false }),
    },
    {
      name: 'game', publicDir,
      meta: {
        title: 'Game <1>', description: 'a & b', rpc: true,
        namespaces: { game: { hooks: ['publish'], clientPublish: true }, kept: { historySize: 3 } },
      },
      createBackend(options) {
        globalThis.__heraldDemoGame = { options, closed: false };
        return {
          handle(req, res, path) {
            if (path !== '/api/echo') return false;
            res.end(JSON.stringify({ path, url: req.url }));
            return true;
          },
          hook(event, body) {
            if (event === 'publish') {
              return body.data.bad ? { allow: false, reason: 'bad move' } : { allow: true, data: { ...body.data, checked: true } };
            }
            if (event === 'rpc') return { allow: true, data: { sum: body.data.a + body.data.b, method: body.method } };
            return { allow: false, reason: 'no' };
          },
          close() { globalThis.__heraldDemoGame.closed = true; },
        };
      },
    },
  ];
}
`;

interface GameRecord {
  options: { heraldUrl: string; publicUrl: string; apiKey: string; secret: string; base: string };
  closed: boolean;
}
const game = (): GameRecord | undefined => (globalThis as { __heraldDemoGame?: GameRecord }).__heraldDemoGame;

describe('demos of a test’s own', () => {
  let dir: string;
  let srv: DemoServer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'herald-demos-'));
    await mkdir(path.join(dir, 'public'));
    await writeFile(path.join(dir, 'index.mjs'), FIXTURE_INDEX);
    await writeFile(path.join(dir, 'public', 'index.html'), '<h1>game</h1>');
    await writeFile(path.join(dir, 'secret.txt'), 'top secret');
    await symlink(path.join(dir, 'secret.txt'), path.join(dir, 'public', 'link.txt'));
    srv = await startDemoServer(
      { auth: { hmacSecret: 'a-configured-secret-of-32-bytes-or-more' }, namespaces: { kept: { historySize: 9 } } },
      { examplesDir: dir, sdkPath: path.join(dir, 'missing.js') },
    );
  });
  afterAll(async () => {
    await srv?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves out a demo that failed to load and one with invalid namespace options', async () => {
    expect(srv.demos?.names).toEqual(['game']);
    expect(srv.config.namespaces['bad']).toBeUndefined();
    const html = await (await fetch(`${srv.url}/demo/`)).text();
    expect(html).toContain('<h2>Game &lt;1&gt;</h2>');
    expect(html).toContain('<p>a &amp; b</p>');
    expect((await raw(srv.port, '/demo/broken/')).status).toBe(404);
  });

  it("leaves out a demo named shared (where the pages' shared files are), and serves none of those here", async () => {
    expect(srv.demos?.names).not.toContain('shared');
    expect((await raw(srv.port, '/demo/shared/')).status).toBe(404);
    expect((await raw(srv.port, '/demo/shared/index.html')).status).toBe(404);
  });

  it('keeps a namespace the operator configured, and a configured secret', () => {
    expect(srv.config.namespaces['kept']?.historySize).toBe(9);
    expect(srv.config.namespaces['game']).toMatchObject({ hooks: ['publish'], clientPublish: true });
    expect(srv.config.auth.hmacSecret).toBe('a-configured-secret-of-32-bytes-or-more');
  });

  it("gives the backend Herald's loopback URL, the API key, the secret and its mount path", async () => {
    expect(game()?.options).toEqual({
      heraldUrl: srv.url,
      publicUrl: '',
      apiKey: srv.config.apiKeys[0],
      secret: 'a-configured-secret-of-32-bytes-or-more',
      base: '/demo/game',
    });
    const echo = await (await fetch(`${srv.url}/demo/game/api/echo?x=1`)).json();
    expect(echo).toEqual({ path: '/api/echo', url: '/demo/game/api/echo?x=1' });
  });

  it('does not follow a link out of the public folder; a missing SDK bundle is a 404', async () => {
    expect((await raw(srv.port, '/demo/game/link.txt')).status).toBe(404);
    expect((await raw(srv.port, '/demo/game/')).body).toBe('<h1>game</h1>');
    expect((await raw(srv.port, '/demo/herald.min.js')).status).toBe(404);
  });

  it("routes publish hooks to the demo that owns the namespace, and rpc by the method's prefix", async () => {
    expect(srv.config.auth.hooks.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/hooks$/);
    expect(srv.config.auth.hooks.rpc).toBe(true);
    const c = await WsClient.connect(`ws://127.0.0.1:${srv.port}/ws`);
    try {
      expect((await c.request({ cmd: 'subscribe', channel: 'game.1' }))['result']).toBeDefined();
      expect((await c.request({ cmd: 'publish', channel: 'game.1', data: { x: 1 } }))['result']).toBeDefined();
      const pub = await c.waitFor((f) => f['push'] === 'pub', 'the publication');
      expect(pub['data']).toEqual({ x: 1, checked: true });
      const refused = await c.request({ cmd: 'publish', channel: 'game.1', data: { bad: true } });
      expect(refused['error']).toMatchObject({ code: 'HERALD_ERR_HOOK_DENIED', message: 'bad move' });
      const rpc = await c.request({ cmd: 'rpc', method: 'game.add', data: { a: 1, b: 2 } });
      expect(rpc['result']).toEqual({ data: { sum: 3, method: 'game.add' } });
      const other = await c.request({ cmd: 'rpc', method: 'other.add', data: {} });
      expect(other['error']?.code).toBe('HERALD_ERR_HOOK_DENIED');
    } finally {
      await c.close();
    }
  });

  it("refuses hook calls that do not carry Herald's key", async () => {
    const res = await fetch(`${srv.config.auth.hooks.url}/publish`, {
      method: 'POST',
      body: JSON.stringify({ event: 'publish', channel: 'game.1', data: {} }),
    });
    expect(res.status).toBe(401);
  });

  it('closes the backends when the server closes', async () => {
    const other = await startDemoServer({}, { examplesDir: dir });
    const record = game();
    expect(record?.options.heraldUrl).toBe(other.url);
    await other.close();
    expect(record?.closed).toBe(true);
  });
});
