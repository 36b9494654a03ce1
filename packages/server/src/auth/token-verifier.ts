/**
 * Verifies the JWTs the application issues: connection tokens (who the user is, until when, and
 * which channels they may use) and subscription tokens (one user may subscribe to one channel).
 *
 * Keys come only from the configuration: an HMAC secret, PEM public keys, and/or a JWKS URL set by
 * the operator (fetched with jose's `createRemoteJWKSet`: cached, fetched again for an unknown `kid`
 * at most once per cooldown). A token's own `jku`, `x5u`, `jwk` and `x5c` headers are never read,
 * so a token cannot name the key that verifies it. Every failure is a `HeraldError` with a stable
 * `HERALD_ERR_AUTH_*` code; none of them quotes the token.
 *
 * Order of checks, cheapest and least informative first: length (before any parsing), shape and
 * header, algorithm allow-list, signature (with every candidate key), then the claims (`exp`,
 * `nbf`, `iss`, `aud`, `sub`, `channels` / `channel`). A forged token therefore learns nothing about
 * its claims: an expired token with a bad signature is "invalid", not "expired".
 */
import { HeraldError, type ErrorCode } from '@herald/protocol';
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWSHeaderParameters } from 'jose';
import { systemClock, type Clock } from '../core/clock.js';
import { silentLogger, type Logger } from '../core/logger.js';
import {
  HMAC_ALGORITHMS,
  JWT_ALGORITHMS,
  loadPublicKey,
  type JwtAlgorithm,
  type LoadedPublicKey,
  type PublicKeyInput,
} from './keys.js';
import { ChannelPermissions } from './permissions.js';

export interface TokenVerifierOptions {
  /** HS256/384/512 secret, as UTF-8 text; '' or absent: no HMAC key. */
  readonly hmacSecret?: string;
  /** PEM public keys (RSA, EC, Ed25519), each with an optional `kid`. */
  readonly publicKeys?: readonly PublicKeyInput[];
  /** A JWKS URL set by the operator; '' or absent: none. */
  readonly jwksUrl?: string;
  /** How long a fetched JWKS is used before it is fetched again, in ms. Default 10 minutes. */
  readonly jwksCacheTtl?: number;
  /** Least time between two fetches of the JWKS (an unknown `kid` waits for it), in ms. Default 30 s. */
  readonly jwksCooldown?: number;
  /** How long a JWKS fetch may take, in ms. Default 5 s. */
  readonly jwksTimeout?: number;
  /** Algorithms accepted at all (further narrowed per key type). Default: all of `JWT_ALGORITHMS`. */
  readonly algorithms?: readonly JwtAlgorithm[];
  /** Required `iss`; '' or absent: not checked. */
  readonly issuer?: string;
  /** Required `aud` (the token's `aud` must be or contain it); '' or absent: not checked. */
  readonly audience?: string;
  /** Leeway for `exp` and `nbf`, in ms. Default 0. */
  readonly clockTolerance?: number;
  /** Longest token accepted, in characters; longer ones are refused before any parsing. Default 8192. */
  readonly maxTokenLength?: number;
  readonly clock?: Clock;
  /** Where JWKS fetch failures are reported (tokens are never logged). */
  readonly logger?: Logger;
}

/** Who a connection token says the client is. */
export interface ConnectionIdentity {
  /** The `sub` claim: never empty. */
  readonly userId: string;
  /** `exp` in ms since the epoch; undefined when the token has no `exp` (it never expires). */
  readonly expiresAt: number | undefined;
  /** The `info` claim, if any: shown in presence. */
  readonly info?: unknown;
  readonly permissions: ChannelPermissions;
}

/** What a subscription token grants: `userId` may subscribe to `channel` until `expiresAt`. */
export interface SubscriptionGrant {
  readonly userId: string;
  /** The exact stream named by the token (a channel or a subtree pattern). */
  readonly channel: string;
  readonly expiresAt: number | undefined;
  /** The token's `info` claim, if any: channel-specific info for presence. */
  readonly info?: unknown;
}

export const DEFAULT_MAX_TOKEN_LENGTH = 8192;
/** Longest `sub` accepted (user ids travel in every presence entry and hook call). */
export const MAX_USER_ID_LENGTH = 255;

/** A key jose's `jwtVerify` takes (a secret, a KeyObject, or a key from the JWKS). */
type Key = Exclude<Parameters<typeof jwtVerify>[1], (...args: never[]) => unknown>;
type JwksResolver = ReturnType<typeof createRemoteJWKSet>;

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function fail(code: ErrorCode, message: string): HeraldError {
  return new HeraldError(code, message);
}

/** A value from a token, safe and short enough for an error message. */
function quote(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 61)}...` : text);
}

export class TokenVerifier {
  private readonly hmacKey: Uint8Array | undefined;
  private readonly publicKeys: readonly LoadedPublicKey[];
  private readonly jwks: JwksResolver | undefined;
  private readonly accepted: ReadonlySet<JwtAlgorithm>;
  private readonly issuer: string | undefined;
  private readonly audience: string | undefined;
  private readonly toleranceSeconds: number;
  private readonly maxTokenLength: number;
  private readonly clock: Clock;
  private readonly logger: Logger;

  /** Throws an `Error` (configuration problem) when a key cannot be used. */
  constructor(opts: TokenVerifierOptions) {
    this.clock = opts.clock ?? systemClock;
    this.logger = opts.logger ?? silentLogger;
    this.hmacKey =
      opts.hmacSecret !== undefined && opts.hmacSecret !== '' ? new TextEncoder().encode(opts.hmacSecret) : undefined;
    this.publicKeys = (opts.publicKeys ?? []).map((k, i) => {
      try {
        return loadPublicKey(k);
      } catch (err) {
        throw new Error(`public key ${k.kid ? `"${k.kid}"` : `#${i + 1}`} ${(err as Error).message}`, { cause: err });
      }
    });
    if (opts.jwksUrl !== undefined && opts.jwksUrl !== '') {
      const url = new URL(opts.jwksUrl);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('jwksUrl must be an http(s) URL');
      this.jwks = createRemoteJWKSet(url, {
        cacheMaxAge: opts.jwksCacheTtl ?? 600_000,
        cooldownDuration: opts.jwksCooldown ?? 30_000,
        timeoutDuration: opts.jwksTimeout ?? 5_000,
      });
    }
    const allowed = new Set(opts.algorithms ?? JWT_ALGORITHMS);
    const usable = new Set<JwtAlgorithm>();
    if (this.hmacKey !== undefined) for (const a of HMAC_ALGORITHMS) usable.add(a);
    for (const k of this.publicKeys) for (const a of k.algorithms) usable.add(a);
    if (this.jwks !== undefined) for (const a of JWT_ALGORITHMS) if (!HMAC_ALGORITHMS.includes(a)) usable.add(a);
    this.accepted = new Set([...usable].filter((a) => allowed.has(a)));
    this.issuer = opts.issuer !== undefined && opts.issuer !== '' ? opts.issuer : undefined;
    this.audience = opts.audience !== undefined && opts.audience !== '' ? opts.audience : undefined;
    this.toleranceSeconds = (opts.clockTolerance ?? 0) / 1000;
    this.maxTokenLength = opts.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH;
  }

  /** Whether any key is configured. Without one, every token is refused (never taken as anonymous). */
  get configured(): boolean {
    return this.hmacKey !== undefined || this.publicKeys.length > 0 || this.jwks !== undefined;
  }

  /** The algorithms a token may use with the configured keys. */
  get algorithms(): JwtAlgorithm[] {
    return JWT_ALGORITHMS.filter((a) => this.accepted.has(a));
  }

  /**
   * Verifies a connection token. Rejects with a `HeraldError`: `HERALD_ERR_AUTH_TOKEN_TOO_LARGE`,
   * `_MALFORMED`, `_ALGORITHM`, `_INVALID`, `_EXPIRED`, `_NOT_YET_VALID`, `_CLAIMS`, or
   * `HERALD_ERR_AUTH_KEYS_UNAVAILABLE` when the JWKS cannot be fetched.
   */
  async verifyConnectionToken(token: unknown): Promise<ConnectionIdentity> {
    const claims = await this.verify(token, 'connection');
    if (claims['channel'] !== undefined) {
      throw fail(
        'HERALD_ERR_AUTH_TOKEN_CLAIMS',
        'this is a subscription token (it has a "channel" claim); it cannot be used to connect',
      );
    }
    const userId = subjectOf(claims, false);
    const permissions = ChannelPermissions.fromClaim(claims['channels'], userId);
    return {
      userId,
      expiresAt: expiryOf(claims),
      ...(claims['info'] !== undefined ? { info: claims['info'] } : {}),
      permissions,
    };
  }

  /**
   * Verifies a subscription token for `channel` (the exact stream being subscribed to) and the
   * connection's `userId` ('' for an anonymous connection, which then needs a token with `sub: ""`).
   * Besides the errors of `verifyConnectionToken`, rejects with
   * `HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH` when the token names another channel or another user.
   */
  async verifySubscriptionToken(token: unknown, channel: string, userId: string): Promise<SubscriptionGrant> {
    const claims = await this.verify(token, 'subscription');
    const tokenChannel = claims['channel'];
    if (typeof tokenChannel !== 'string' || tokenChannel === '') {
      throw fail(
        'HERALD_ERR_AUTH_TOKEN_CLAIMS',
        'a subscription token needs a "channel" claim naming the channel (a connection token is not one)',
      );
    }
    const sub = subjectOf(claims, true);
    if (tokenChannel !== channel) {
      throw fail(
        'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH',
        `the subscription token is for channel ${quote(tokenChannel)}, not ${quote(channel)}`,
      );
    }
    if (sub !== userId) {
      throw fail('HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH', 'the subscription token was issued for another user');
    }
    return {
      userId: sub,
      channel: tokenChannel,
      expiresAt: expiryOf(claims),
      ...(claims['info'] !== undefined ? { info: claims['info'] } : {}),
    };
  }

  // ---- the checks -----------------------------------------------------------------------------

  private async verify(token: unknown, kind: 'connection' | 'subscription'): Promise<JWTPayload> {
    if (typeof token !== 'string') throw fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', `the ${kind} token must be a string`);
    if (token.length > this.maxTokenLength) {
      throw fail(
        'HERALD_ERR_AUTH_TOKEN_TOO_LARGE',
        `the ${kind} token is ${token.length} characters long; the limit is ${this.maxTokenLength} (auth.maxTokenLength)`,
      );
    }
    const header = parseHeader(token);
    const alg = header.alg;
    if (typeof alg !== 'string' || alg === '') {
      throw fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', 'the token header has no "alg"');
    }
    if (alg.toLowerCase() === 'none') {
      throw fail('HERALD_ERR_AUTH_TOKEN_ALGORITHM', 'unsigned tokens (alg "none") are never accepted');
    }
    if (!this.configured) {
      throw fail(
        'HERALD_ERR_AUTH_TOKEN_INVALID',
        'no token key is configured on this server (auth.*), so no token is valid',
      );
    }
    const accepted = this.accepted as ReadonlySet<string>;
    if (!accepted.has(alg)) {
      const list = this.algorithms.join(', ') || 'no algorithm';
      throw fail(
        'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
        `alg ${quote(alg)} is not accepted with the configured keys (accepted: ${list})`,
      );
    }
    const jwsAlg = alg as JwtAlgorithm;
    const options = {
      algorithms: [jwsAlg],
      currentDate: new Date(this.clock.now()),
      clockTolerance: this.toleranceSeconds,
      ...(this.issuer !== undefined ? { issuer: this.issuer } : {}),
      ...(this.audience !== undefined ? { audience: this.audience } : {}),
    };
    let tried = 0;
    for await (const key of this.candidates(jwsAlg, header, token)) {
      tried += 1;
      try {
        const { payload } = await jwtVerify(token, key, options);
        return payload;
      } catch (err) {
        // A wrong signature, or a key that does not fit (TypeError): the next candidate may verify.
        if (errorCode(err) === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' || err instanceof TypeError) continue;
        throw mapJoseError(err);
      }
    }
    if (tried === 0 && typeof header.kid === 'string') {
      throw fail('HERALD_ERR_AUTH_TOKEN_INVALID', `no configured key has kid ${quote(header.kid)}`);
    }
    throw fail('HERALD_ERR_AUTH_TOKEN_INVALID', 'the signature does not verify with any configured key');
  }

  /** The keys that may verify a token with this `alg` and header, most specific first. */
  private async *candidates(alg: JwtAlgorithm, header: JWSHeaderParameters, token: string): AsyncGenerator<Key> {
    if (HMAC_ALGORITHMS.includes(alg)) {
      if (this.hmacKey !== undefined) yield this.hmacKey;
      return;
    }
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const fits = this.publicKeys.filter((k) => k.algorithms.includes(alg));
    // Keys with the token's kid first, then keys configured without a kid.
    for (const k of fits) if (kid !== undefined && k.kid === kid) yield k.key;
    for (const k of fits) if (k.kid === '' || kid === undefined) yield k.key;
    if (this.jwks === undefined) return;
    const [protectedPart = '', payload = '', signature = ''] = token.split('.');
    let key: Key;
    try {
      key = await this.jwks(header, { protected: protectedPart, payload, signature });
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ERR_JWKS_NO_MATCHING_KEY') return;
      if (code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' && isAsyncIterable(err)) {
        for await (const k of err) yield k as Key;
        return;
      }
      this.logger.warn({ code: 'HERALD_ERR_AUTH_KEYS_UNAVAILABLE', err: errorText(err) }, 'cannot fetch the JWKS');
      throw fail('HERALD_ERR_AUTH_KEYS_UNAVAILABLE', 'the token keys (auth.jwksUrl) cannot be fetched; retry later');
    }
    yield key;
  }
}

/** Decodes the protected header without trusting anything in it yet. */
function parseHeader(token: string): JWSHeaderParameters {
  const parts = token.split('.');
  if (parts.length === 5) {
    throw fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', 'encrypted tokens (JWE) are not supported; sign the token (JWS)');
  }
  if (parts.length !== 3) {
    throw fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', 'a token has three base64url parts separated by dots');
  }
  for (const p of parts) {
    if (!BASE64URL.test(p) || p.length % 4 === 1) {
      throw fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', 'the token is not base64url text');
    }
  }
  let header: unknown;
  try {
    header = JSON.parse(strictUtf8.decode(Buffer.from(parts[0] as string, 'base64url')));
  } catch {
    throw fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', 'the token header is not JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', 'the token header is not a JSON object');
  }
  return header as JWSHeaderParameters;
}

function subjectOf(claims: JWTPayload, allowEmpty: boolean): string {
  const sub = claims.sub;
  if (typeof sub !== 'string') {
    throw fail(
      'HERALD_ERR_AUTH_TOKEN_CLAIMS',
      sub === undefined
        ? 'the token has no "sub" claim (the user id)'
        : 'claim "sub" must be a string (write the user id as text: "42")',
    );
  }
  if (sub === '' && !allowEmpty) throw fail('HERALD_ERR_AUTH_TOKEN_CLAIMS', 'claim "sub" (the user id) is empty');
  if (sub.length > MAX_USER_ID_LENGTH) {
    throw fail('HERALD_ERR_AUTH_TOKEN_CLAIMS', `claim "sub" is longer than ${MAX_USER_ID_LENGTH} characters`);
  }
  return sub;
}

function expiryOf(claims: JWTPayload): number | undefined {
  return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** jose's errors, after the signature was checked (or while checking it), as Herald codes. */
function mapJoseError(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  const code = errorCode(err);
  const claim = typeof err === 'object' && err !== null && 'claim' in err ? String(err.claim) : '';
  switch (code ?? '') {
    case 'ERR_JWT_EXPIRED':
      return fail('HERALD_ERR_AUTH_TOKEN_EXPIRED', 'the token has expired (exp is in the past)');
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'nbf') {
        const reason = typeof err === 'object' && err !== null && 'reason' in err ? err.reason : '';
        if (reason === 'check_failed') {
          return fail('HERALD_ERR_AUTH_TOKEN_NOT_YET_VALID', 'the token is not valid yet (nbf is in the future)');
        }
      }
      return fail('HERALD_ERR_AUTH_TOKEN_CLAIMS', `claim "${claim}": ${errorText(err)}`);
    case 'ERR_JWT_INVALID':
    case 'ERR_JWS_INVALID':
      return fail('HERALD_ERR_AUTH_TOKEN_MALFORMED', `the token is malformed: ${errorText(err)}`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return fail('HERALD_ERR_AUTH_TOKEN_ALGORITHM', `the token cannot be verified: ${errorText(err)}`);
    default:
      // A key that does not fit the algorithm (TypeError) or anything unforeseen: refuse.
      return fail('HERALD_ERR_AUTH_TOKEN_INVALID', 'the token cannot be verified with the configured keys');
  }
}
