/**
 * Serving the demos' files (their `public/` folders and the SDK bundle): GET and HEAD only, paths
 * decoded once and refused when a segment is `..`, `.`, hidden (`.env`) or holds a backslash or NUL,
 * symbolic links followed only when they stay inside the folder, a content type by extension, and
 * `Cache-Control: no-cache` with an ETag, so an edited file shows on the next reload.
 */
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { sendJsonError } from '../http/admission.js';

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
};

export function contentType(file: string): string {
  return CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream';
}

export function notFound(res: ServerResponse, what = 'not found'): void {
  sendJsonError(res, 404, { code: 'HERALD_ERR_API_NOT_FOUND', message: what });
}

/**
 * The file a URL path (relative to `root`, still percent-encoded) names inside `root`, or undefined
 * when the path is not allowed. `''` and paths ending in `/` name `index.html`.
 */
export function resolveInside(root: string, urlPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return undefined;
  const segments = decoded.split('/').filter((s) => s !== '');
  if (segments.some((s) => s.startsWith('.'))) return undefined; // `..`, `.`, `.env`, `.git`
  if (decoded === '' || decoded.endsWith('/')) segments.push('index.html');
  const base = path.resolve(root);
  const file = path.join(base, ...segments);
  return file.startsWith(base + path.sep) ? file : undefined;
}

/** True for GET and HEAD; answers 405 to anything else. */
export function readOnly(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  sendJsonError(
    res,
    405,
    { code: 'HERALD_ERR_API_METHOD_NOT_ALLOWED', message: `${String(req.method)} is not allowed here` },
    { Allow: 'GET, HEAD' },
  );
  return false;
}

/** Serves `file` (already known to be allowed): 404 when it is not a regular file inside `root`. */
export async function sendFile(req: IncomingMessage, res: ServerResponse, file: string, root?: string): Promise<void> {
  if (!readOnly(req, res)) return;
  let size: number;
  let mtime: Date;
  try {
    // A link is followed only when its target is inside the folder too.
    if (root !== undefined) {
      const [realRoot, realFile] = await Promise.all([realpath(root), realpath(file)]);
      if (!realFile.startsWith(realRoot + path.sep)) return notFound(res);
    }
    const st = await stat(file);
    if (!st.isFile()) return notFound(res);
    size = st.size;
    mtime = st.mtime;
  } catch {
    return notFound(res);
  }
  if (res.destroyed) return;
  const etag = `W/"${size.toString(16)}-${Math.floor(mtime.getTime()).toString(16)}"`;
  const headers = {
    'Content-Type': contentType(file),
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    ETag: etag,
  };
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': size });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const stream = createReadStream(file);
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
}

/** Serves the file `urlPath` names inside `root` (see `resolveInside`), or 404. */
export async function serveStatic(
  req: IncomingMessage,
  res: ServerResponse,
  root: string,
  urlPath: string,
): Promise<void> {
  const file = resolveInside(root, urlPath);
  if (file === undefined) return notFound(res);
  return sendFile(req, res, file, root);
}
