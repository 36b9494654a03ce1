/**
 * The TLS files of the client port (`tls.cert`, `tls.key`): PEM files named by path, read when the
 * configuration is loaded so that a wrong path or a key that does not match its certificate is a
 * configuration error, not a failure at the first connection. Messages never quote key material.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFailure } from './pem.js';

export type TlsFileKind = 'cert' | 'key';

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const why = readFailure(err);
    throw new Error(`cannot read ${file.slice(0, 200)}: ${why}`);
  }
}

/** Throws an `Error` saying what is wrong with the file, if anything. */
export function checkTlsFile(kind: TlsFileKind, file: string): void {
  const text = readText(file);
  if (kind === 'cert') {
    if (!text.includes('-----BEGIN CERTIFICATE-----')) {
      throw new Error(`${file.slice(0, 200)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    }
    try {
      new X509Certificate(text);
    } catch {
      throw new Error(`${file.slice(0, 200)}: the first certificate cannot be parsed`);
    }
    return;
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new Error(`${file.slice(0, 200)} holds no PEM private key (-----BEGIN PRIVATE KEY-----)`);
  }
  try {
    createPrivateKey(text);
  } catch {
    throw new Error(`${file.slice(0, 200)}: the private key cannot be parsed (an encrypted key is not supported)`);
  }
}

/** Whether the private key belongs to the (first) certificate of the chain. */
export function tlsKeyMatches(certFile: string, keyFile: string): boolean {
  try {
    return new X509Certificate(readText(certFile)).checkPrivateKey(createPrivateKey(readText(keyFile)));
  } catch {
    return false;
  }
}
