/**
 * The admin page's login: the password check, the session cookie and the CSRF token.
 *
 * - The password is compared in constant time, as SHA-256 digests (equal lengths whatever was typed).
 * - A session is the cookie `herald_admin` = `<expiry>.<nonce>.<mac>`: the expiry in ms (base 36), 16
 *   random bytes, and an HMAC-SHA256 of both. Nothing is stored: any node whose key is the same
 *   accepts it. The key is derived from `admin.secret` (random per process when empty) and from the
 *   password's digest, so changing the password ends every session.
 * - The CSRF token of a session is another HMAC of its nonce: the page reads it from
 *   `GET /admin/api/session` (a cross-origin page cannot read that answer) and sends it as
 *   `X-Herald-CSRF` with every POST.
 * - Logging out forgets the session on this node (until it would have expired) and clears the
 *   cookie; another node would still take a copy of the cookie until its expiry.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const ADMIN_COOKIE = 'herald_admin';
/** How long a login lasts. */
export const ADMIN_SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Most sessions a node remembers as logged out. */
const MAX_REVOKED = 10_000;

export interface AdminSession {
  /** The random part of the cookie: what logging out revokes and what the CSRF token is made from. */
  readonly nonce: string;
  /** When it ends, in ms since the epoch. */
  readonly expires: number;
}

export interface AdminSessionsOptions {
  readonly password: string;
  /** `admin.secret`; '' for a random key of this process. */
  readonly secret: string;
  readonly ttlMs?: number;
  readonly now?: () => number;
}

export class AdminSessions {
  private readonly key: Buffer;
  private readonly passwordDigest: Buffer;
  /** How long a login lasts, in ms. */
  readonly ttlMs: number;
  private readonly now: () => number;
  /** Logged-out sessions, by nonce, with their expiry. */
  private readonly revoked = new Map<string, number>();

  constructor(opts: AdminSessionsOptions) {
    this.passwordDigest = sha256(opts.password);
    const secret = opts.secret !== '' ? Buffer.from(opts.secret, 'utf8') : randomBytes(32);
    this.key = createHmac('sha256', secret).update('herald-admin-session\0').update(this.passwordDigest).digest();
    this.ttlMs = opts.ttlMs ?? ADMIN_SESSION_TTL_MS;
    this.now = opts.now ?? Date.now;
  }

  /** Whether `given` is the password (constant time). */
  checkPassword(given: string): boolean {
    return timingSafeEqual(sha256(given), this.passwordDigest);
  }

  /** A new session's cookie value. */
  issue(): { value: string; session: AdminSession } {
    const expires = this.now() + this.ttlMs;
    const nonce = randomBytes(16).toString('base64url');
    const body = `${expires.toString(36)}.${nonce}`;
    return { value: `${body}.${this.mac('session', body)}`, session: { nonce, expires } };
  }

  /** The session a cookie value holds, or undefined when it is malformed, forged, expired or logged out. */
  verify(value: string | undefined): AdminSession | undefined {
    if (value === undefined || value.length > 200) return undefined;
    const parts = value.split('.');
    if (parts.length !== 3) return undefined;
    const [exp, nonce, mac] = parts as [string, string, string];
    if (!safeEqual(mac, this.mac('session', `${exp}.${nonce}`))) return undefined;
    const expires = parseInt(exp, 36);
    if (!Number.isSafeInteger(expires) || expires <= this.now()) return undefined;
    if (this.revoked.has(nonce)) return undefined;
    return { nonce, expires };
  }

  /** The CSRF token of a session. */
  csrfToken(session: AdminSession): string {
    return this.mac('csrf', session.nonce);
  }

  checkCsrf(session: AdminSession, token: string | undefined): boolean {
    return token !== undefined && safeEqual(token, this.csrfToken(session));
  }

  /** Logs a session out (on this node). */
  revoke(session: AdminSession): void {
    const now = this.now();
    if (this.revoked.size >= MAX_REVOKED) {
      for (const [nonce, expires] of this.revoked) if (expires <= now) this.revoked.delete(nonce);
      // Still full: the oldest go (they expire first).
      for (const nonce of this.revoked.keys()) {
        if (this.revoked.size < MAX_REVOKED) break;
        this.revoked.delete(nonce);
      }
    }
    this.revoked.set(session.nonce, session.expires);
  }

  private mac(purpose: string, text: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\0${text}`).digest('base64url');
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Constant-time comparison of two strings (as digests, so lengths may differ). */
function safeEqual(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/** The value of cookie `name` in a `Cookie` header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
