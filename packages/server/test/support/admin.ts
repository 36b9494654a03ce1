/**
 * Test support for the admin page (/admin): logging in as a browser would, and calling its JSON API
 * with the session cookie and the CSRF token.
 */
import type { HeraldConfig } from '../../src/config/config.js';

export const ADMIN_PASSWORD = 'admin-password-0123456789';
export const ADMIN_SECRET = 'admin-secret-abcdefghijklmnopqrstuvwxyz';

/** The `admin` settings of a test server with the admin page on. */
export function adminConfig(over: Partial<HeraldConfig['admin']> = {}): HeraldConfig['admin'] {
  return { password: ADMIN_PASSWORD, secret: ADMIN_SECRET, sampleInterval: 60_000, ...over };
}

export interface Login {
  status: number;
  /** `Set-Cookie` as sent. */
  setCookie: string | null;
  /** `herald_admin=...`, for a `Cookie` header. */
  cookie: string;
  location: string | null;
  body: string;
  retryAfter: string | null;
}

/** POSTs the login form. */
export async function login(
  base: string,
  password = ADMIN_PASSWORD,
  headers: Record<string, string> = {},
): Promise<Login> {
  const res = await fetch(`${base}/admin/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ password }).toString(),
  });
  const setCookie = res.headers.get('set-cookie');
  return {
    status: res.status,
    setCookie,
    cookie: setCookie?.split(';')[0] ?? '',
    location: res.headers.get('location'),
    body: await res.text(),
    retryAfter: res.headers.get('retry-after'),
  };
}

/** A logged-in admin: its cookie and CSRF token, and calls to the admin API with them. */
export class AdminClient {
  constructor(
    readonly base: string,
    readonly cookie: string,
    readonly csrf: string,
  ) {}

  static async login(base: string, password = ADMIN_PASSWORD): Promise<AdminClient> {
    const l = await login(base, password);
    if (l.status !== 303) throw new Error(`admin login failed: ${l.status} ${l.body.slice(0, 200)}`);
    const s = await fetch(`${base}/admin/api/session`, { headers: { Cookie: l.cookie } });
    if (s.status !== 200) throw new Error(`admin session: ${s.status}`);
    const { csrf } = (await s.json()) as { csrf: string };
    return new AdminClient(base, l.cookie, csrf);
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; text: string }> {
    const res = await fetch(`${this.base}/admin/api/${path}`, { headers: { Cookie: this.cookie, ...headers } });
    const text = await res.text();
    return { status: res.status, body: parse(text), text };
  }

  /** A POST to the admin API with the cookie and (unless `csrf` is null) the CSRF token. */
  async post(
    path: string,
    body: unknown,
    opts: { csrf?: string | null; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: any; text: string }> {
    const csrf = opts.csrf === undefined ? this.csrf : opts.csrf;
    const res = await fetch(`${this.base}/admin/api/${path}`, {
      method: 'POST',
      headers: {
        Cookie: this.cookie,
        'Content-Type': 'application/json',
        ...(csrf !== null ? { 'X-Herald-CSRF': csrf } : {}),
        ...(opts.headers ?? {}),
      },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: parse(text), text };
  }
}

function parse(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
