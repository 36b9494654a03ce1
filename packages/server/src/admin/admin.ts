/**
 * The admin page at `/admin` (docs/operations.md, "Admin page"), on while `admin.password` is set:
 *
 *     GET  /admin/              the page (HTML; its script and styles under /admin/static/)
 *     GET  /admin/login         the login form;  POST: log in (form field `password`)
 *     POST /admin/logout        log out
 *     GET  /admin/api/session   this session's CSRF token and what the page needs to start
 *     GET  /admin/api/overview  every node's figures for the charts (`?since=<ms>`: newer samples only)
 *     GET  /admin/api/channels  the busiest channels, merged across nodes
 *     GET  /admin/api/channel   `?name=`: subscribers per node, the history tail, presence
 *     GET  /admin/api/connections  `?q=&user=&client=&limit=`: connections of every node
 *     POST /admin/api/disconnect   `{"client"|"user", "reconnect"}`
 *     POST /admin/api/publish      `{"channel", "data"}`
 *
 * Security: a session cookie (HttpOnly, SameSite=Strict, Path=/admin, Secure over TLS; see
 * admin-session.ts); every POST but the login carries the session's `X-Herald-CSRF` token, and a
 * request to the API or a POST whose `Origin` or `Sec-Fetch-Site` says it came from another site is
 * refused; wrong passwords are counted per remote address (5 a minute, then 429); every answer has a
 * strict Content-Security-Policy (no inline script), `X-Frame-Options: DENY`, `Cache-Control:
 * no-store` and `Referrer-Policy: no-referrer`. Nothing the page gets holds a secret: no password,
 * key or configuration value.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, HeraldError, type ErrorBody } from '@herald/protocol';
import { FailureLimiter } from '../auth/failure-limiter.js';
import type { HeraldConfig } from '../config/config.js';
import { toErrorBody } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import type { Logger } from '../core/logger.js';
import type { NodeStats } from '../core/node-stats.js';
import { readBody } from '../http/body.js';
import { VERSION } from '../version.js';
import { AdminQueries, parseFilter, parseTarget } from './admin-queries.js';
import { ADMIN_COOKIE, AdminSessions, readCookie, type AdminSession } from './admin-session.js';

/** What the admin page needs of the server (`HeraldServer` has all of it). */
export interface AdminHost {
  readonly config: HeraldConfig;
  readonly hub: Hub;
  readonly logger: Logger;
  readonly nodeStats: NodeStats | undefined;
  health(): { alive: boolean; ready: boolean; body: Record<string, unknown> };
  info(): Record<string, unknown>;
}

/** Wrong passwords allowed per remote address and minute. */
export const ADMIN_MAX_FAILURES = 5;
const CSRF_HEADER = 'x-herald-csrf';
/** Largest login or action body read. */
const MAX_FORM_BYTES = 4096;

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

/** The files under /admin/static/: name → where it is read from and its type. */
const STATIC_FILES: Readonly<Record<string, { file: () => string; type: string }>> = {
  'admin.js': { file: () => `${PUBLIC_DIR}admin.js`, type: 'text/javascript; charset=utf-8' },
  'admin.css': { file: () => `${PUBLIC_DIR}admin.css`, type: 'text/css; charset=utf-8' },
  'favicon.svg': { file: () => `${PUBLIC_DIR}favicon.svg`, type: 'image/svg+xml' },
  'uPlot.iife.min.js': { file: () => vendorFile('uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { file: () => vendorFile('uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

/**
 * uPlot's files: copied next to the page's by scripts/copy-assets.mjs (dist/admin/public/vendor/);
 * read from the uplot package itself when they are not there (running from the sources).
 */
function vendorFile(name: string): string {
  return `${PUBLIC_DIR}vendor/${name}`;
}

function vendorFallback(name: string): string {
  return createRequire(import.meta.url).resolve(`uplot/dist/${name}`);
}

export class AdminHandler {
  private readonly sessions: AdminSessions;
  private readonly limiter = new FailureLimiter({
    maxFailures: ADMIN_MAX_FAILURES,
    windowMs: 60_000,
    maxTracked: 10_000,
  });
  private readonly queries: AdminQueries;
  private readonly logger: Logger;
  private readonly files = new Map<string, Promise<Buffer>>();

  constructor(private readonly host: AdminHost) {
    const { password, secret } = host.config.admin;
    this.sessions = new AdminSessions({ password, secret });
    this.logger = host.logger.child({ component: 'admin' });
    // The server serves the other nodes' requests (serveOtherNodes) whether or not the page is on.
    this.queries = new AdminQueries(host);
    if (secret === '') {
      this.logger.info(
        'admin page on; admin.secret is empty: logins last as long as this process and work on this node only ' +
          '(set one secret on every node behind a load balancer)',
      );
    }
  }

  /** Serves a request whose path is `/admin` or under `/admin/`. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, url: string): void {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    this.route(req, res, path, url).catch((err: unknown) => {
      const body = toErrorBody(err, this.logger);
      if (!res.headersSent) sendError(res, ErrorCodes[body.code].status, body);
      else res.destroy();
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string, url: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (path === '/admin') {
      req.resume();
      res.writeHead(308, { Location: '/admin/' });
      res.end();
      return;
    }
    const sub = path.slice('/admin/'.length);
    if (sub.startsWith('static/')) {
      req.resume();
      if (!allow(req, res, ['GET', 'HEAD'])) return;
      await this.serveStatic(req, res, sub.slice('static/'.length));
      return;
    }
    if (sub === 'login') {
      if (method === 'POST') await this.login(req, res);
      else {
        req.resume();
        if (!allow(req, res, ['GET', 'HEAD', 'POST'])) return;
        if (this.session(req) !== undefined) redirect(res, '/admin/');
        else await this.sendLogin(res, 200, '');
      }
      return;
    }
    const session = this.session(req);
    if (sub === '' || sub === 'index.html') {
      req.resume();
      if (!allow(req, res, ['GET', 'HEAD'])) return;
      if (session === undefined) redirect(res, '/admin/login');
      else await this.sendPage(res);
      return;
    }
    if (sub === 'logout') {
      req.resume();
      if (!allow(req, res, ['POST'])) return;
      this.guardAction(req, session);
      this.sessions.revoke(session as AdminSession);
      res.setHeader('Set-Cookie', this.cookie(req, '', 0));
      sendJson(res, 200, { loggedOut: true });
      return;
    }
    if (sub.startsWith('api/')) {
      await this.api(req, res, sub.slice('api/'.length), url, session);
      return;
    }
    req.resume();
    sendError(res, 404, { code: 'HERALD_ERR_API_NOT_FOUND', message: `no admin page at ${path.slice(0, 100)}` });
  }

  // ---- login ----------------------------------------------------------------------------------

  private session(req: IncomingMessage): AdminSession | undefined {
    return this.sessions.verify(readCookie(req.headers.cookie, ADMIN_COOKIE));
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ip = req.socket.remoteAddress;
    if (!sameSite(req)) {
      req.resume();
      throw new HeraldError('HERALD_ERR_ADMIN_FORBIDDEN', 'the login form was posted from another site');
    }
    const blocked = this.limiter.blockedFor(ip);
    if (blocked > 0) {
      req.resume();
      res.setHeader('Retry-After', String(blocked));
      await this.sendLogin(res, 429, `Too many wrong passwords: try again in ${blocked} s.`);
      return;
    }
    const raw = await readBody(req, MAX_FORM_BYTES);
    const type = req.headers['content-type'] ?? '';
    let password: unknown;
    if (/^application\/json\b/i.test(type)) {
      try {
        password = (JSON.parse(raw.toString('utf8')) as { password?: unknown } | null)?.password;
      } catch {
        password = undefined;
      }
    } else {
      password = new URLSearchParams(raw.toString('utf8')).get('password') ?? undefined;
    }
    if (typeof password !== 'string' || !this.sessions.checkPassword(password)) {
      this.limiter.fail(ip);
      const now = this.limiter.blockedFor(ip);
      if (now > 0) {
        this.logger.warn(
          { code: 'HERALD_ERR_ADMIN_RATE_LIMITED', ip, seconds: now },
          `admin login: ${ADMIN_MAX_FAILURES} wrong passwords from this address within a minute: refused for ${now} s`,
        );
      } else {
        this.logger.info({ code: 'HERALD_ERR_ADMIN_UNAUTHORIZED', ip }, 'admin login: wrong password');
      }
      await this.sendLogin(res, 401, 'Wrong password.');
      return;
    }
    const { value } = this.sessions.issue();
    this.logger.info({ ip }, 'admin login');
    res.setHeader('Set-Cookie', this.cookie(req, value, Math.floor(this.sessions.ttlMs / 1000)));
    redirect(res, '/admin/');
  }

  private cookie(req: IncomingMessage, value: string, maxAgeSeconds: number): string {
    const secure = overTls(req) ? '; Secure' : '';
    return `${ADMIN_COOKIE}=${value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`;
  }

  /**
   * Refuses a state-changing request without a session, from another site, or without the
   * session's CSRF token.
   */
  private guardAction(req: IncomingMessage, session: AdminSession | undefined): asserts session is AdminSession {
    if (session === undefined) throw unauthorized();
    if (!sameSite(req)) {
      throw new HeraldError(
        'HERALD_ERR_ADMIN_FORBIDDEN',
        'the request came from another site (Origin, Sec-Fetch-Site)',
      );
    }
    const token = req.headers[CSRF_HEADER];
    if (!this.sessions.checkCsrf(session, typeof token === 'string' ? token : undefined)) {
      throw new HeraldError('HERALD_ERR_ADMIN_FORBIDDEN', 'missing or wrong X-Herald-CSRF header');
    }
  }

  // ---- API ------------------------------------------------------------------------------------

  private async api(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    url: string,
    session: AdminSession | undefined,
  ): Promise<void> {
    const post = name === 'disconnect' || name === 'publish';
    // Only an action's body is read, once it passed every check.
    const ready = post && session !== undefined && req.method === 'POST' && sameSite(req);
    if (!ready) req.resume();
    if (session === undefined) throw unauthorized();
    if (!sameSite(req)) {
      throw new HeraldError(
        'HERALD_ERR_ADMIN_FORBIDDEN',
        'the request came from another site (Origin, Sec-Fetch-Site)',
      );
    }
    const params = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
    const q = this.queries;
    if (post) {
      if (!allow(req, res, ['POST'])) return;
      try {
        this.guardAction(req, session);
      } catch (err) {
        req.resume();
        throw err;
      }
      const body = await readJson(req, this.host.config.limits.maxApiBodySize);
      const ip = req.socket.remoteAddress;
      if (name === 'disconnect') {
        const target = parseTarget(body);
        const r = await q.disconnect(target);
        this.logger.info({ ip, ...target, disconnected: r.disconnected }, 'admin: disconnect');
        sendJson(res, 200, r);
      } else {
        const r = await q.publish(body['channel'], body['data']);
        this.logger.info({ ip, channel: r.channel, offset: r.offset }, 'admin: publish');
        sendJson(res, 200, r);
      }
      return;
    }
    if (!allow(req, res, ['GET', 'HEAD'])) return;
    switch (name) {
      case 'session': {
        sendJson(res, 200, {
          csrf: this.sessions.csrfToken(session),
          node: this.host.hub.nodeId,
          version: VERSION,
          engine: this.host.config.engine,
          sampleInterval: this.host.config.admin.sampleInterval,
          expires: session.expires,
          multiNode: this.host.hub.control.available,
        });
        return;
      }
      case 'overview': {
        const since = Number(params.get('since') ?? 0);
        const health = this.host.health();
        const info = this.host.info();
        sendJson(res, 200, {
          node: this.host.hub.nodeId,
          now: Date.now(),
          sampleInterval: this.host.config.admin.sampleInterval,
          health: { alive: health.alive, ready: health.ready, ...pick(health.body, ['state', 'engine', 'store']) },
          info: pick(info, [
            'version',
            'engine',
            'uptimeSeconds',
            'connections',
            'connectionsByTransport',
            'subscriptions',
            'streams',
            'published',
            'deliveries',
            'connectionsTotal',
            'slowDisconnects',
            'badFrames',
            'rssBytes',
            'heapUsedBytes',
          ]),
          nodes: q.nodes(Number.isFinite(since) ? since : 0),
        });
        return;
      }
      case 'channels':
        sendJson(res, 200, q.channels());
        return;
      case 'channel': {
        const channel = params.get('name');
        if (channel === null || channel === '')
          throw new HeraldError('HERALD_ERR_API_BAD_REQUEST', 'give ?name=<channel>');
        sendJson(res, 200, await q.channel(channel));
        return;
      }
      case 'connections': {
        const filter = parseFilter(Object.fromEntries(params));
        sendJson(res, 200, await q.connections(filter));
        return;
      }
      default:
        sendError(res, 404, { code: 'HERALD_ERR_API_NOT_FOUND', message: `no admin API "${name.slice(0, 64)}"` });
    }
  }

  // ---- files ----------------------------------------------------------------------------------

  private read(name: string, file: () => string): Promise<Buffer> {
    let p = this.files.get(name);
    if (p === undefined) {
      p = readFile(file()).catch((err: unknown) => {
        if (name.startsWith('uPlot')) return readFile(vendorFallback(name));
        throw err;
      });
      p.catch(() => this.files.delete(name));
      this.files.set(name, p);
    }
    return p;
  }

  private async serveStatic(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    const entry = Object.prototype.hasOwnProperty.call(STATIC_FILES, name) ? STATIC_FILES[name] : undefined;
    if (entry === undefined) {
      sendError(res, 404, { code: 'HERALD_ERR_API_NOT_FOUND', message: 'no such file' });
      return;
    }
    const body = await this.read(name, entry.file);
    res.writeHead(200, { 'Content-Type': entry.type, 'Content-Length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private async sendPage(res: ServerResponse): Promise<void> {
    const body = await this.read('index.html', () => `${PUBLIC_DIR}index.html`);
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': body.length });
    res.end(body);
  }

  /** The login form, with `message` (fixed text, escaped anyway) above it. */
  private async sendLogin(res: ServerResponse, status: number, message: string): Promise<void> {
    const page = (await this.read('login.html', () => `${PUBLIC_DIR}login.html`)).toString('utf8');
    const html = page.replace(
      '<!--message-->',
      message === '' ? '' : `<p class="login-error" role="alert">${escapeHtml(message)}</p>`,
    );
    res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html) });
    res.end(html);
  }
}

function unauthorized(): HeraldError {
  return new HeraldError('HERALD_ERR_ADMIN_UNAUTHORIZED', 'log in at /admin/login first (or the session ended)');
}

/**
 * False when the browser says the request came from another site: an `Origin` whose host is not
 * the one the request was sent to, or `Sec-Fetch-Site` other than `same-origin` (or `none`: typed
 * in the address bar). Requests without either header (curl, old browsers) pass: the cookie's
 * SameSite and the CSRF token still stand.
 */
export function sameSite(req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.headers.origin;
  // `null`: what a browser sends for a same-origin POST from a page with `Referrer-Policy: no-referrer`
  // (as these pages are), and for a sandboxed frame: `Sec-Fetch-Site` above told those apart.
  if (origin === undefined || origin === 'null') return true;
  let originHost: string;
  try {
    originHost = new URL(origin).host.toLowerCase();
  } catch {
    return false;
  }
  const hosts = [req.headers.host, req.headers[':authority'], req.headers['x-forwarded-host']]
    .flatMap((h) => (typeof h === 'string' ? h.split(',') : []))
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
  return hosts.some((h) => h === originHost || defaultPort(h) === defaultPort(originHost));
}

/** `host` without `:80` or `:443`. */
function defaultPort(host: string): string {
  return host.replace(/:(80|443)$/, '');
}

function overTls(req: IncomingMessage): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
  const proto = req.headers['x-forwarded-proto'];
  return typeof proto === 'string' && proto.split(',')[0]?.trim().toLowerCase() === 'https';
}

function allow(req: IncomingMessage, res: ServerResponse, methods: readonly string[]): boolean {
  if (methods.includes(req.method ?? 'GET')) return true;
  sendError(
    res,
    405,
    { code: 'HERALD_ERR_API_METHOD_NOT_ALLOWED', message: `use ${methods.join(' or ')}` },
    { Allow: methods.join(', ') },
  );
  return false;
}

async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'];
  if (type !== undefined && !/^application\/json\b/i.test(type)) {
    req.resume();
    throw new HeraldError('HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
  }
  const raw = await readBody(req, limit);
  let body: unknown;
  try {
    body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HeraldError('HERALD_ERR_API_BAD_REQUEST', 'the body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new HeraldError('HERALD_ERR_API_BAD_REQUEST', 'the body must be a JSON object');
  }
  return body as Record<string, unknown>;
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { Location: location, 'Content-Length': 0 });
  res.end();
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, error: ErrorBody, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error });
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

function pick(o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
