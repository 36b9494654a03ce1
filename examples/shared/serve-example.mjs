// @ts-check
/**
 * Runs one example on its own, against a Herald running elsewhere:
 *
 *     node examples/<name>/server.mjs --herald http://localhost:8080 --api-key KEY [--secret SECRET] [--port 3000]
 *
 * serves the example's `public/` at `/`, the SDK bundle at `/herald.min.js`, what the pages share
 * (this folder's `public/`) at `/shared/`, its backend under `/api/`, and its backend hooks (if it has any) at `/hooks/<event>` (set Herald's `auth.hooks.url`
 * to `http://<this host>:<port>/hooks`). Options may also come from the environment: HERALD_URL,
 * HERALD_API_KEY, HERALD_SECRET (Herald's `auth.hmacSecret`), PORT.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readJson, sendError, sendJson } from './http.mjs';

const TYPES = /** @type {Record<string, string>} */ ({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
});

const USAGE = `usage: node server.mjs --herald URL --api-key KEY [--secret SECRET] [--port 3000] [--host H] [--public-herald URL] [--hook-key KEY]
  --herald         Herald's base URL for the server API (HERALD_URL; default http://localhost:8080)
  --api-key        one of Herald's apiKeys (HERALD_API_KEY)
  --secret         Herald's auth.hmacSecret, to mint connection tokens (HERALD_SECRET)
  --public-herald  Herald's URL as browsers reach it, if not the same as --herald
  --hook-key       Herald's auth.hooks.apiKey, checked on hook calls, if set
  --port, --host   where this example listens (PORT; default 3000, every interface)`;

/** What every page loads as `../shared/<file>` (base.css, the layouts, page.js). */
const SHARED_DIR = fileURLToPath(new URL('./public', import.meta.url));

/** The SDK's `<script>` bundle: the installed `@herald/client`, else the one built in this repository. */
function sdkPath() {
  try {
    return fileURLToPath(import.meta.resolve('@herald/client/herald.min.js'));
  } catch {
    return fileURLToPath(new URL('../../packages/client/dist/herald.min.js', import.meta.url));
  }
}

/**
 * The file a URL path names inside `root`, or undefined when not allowed (`..`, hidden files, `\`).
 * @param {string} root
 * @param {string} urlPath
 */
function fileInside(root, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s.startsWith('.'))) return undefined;
  if (decoded === '' || decoded.endsWith('/')) segments.push('index.html');
  const file = path.join(root, ...segments);
  return file.startsWith(root + path.sep) ? file : undefined;
}

/**
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {string | undefined} file
 * @param {string} root  the file must really be inside it (links included)
 */
async function sendFile(req, res, file, root) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return sendError(res, 405, 'METHOD_NOT_ALLOWED', 'GET only');
  try {
    if (file === undefined || !(await realpath(file)).startsWith((await realpath(root)) + path.sep)) throw 0;
    const st = await stat(file);
    if (!st.isFile()) throw 0;
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Length': st.size,
      'Cache-Control': 'no-cache',
      'X-Content-Type-Options': 'nosniff',
    });
    if (req.method === 'HEAD') res.end();
    else
      createReadStream(file)
        .on('error', () => res.destroy())
        .pipe(res);
  } catch {
    sendError(res, 404, 'NOT_FOUND', 'not found');
  }
}

/**
 * Starts the example whose `server.mjs` calls this with its `import.meta.url`.
 * @param {string} exampleUrl
 * @param {string[]} [argv]
 */
export async function serveExample(exampleUrl, argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: {
      herald: { type: 'string', default: process.env.HERALD_URL ?? 'http://localhost:8080' },
      'api-key': { type: 'string', default: process.env.HERALD_API_KEY ?? '' },
      secret: { type: 'string', default: process.env.HERALD_SECRET ?? '' },
      'public-herald': { type: 'string', default: '' },
      'hook-key': { type: 'string', default: '' },
      port: { type: 'string', default: process.env.PORT ?? '3000' },
      host: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || values['api-key'] === '') {
    console.log(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const { meta, createBackend } = await import(new URL('./backend.mjs', exampleUrl).href);
  const publicDir = fileURLToPath(new URL('./public', exampleUrl));
  const sdk = sdkPath();
  const heraldUrl = values.herald.replace(/\/+$/, '');
  const backend = await createBackend({
    heraldUrl,
    publicUrl: values['public-herald'] || heraldUrl,
    apiKey: values['api-key'],
    secret: values.secret,
    base: '',
  });

  /** @type {import('node:http').RequestListener} */
  const serve = async (req, res) => {
    const url = req.url ?? '/';
    const urlPath = url.split('?', 1)[0] ?? '/';
    try {
      if (urlPath === '/herald.min.js') return await sendFile(req, res, sdk, path.dirname(sdk));
      if (urlPath.startsWith('/shared/')) {
        return await sendFile(req, res, fileInside(SHARED_DIR, urlPath.slice('/shared/'.length)), SHARED_DIR);
      }
      if (urlPath.startsWith('/api/')) {
        if (!(await backend.handle(req, res, urlPath)) && !res.headersSent)
          sendError(res, 404, 'NOT_FOUND', 'no route');
        return;
      }
      if (urlPath.startsWith('/hooks/') && req.method === 'POST') {
        const key = values['hook-key'];
        if (key !== '' && req.headers.authorization !== `apikey ${key}`)
          return sendError(res, 401, 'UNAUTHORIZED', 'not Herald');
        const body = await readJson(req, 1024 * 1024);
        const answer = backend.hook ? await backend.hook(urlPath.slice('/hooks/'.length), body) : undefined;
        return sendJson(res, 200, answer ?? { allow: false, reason: 'this example has no such hook' });
      }
      return await sendFile(req, res, fileInside(publicDir, urlPath.slice(1)), publicDir);
    } catch (err) {
      console.error(`${meta.title}: ${req.method} ${urlPath}:`, err);
      if (!res.headersSent) sendError(res, 500, 'INTERNAL', 'internal error');
      else res.destroy();
    }
  };
  const server = createServer((req, res) => void serve(req, res));
  const port = Number(values.port);
  await new Promise((resolve) => server.listen(port, values.host, () => resolve(undefined)));
  const namespaces = JSON.stringify(meta.namespaces ?? {});
  console.log(`${meta.title} is running at http://localhost:${port}/ (Herald: ${heraldUrl})
Herald should have these namespaces (config file \`namespaces\`, or HERALD_NAMESPACES='${namespaces}'),
and allow this page's origin (allowedOrigins; the default "*" does).`);

  const stop = async () => {
    server.close();
    server.closeAllConnections();
    await backend.close?.();
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  return { server, backend, stop };
}
