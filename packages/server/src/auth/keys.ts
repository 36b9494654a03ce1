/**
 * Token keys and the algorithms each kind of key may verify. The allow-list is per key type: an HMAC
 * secret verifies only HS*, an RSA key only RS* and PS*, an EC key only the ES* of its curve, an
 * Ed25519 key only EdDSA. So a token cannot pick how a key is used (the "algorithm confusion" where
 * an RS256 public key is taken as an HS256 secret), and `none` is not in any list.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Every JWS algorithm Herald can verify. `none` is not one and can never be configured. */
export const JWT_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export const HMAC_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512'];

export function isJwtAlgorithm(value: unknown): value is JwtAlgorithm {
  return typeof value === 'string' && (JWT_ALGORITHMS as readonly string[]).includes(value);
}

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output (256 bits for HS256). */
export const MIN_HMAC_SECRET_BYTES = 32;

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

const EC_CURVES: Readonly<Record<string, JwtAlgorithm>> = {
  prime256v1: 'ES256',
  'P-256': 'ES256',
  secp384r1: 'ES384',
  'P-384': 'ES384',
  secp521r1: 'ES512',
  'P-521': 'ES512',
};

/**
 * Parses a PEM public key and works out which algorithms it may verify. Throws an `Error` with a
 * message for people (configuration errors) when the PEM is not a usable public key.
 */
export function loadPublicKey(input: PublicKeyInput): LoadedPublicKey {
  const pem = input.pem.trim();
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new Error('is a private key: give Herald the public key only (openssl pkey -in key.pem -pubout)');
  }
  if (!pem.startsWith('-----BEGIN ')) throw new Error('is not a PEM public key (-----BEGIN PUBLIC KEY-----)');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`is not a readable PEM public key: ${err instanceof Error ? err.message : String(err)}`);
  }
  const kid = input.kid ?? '';
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) throw new Error(`is a ${bits}-bit RSA key; RSA keys must have at least 2048 bits`);
      return { kid, key, type: 'rsa', algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] };
    }
    case 'rsa-pss': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048) throw new Error(`is a ${bits}-bit RSA key; RSA keys must have at least 2048 bits`);
      return { kid, key, type: 'rsa-pss', algorithms: ['PS256', 'PS384', 'PS512'] };
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
      const alg = EC_CURVES[curve];
      if (alg === undefined) throw new Error(`is an EC key on curve ${curve}; use P-256, P-384 or P-521`);
      return { kid, key, type: `ec ${curve}`, algorithms: [alg] };
    }
    case 'ed25519':
      return { kid, key, type: 'ed25519', algorithms: ['EdDSA'] };
    default:
      throw new Error(
        `is a key of type ${String(key.asymmetricKeyType)}; Herald verifies RSA, EC (P-256/384/521) and Ed25519 keys`,
      );
  }
}

/**
 * A configured key entry is PEM text, or the path of a file holding it. Returns the PEM text, or
 * throws an `Error` whose message explains what is wrong (never quoting key material).
 */
export function readPem(value: string): string {
  const text = value.trim();
  if (text.startsWith('-----BEGIN ')) return text;
  if (text === '') throw new Error('is empty: give PEM text or the path of a PEM file');
  if (text.includes('\n')) throw new Error('is neither PEM text (-----BEGIN ...) nor a file path');
  try {
    return readFileSync(text, 'utf8').trim();
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? err.code : undefined;
    const why = code === 'ENOENT' ? 'the file does not exist' : code === 'EISDIR' ? 'it is a directory' : String(code);
    throw new Error(`is not PEM text, and reading it as a file failed: ${why} (${text.slice(0, 200)})`);
  }
}
