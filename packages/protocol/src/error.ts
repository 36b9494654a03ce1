/**
 * The error class of the server and the SDK alike. It lives apart from the code table (codes.ts),
 * whose descriptions a browser bundle does not need: importing `HeraldError` costs a few bytes.
 */
import type { ErrorCode } from './codes.js';

/** An error with a stable Herald code (docs/errors.md lists them); the message says what happened. */
export class HeraldError extends Error {
  readonly code: ErrorCode;
  /** `message` defaults to the code itself: the description of a code is in the code table. */
  constructor(code: ErrorCode, message?: string) {
    super(message ?? code);
    this.name = 'HeraldError';
    this.code = code;
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/**
 * Whether `code`'s HTTP status is 5xx: the server, not the request, is at fault (a retry may
 * succeed). The code table says the same (a test checks every code); this test by name spares a
 * browser bundle the table.
 */
export function isServerFault(code: string): boolean {
  return /UNAVAILABLE|TIMEOUT|BAD_RESPONSE|_CONNECTION_LIMIT|SHUTTING|UNREACHABLE|INTERNAL|DISCONNECTED/.test(code);
}
