// @ts-check
/**
 * Small HTTP helpers for the demo backends (plain `node:http`, no framework): JSON answers, JSON
 * bodies with a size limit, and the URL a page should use to reach Herald.
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
