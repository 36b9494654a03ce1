/**
 * Test support for auth: key pairs as PEM, tokens signed with jose, and hand-made tokens for the
 * attacks jose would refuse to produce (alg none, algorithm confusion, broken encodings).
 */
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { HeraldError, type ErrorCode } from '@herald/protocol';
import { expect } from 'vitest';

export const SECRET = 'test-hmac-secret-0123456789abcdefghij';
export const NOW = 1_700_000_000_000;
export const NOW_S = NOW / 1000;

export interface TestKeyPair {
  publicPem: string;
  privatePem: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function keyPair(type: 'rsa' | 'ec-256' | 'ec-384' | 'ed25519'): TestKeyPair {
  const pair =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : type === 'ed25519'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('ec', { namedCurve: type === 'ec-256' ? 'P-256' : 'P-384' });
  return {
    publicPem: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
  };
}

/** A token signed by jose. `header` adds fields (kid, jku, ...). */
export async function sign(
  claims: JWTPayload & Record<string, unknown>,
  key: KeyObject | Uint8Array | string,
  alg = 'HS256',
  header: Record<string, unknown> = {},
): Promise<string> {
  const k = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  return new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(k);
}

export const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** header.payload signed with HMAC-SHA256 over whatever bytes `secret` is, jose or not. */
export function hmacToken(header: unknown, payload: unknown, secret: string | Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Asserts that `work` rejects with a HeraldError of `code`; returns it for further checks. */
export async function rejectsWith(work: Promise<unknown>, code: ErrorCode): Promise<HeraldError> {
  let error: unknown;
  try {
    await work;
  } catch (err) {
    error = err;
  }
  expect(error, `expected ${code}`).toBeInstanceOf(HeraldError);
  expect((error as HeraldError).code, (error as Error).message).toBe(code);
  return error as HeraldError;
}
