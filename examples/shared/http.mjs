// @ts-check
/**
 * Small HTTP helpers for the demo backends (plain `node:http`, no framework): JSON answers, JSON
 * bodies with a size limit, a backend's `handle` made of JSON routes, and the URL a page should use
 * to reach Herald.
 */

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 */
export function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

/**
 * Answers `{ error: { code, message } }`, the shape Herald's own errors have.
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {string} code
 * @param {string} message
 */
export function sendError(res, status, code, message) {
  sendJson(res, status, { error: { code, message } });
}

/**
 * Reads a JSON request body of at most `limit` bytes; an empty body is `{}`. Rejects with an Error
 * carrying `status` (400 or 413).
 * @param {import('node:http').IncomingMessage} req
 * @param {number} [limit]
 * @returns {Promise<any>}
 */
export async function readJson(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error(`body larger than ${limit} bytes`), { status: 413 });
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw Object.assign(new Error('body is not JSON'), { status: 400 });
  }
}

/** What a route throws to answer `status` with `{ error: { code, message } }`. */
export class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The request's JSON object (at most 16 KB); else an HttpError 400 (or, from `readJson`, an Error
 * with `status` 400 or 413).
 * @param {import('node:http').IncomingMessage} req
 * @returns {Promise<Record<string, any>>}
 */
export async function readObject(req) {
  const v = await readJson(req, 16_384);
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new HttpError(400, 'BAD_REQUEST', 'Send a JSON object');
  return v;
}

/**
 * A backend's `handle(req, res, path)` made of JSON routes, keyed `'<METHOD> <path>'` (like
 * `'POST /api/say'`): it answers 200 with what the route resolves to; an HttpError with its status
 * and `{ error: { code, message } }`; a body that is not JSON, or too large, 400 or 413; any other
 * error (Herald refused a call) 502; an unknown path 404 and another method 405. Paths outside
 * `/api/` are not its (false).
 * @param {Record<string, (req: import('node:http').IncomingMessage) => Promise<unknown>>} routes
 */
export function jsonRoutes(routes) {
  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   * @param {string} path
   */
  return async (req, res, path) => {
    if (!path.startsWith('/api/')) return false;
    const route = routes[`${req.method} ${path}`];
    try {
      if (route === undefined) {
        const known = Object.keys(routes).some((k) => k.endsWith(` ${path}`));
        throw known
          ? new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method} is not allowed here`)
          : new HttpError(404, 'NOT_FOUND', `no endpoint ${path}`);
      }
      sendJson(res, 200, await route(req));
    } catch (err) {
      const status = /** @type {{ status?: unknown }} */ (err).status;
      if (err instanceof HttpError) sendError(res, err.status, err.code, err.message);
      else if (status === 400 || status === 413) {
        sendError(res, status, 'BAD_REQUEST', 'Send a JSON object (of at most 16 KB)');
      } else {
        const e = /** @type {{ message?: string }} */ (err);
        sendError(res, 502, 'HERALD', `Herald refused: ${e.message ?? String(err)}`);
      }
    }
    return true;
  };
}

/**
 * Herald's URL for the page: `publicUrl` when set, else the origin the page was loaded from (demo
 * mode: Herald serves the page itself).
 * @param {import('node:http').IncomingMessage} req
 * @param {string} publicUrl
 */
export function pageHeraldUrl(req, publicUrl) {
  if (publicUrl) return publicUrl.replace(/\/+$/, '');
  const secure = /** @type {{ encrypted?: boolean }} */ (req.socket).encrypted === true;
  const host = req.headers.host ?? req.headers[':authority'] ?? 'localhost';
  return `${secure ? 'https' : 'http'}://${host}`;
}
