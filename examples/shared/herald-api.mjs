// @ts-check
/**
 * What a demo backend needs from Herald, with no dependency: calls to the server API
 * (`POST /api/<method>` with the API key) and connection tokens (HS256 JWTs signed with the
 * server's `auth.hmacSecret`). Copy this file with an example; a real backend would use the
 * publisher client instead.
 */
import { createHmac, randomUUID } from 'node:crypto';

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
