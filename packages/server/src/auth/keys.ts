/**
 * Token keys and the algorithms each kind of key may verify. The allow-list is per key type: an HMAC
 * secret verifies only HS*, an RSA key only RS* and PS*, an EC key only the ES* of its curve, an
 * Ed25519 key only EdDSA. So a token cannot pick how a key is used (the "algorithm confusion" where
 * an RS256 public key is taken as an HS256 secret), and `none` is not in any list.
 */
import type { KeyObject } from 'node:crypto';
import { JWT_ALGORITHMS, type JwtAlgorithm } from '../config/config.js';
import { parsePublicKey } from '../config/pem.js';

export { JWT_ALGORITHMS, type JwtAlgorithm } from '../config/config.js';
export { readPem } from '../config/pem.js';

export const HMAC_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512'];

export function isJwtAlgorithm(value: unknown): value is JwtAlgorithm {
  return typeof value === 'string' && (JWT_ALGORITHMS as readonly string[]).includes(value);
}

/** A public key as configured: PEM text, with an optional key id matched against a token's `kid`. */
export interface PublicKeyInput {
  /** Matched against the token header's `kid`; '' (or absent) matches any token. */
  readonly kid?: string;
  /** PEM text (`-----BEGIN PUBLIC KEY-----`). */
  readonly pem: string;
}

/** A public key ready to verify: its key object and the algorithms its type allows. */
export interface LoadedPublicKey {
  readonly kid: string;
  readonly key: KeyObject;
  readonly algorithms: readonly JwtAlgorithm[];
  /** `rsa`, `ec P-256`, `ed25519`, ...: for messages. */
  readonly type: string;
}

/**
 * Parses a PEM public key and works out which algorithms it may verify. Throws an `Error` with a
 * message for people (configuration errors) when the PEM is not a usable public key.
 */
export function loadPublicKey(input: PublicKeyInput): LoadedPublicKey {
  return { kid: input.kid ?? '', ...parsePublicKey(input.pem) };
}
