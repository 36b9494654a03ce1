// @ts-check
/**
 * What a demo backend needs from Herald, with no dependency: calls to the server API
 * (`POST /api/<method>` with the API key), and connection tokens (HS256 JWTs signed with the
 * server's `auth.hmacSecret`) made and checked (a token a page sends back). Copy this file with an example; a real backend would use the
 * publisher client instead.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

/**
 * @param {string} url   Herald's base URL, like `http://localhost:8000`
 * @param {string} apiKey one of the server's `apiKeys`
 * @returns {(method: string, body?: object) => Promise<any>} resolves with the answer's JSON; rejects
 *   with an Error carrying `code` and `status` when Herald refuses
 */
export function heraldApi(url, apiKey) {
  const base = url.replace(/\/+$/, '');
  return async (method, body = {}) => {
    const res = await fetch(`${base}/api/${method}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `apikey ${apiKey}` },
      body: JSON.stringify(body),
    });
    const answer = /** @type {any} */ (await res.json().catch(() => ({})));
    if (!res.ok) {
      const e = /** @type {{ code?: string, message?: string }} */ (answer.error ?? {});
      throw Object.assign(new Error(`${method}: ${e.message ?? `HTTP ${res.status}`}`), {
        code: e.code,
        status: res.status,
      });
    }
    return answer;
  };
}

/** @param {Buffer | string} data */
const b64url = (data) => Buffer.from(data).toString('base64url');

/**
 * A connection token for one user: `sub` (the user id) and `info` (what presence shows), valid for
 * `ttlSeconds`.
 * @param {string} secret the server's `auth.hmacSecret`
 * @param {{ sub?: string, info?: unknown, ttlSeconds?: number }} claims
 */
export function mintToken(secret, { sub = randomUUID(), info, ttlSeconds = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = { sub, iat: now, exp: now + ttlSeconds, ...(info === undefined ? {} : { info }) };
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(payload));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

/**
 * The claims of an HS256 JWT signed with `secret` (as `mintToken` makes them), or undefined.
 * @param {string} secret
 * @param {unknown} token
 * @param {{ ignoreExpiry?: boolean }} [opts]
 * @returns {Record<string, unknown> | undefined}
 */
export function verifyToken(secret, token, opts = {}) {
  if (typeof token !== 'string') return undefined;
  const [head, body, sig, extra] = token.split('.');
  if (head === undefined || body === undefined || sig === undefined || extra !== undefined) return undefined;
  const want = createHmac('sha256', secret).update(`${head}.${body}`).digest();
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
  try {
    if (JSON.parse(Buffer.from(head, 'base64url').toString('utf8')).alg !== 'HS256') return undefined;
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    if (typeof claims !== 'object' || claims === null) return undefined;
    if (opts.ignoreExpiry !== true && typeof claims.exp === 'number' && claims.exp * 1000 < Date.now())
      return undefined;
    return claims;
  } catch {
    return undefined;
  }
}
