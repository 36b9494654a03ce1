import type { IncomingMessage, ServerResponse } from 'node:http';

export interface CorsOptions {
  readonly allowedOrigins: readonly string[];
  readonly credentials: boolean;
}

const ALLOW_HEADERS = 'Content-Type, Authorization, X-Herald-Session, Last-Event-ID';

/**
 * CORS for the browser-facing HTTP transports. Allowed origins are echoed (never `*` together with
 * credentials); a disallowed origin gets no CORS headers on what the server serves, so the browser
 * blocks the response, and admission refuses the connection anyway. Error answers (a refused
 * origin, a path that does not exist, a transport switched off) can be read by any page: they hold
 * nothing but the code and message, and without them a browser cannot tell a wrong path from a
 * wrong origin.
 */
export class Cors {
  private readonly any: boolean;
  private readonly origins: ReadonlySet<string>;

  constructor(private readonly opts: CorsOptions) {
    this.any = opts.allowedOrigins.includes('*');
    this.origins = new Set(opts.allowedOrigins.map((o) => o.toLowerCase()));
  }

  allowed(origin: string | undefined): boolean {
    return origin === undefined || this.any || this.origins.has(origin.toLowerCase());
  }

  /** Headers to add to a response for this request (empty when the request has no Origin). */
  headers(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    if (origin === undefined || !this.allowed(origin)) return {};
    const h: Record<string, string> = { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
    if (this.opts.credentials) h['Access-Control-Allow-Credentials'] = 'true';
    return h;
  }

  /** Headers for an error answer: readable by the page whatever its origin (no credentials). */
  errorHeaders(req: IncomingMessage): Record<string, string> {
    const origin = req.headers.origin;
    if (origin === undefined || this.allowed(origin)) return this.headers(req);
    return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
  }

  /** Answers a preflight request. */
  preflight(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (origin === undefined || !this.allowed(origin)) {
      res.writeHead(403, { 'Content-Length': 0 });
      res.end();
      return;
    }
    res.writeHead(204, {
      ...this.headers(req),
      'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
      'Access-Control-Allow-Headers': ALLOW_HEADERS,
      'Access-Control-Max-Age': '600',
      'Content-Length': 0,
    });
    res.end();
  }
}
