/**
 * Key material in the configuration: an entry is PEM text, or the path of a file holding it (read
 * relative to the working directory). Messages never quote key material.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JwtAlgorithm } from './config.js';

const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;

/** The PEM text of an entry, or throws an `Error` saying what is wrong with it. */
export function readPem(value: string): string {
  const text = value.trim();
  if (text.startsWith('-----BEGIN ')) return text;
  if (text === '') throw new Error('is empty: give PEM text or the path of a PEM file');
  if (text.includes('\n')) throw new Error('is neither PEM text (-----BEGIN ...) nor a file path');
  let content: string;
  try {
    content = readFileSync(text, 'utf8').trim();
  } catch (err) {
    const why = readFailure(err);
    throw new Error(`is not PEM text, and reading it as a file failed: ${why} (${text.slice(0, 200)})`);
  }
  if (!content.startsWith('-----BEGIN '))
    throw new Error(`names a file that holds no PEM text (${text.slice(0, 200)})`);
  return content;
}

/** RFC 7518 §3.2: an HMAC key must be at least as long as the hash output (256 bits for HS256). */
export const MIN_HMAC_SECRET_BYTES = 32;

const EC_CURVES: Readonly<Record<string, JwtAlgorithm>> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};

const RSA_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];

/** A public key and the algorithms its type may verify (one list per key type: no confusion). */
export interface ParsedPublicKey {
  readonly key: KeyObject;
  readonly algorithms: readonly JwtAlgorithm[];
  /** `rsa`, `ec prime256v1`, `ed25519`, ...: for messages. */
  readonly type: string;
}

/**
 * Reads PEM text as a public key Herald can verify tokens with: RSA (at least 2048 bits), EC on
 * P-256/P-384/P-521, or Ed25519. Throws an `Error` saying what is wrong otherwise.
 */
export function parsePublicKey(pemText: string): ParsedPublicKey {
  const pem = pemText.trim();
  if (PRIVATE_KEY.test(pem)) {
    throw new Error('is a private key: give Herald the public key only (openssl pkey -in key.pem -pubout)');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`is not a readable PEM public key (${err instanceof Error ? err.message : String(err)})`);
  }
  return { key, ...keyAlgorithms(key) };
}

/**
 * The algorithms a key (public or private) may be used with, by its type: RSA (at least 2048 bits)
 * RS* and PS*, EC the ES* of its curve, Ed25519 EdDSA. Throws an `Error` for others.
 */
export function keyAlgorithms(key: KeyObject): { type: string; algorithms: readonly JwtAlgorithm[] } {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new Error(`is a ${bits}-bit RSA key; RSA keys need at least 2048 bits`);
    return { type, algorithms: RSA_ALGORITHMS };
  }
  if (type === 'rsa-pss') {
    throw new Error(
      'is an RSA-PSS-only key (id-RSASSA-PSS), which the verifier cannot load; use a plain RSA key: it verifies PS256/384/512 too',
    );
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
    const alg = EC_CURVES[curve];
    if (alg === undefined) throw new Error(`is an EC key on curve ${curve}; use P-256, P-384 or P-521`);
    return { type: `ec ${curve}`, algorithms: [alg] };
  }
  if (type === 'ed25519') return { type, algorithms: ['EdDSA'] };
  throw new Error(`is a ${String(type)} key; Herald verifies RSA, EC (P-256/384/521) and Ed25519 keys`);
}

/** Why reading a file failed, in words (ENOENT, EISDIR, EACCES; else the error code). */
export function readFailure(err: unknown): string {
  const code = err instanceof Error && 'code' in err ? err.code : undefined;
  if (code === 'ENOENT') return 'the file does not exist';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'EACCES') return 'permission denied';
  return String(code);
}
