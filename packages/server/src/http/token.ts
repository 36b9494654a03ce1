import type { IncomingMessage } from 'node:http';

/**
 * The connection token of a request: `Authorization: Bearer <token>`, else the `token` query
 * parameter (a browser's EventSource and WebSocket cannot set headers). Never logged.
 */
export function requestToken(req: IncomingMessage, queryToken?: string): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (m !== null) return m[1];
  }
  if (queryToken !== undefined) return queryToken;
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') || undefined;
}
