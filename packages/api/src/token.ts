/**
 * Minting the JWTs Herald verifies (docs/auth.md): connection tokens (who the user is, until when,
 * and what they may do per channel) and subscription tokens (one user may subscribe to one
 * channel). Signed with jose, HS256 with the server's `auth.hmacSecret` by default.
 *
 * The claims are checked here as the server checks them (packages/server/src/auth/), so a token the
 * server would refuse for its claims fails at once, with the code the server would give
 * (`HERALD_ERR_AUTH_TOKEN_CLAIMS`), instead of when a client connects.
 */
import { createSecretKey, KeyObject, type webcrypto } from 'node:crypto';
import { SignJWT } from 'jose';
import { checkChannel } from '@herald/protocol';
import { HeraldApiError } from './errors.js';

/** The signing algorithms Herald accepts. */
export type TokenAlgorithm =
  | 'HS256'
  | 'HS384'
  | 'HS512'
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA';

/**
 * What a connection token allows per channel (the `channels` claim): lists of exact channels
 * (`chat.room1`) and subtrees (`news.**`); `$sub` stands for the user id (`user.$sub.**`).
 */
export interface ChannelGrants {
  readonly subscribe?: readonly string[];
  readonly publish?: readonly string[];
  readonly history?: readonly string[];
  readonly presence?: readonly string[];
}

export interface TokenClaims {
  /** The user id (`sub`): a non-empty string of at most 255 characters; `""` only in a subscription token for an anonymous connection. */
  readonly sub: string;
  /** A connection token's permissions (the `channels` claim). Without it, the user may do what namespaces allow everyone. */
  readonly channels?: ChannelGrants;
  /** Makes a subscription token for this one stream (a channel or `x.**`) instead of a connection token. */
  readonly channel?: string;
  /** Any JSON value shown to others in presence (`info` of a connection token, `chanInfo` of a subscription token). */
  readonly info?: unknown;
  /** Lifetime: seconds (`3600`) or a duration (`'90s'`, `'30m'`, `'1h'`, `'7d'`). Default `'1h'`. */
  readonly ttl?: number | string;
  /** The `iss` claim: required to match when the server sets `auth.issuer`. */
  readonly issuer?: string;
  /** The `aud` claim: must be or contain the server's `auth.audience` when it sets one. */
  readonly audience?: string | readonly string[];
}

export interface MintOptions {
  /** Default `HS256` for a secret; for a private key, the algorithm its type implies (RSA: RS256, P-256: ES256, Ed25519: EdDSA). */
  readonly alg?: TokenAlgorithm;
  /** The `kid` header, to pick one of the server's public keys. */
  readonly kid?: string;
  /** The issue time (`iat`), from which `ttl` runs: a Date or ms since the epoch. Default now. */
  readonly now?: Date | number;
}

/** The key that signs: the server's `auth.hmacSecret` (text or its UTF-8 bytes), or a private key. */
export type SigningKey = string | Uint8Array | KeyObject | webcrypto.CryptoKey;

/** Longest `sub` the server accepts. */
export const MAX_USER_ID_LENGTH = 255;
/** Most patterns per action in the `channels` claim. */
export const MAX_GRANTS_PER_ACTION = 256;
/** Shortest HMAC secret the server accepts (RFC 7518). */
export const MIN_HMAC_SECRET_BYTES = 32;

const ACTIONS = ['subscribe', 'publish', 'history', 'presence'] as const;
const SEGMENT_SAFE = /^[A-Za-z0-9_@~=+:-]+$/;
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Signs a Herald token. With a secret (the server's `auth.hmacSecret`):
 *
 * ```ts
 * const token = await mintToken(
 *   { sub: '42', channels: { subscribe: ['chat.**', 'user.$sub.**'], publish: ['chat.room1'] }, info: { name: 'Ann' }, ttl: '1h' },
 *   process.env.HERALD_SECRET!,
 * );
 * const dm = await mintToken({ sub: '42', channel: 'dm.42-57', ttl: '5m' }, process.env.HERALD_SECRET!);
 * ```
 *
 * Rejects with a `HeraldApiError`: `HERALD_ERR_AUTH_TOKEN_CLAIMS` for claims the server would
 * refuse, `HERALD_ERR_AUTH_TOKEN_ALGORITHM` for a key that cannot sign with the algorithm (an HMAC
 * secret shorter than 32 bytes among them).
 */
export async function mintToken(claims: TokenClaims, key: SigningKey, opts: MintOptions = {}): Promise<string> {
  const payload = buildClaims(claims);
  const { alg, signingKey } = signingKeyOf(key, opts.alg);
  const now = opts.now === undefined ? Date.now() : opts.now instanceof Date ? opts.now.getTime() : opts.now;
  if (!Number.isFinite(now)) throw claimsError('"now" must be a valid time');
  const iat = Math.floor(now / 1000);
  const jwt = new SignJWT(payload)
    .setProtectedHeader({ alg, typ: 'JWT', ...(opts.kid !== undefined ? { kid: opts.kid } : {}) })
    .setSubject(claims.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds(claims.ttl ?? '1h'));
  if (claims.issuer !== undefined) jwt.setIssuer(claims.issuer);
  if (claims.audience !== undefined)
    jwt.setAudience(typeof claims.audience === 'string' ? claims.audience : [...claims.audience]);
  try {
    return await jwt.sign(signingKey);
  } catch (err) {
    throw new HeraldApiError(
      'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
      `cannot sign with ${alg}: ${err instanceof Error ? err.message : String(err)}`,
      { retriable: false, cause: err },
    );
  }
}

/** The claims besides `sub`, `iat` and `exp`, checked as the server checks them. */
function buildClaims(c: TokenClaims): Record<string, unknown> {
  const subscription = c.channel !== undefined;
  if (typeof c.sub !== 'string') throw claimsError('"sub" (the user id) must be a string: write "42", not 42');
  if (c.sub === '' && !subscription) throw claimsError('"sub" (the user id) must not be empty');
  if (c.sub.length > MAX_USER_ID_LENGTH) throw claimsError(`"sub" is longer than ${MAX_USER_ID_LENGTH} characters`);
  const out: Record<string, unknown> = {};
  if (c.info !== undefined) {
    let json: string | undefined;
    try {
      json = JSON.stringify(c.info);
    } catch {
      json = undefined;
    }
    if (json === undefined) throw claimsError('"info" must be a JSON value');
    out['info'] = JSON.parse(json);
  }
  if (subscription) {
    if (c.channels !== undefined) {
      throw claimsError('a subscription token ("channel") carries no "channels" grants');
    }
    const check = checkChannel(c.channel);
    if (!check.ok) throw claimsError(`"channel" is not a valid channel: ${check.reason}`);
    out['channel'] = c.channel;
    return out;
  }
  if (c.channels !== undefined) out['channels'] = grantsClaim(c.channels, c.sub);
  return out;
}

function grantsClaim(grants: ChannelGrants, sub: string): Record<string, string[]> {
  if (typeof grants !== 'object' || grants === null || Array.isArray(grants)) {
    throw claimsError('"channels" must be an object like {subscribe: ["chat.**"], publish: [...]}');
  }
  const claim: Record<string, string[]> = {};
  for (const [action, list] of Object.entries(grants) as [string, unknown][]) {
    if (list === undefined) continue;
    if (!(ACTIONS as readonly string[]).includes(action)) {
      throw claimsError(`"channels" has an unknown key ${JSON.stringify(action)}; the keys are ${ACTIONS.join(', ')}`);
    }
    if (!Array.isArray(list)) throw claimsError(`"channels.${action}" must be a list of channel patterns`);
    if (list.length > MAX_GRANTS_PER_ACTION) {
      throw claimsError(`"channels.${action}" has more than ${MAX_GRANTS_PER_ACTION} patterns`);
    }
    claim[action] = list.map((p: unknown, i) => {
      const where = `channels.${action}[${i}]`;
      if (typeof p !== 'string') throw claimsError(`"${where}" must be a string`);
      if (p.includes('$sub') && !SEGMENT_SAFE.test(sub)) {
        throw claimsError(`"${where}" uses $sub, but the user id has characters a channel segment cannot hold`);
      }
      const check = checkChannel(p.split('$sub').join(sub));
      if (!check.ok) throw claimsError(`"${where}" is not a valid channel pattern: ${check.reason}`);
      return p;
    });
  }
  return claim;
}

function ttlSeconds(ttl: number | string): number {
  let seconds: number | undefined;
  if (typeof ttl === 'number') seconds = ttl;
  else {
    const m = /^\s*(\d+)\s*([smhd]?)\s*$/.exec(ttl);
    if (m !== null) seconds = Number(m[1]) * (UNITS[m[2] || 's'] as number);
  }
  if (seconds === undefined || !Number.isSafeInteger(seconds) || seconds < 1) {
    throw claimsError(
      `"ttl" must be a whole number of seconds >= 1 or a duration like '30m', '1h', '7d'; got ${String(ttl)}`,
    );
  }
  return seconds;
}

/** The algorithm and the key jose signs with. */
function signingKeyOf(
  key: SigningKey,
  alg: TokenAlgorithm | undefined,
): { alg: TokenAlgorithm; signingKey: KeyObject | webcrypto.CryptoKey | Uint8Array } {
  if (typeof key === 'string' || key instanceof Uint8Array) {
    const bytes = typeof key === 'string' ? new TextEncoder().encode(key) : key;
    if (bytes.length < MIN_HMAC_SECRET_BYTES) {
      throw algorithmError(
        `an HMAC secret needs at least ${MIN_HMAC_SECRET_BYTES} bytes (RFC 7518; the server refuses shorter ones), got ${bytes.length}`,
      );
    }
    const chosen = alg ?? 'HS256';
    if (!chosen.startsWith('HS')) throw algorithmError(`a secret signs HS256, HS384 or HS512, not ${chosen}`);
    return { alg: chosen, signingKey: createSecretKey(bytes) };
  }
  if (key instanceof KeyObject) {
    const chosen = alg ?? impliedAlgorithm(key);
    if (chosen === undefined) throw algorithmError('give opts.alg: the key type implies no algorithm');
    return { alg: chosen, signingKey: key };
  }
  if (alg === undefined) throw algorithmError('give opts.alg with a CryptoKey');
  return { alg, signingKey: key };
}

/** The algorithm a key type implies (RSA keys could also sign RS384/RS512: give `alg` for those). */
const IMPLIED: Readonly<Record<string, TokenAlgorithm>> = {
  rsa: 'RS256',
  'rsa-pss': 'PS256',
  ed25519: 'EdDSA',
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};

function impliedAlgorithm(key: KeyObject): TokenAlgorithm | undefined {
  if (key.type === 'secret') return 'HS256';
  const type = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : key.asymmetricKeyType;
  return type !== undefined ? IMPLIED[type] : undefined;
}

function claimsError(message: string): HeraldApiError {
  return new HeraldApiError('HERALD_ERR_AUTH_TOKEN_CLAIMS', `mintToken: ${message}`, { retriable: false });
}

function algorithmError(message: string): HeraldApiError {
  return new HeraldApiError('HERALD_ERR_AUTH_TOKEN_ALGORITHM', `mintToken: ${message}`, { retriable: false });
}
