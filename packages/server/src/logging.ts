import { pino } from 'pino';
import type { Logger } from './core/logger.js';
import type { LogLevel } from './config/config.js';

/** Query parameters whose values are credentials (case-insensitive). */
const SECRET_PARAMS =
  /([?&](?:token|access_token|jwt|subscription_?token|api_?key|api-key|key|secret|session|sid|password)=)[^&#\s"\\]*/gi;
/**
 * A JWS in compact form: base64url parts, the first one a JSON object (`eyJ` is `{"`). The
 * signature is optional so that a token cut short in a message is removed too.
 */
const JWT = /\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}(?:\.[A-Za-z0-9_-]*)?/g;
/** `Authorization` schemes as they appear in header values. */
const AUTH_SCHEME = /\b(apikey|bearer|basic)(\s+)[^\s"\\,]+/gi;

/**
 * Removes credentials from one log line, whatever field they ended up in: tokens (JWTs),
 * `token=` / `apikey=` / ... query parameters (a URL logged whole), and `Authorization` values.
 * Fields named `token`, `apiKey`, `authorization`, ... are redacted by pino before this.
 */
export function scrubSecrets(line: string): string {
  return line
    .replace(JWT, '[redacted-jwt]')
    .replace(SECRET_PARAMS, '$1[redacted]')
    .replace(AUTH_SCHEME, '$1$2[redacted]');
}

/** The process logger: JSON lines on stdout (pino). Secrets are redacted wherever they appear. */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { svc: 'herald' },
    redact: {
      paths: [
        'token',
        'apiKey',
        'authorization',
        'cookie',
        'subscriptionToken',
        '*.token',
        '*.apiKey',
        '*.authorization',
        '*.cookie',
        '*.subscriptionToken',
        '*.headers.authorization',
        '*.headers.cookie',
      ],
      censor: '[redacted]',
    },
    hooks: { streamWrite: scrubSecrets },
  };
  const logger = destination !== undefined ? pino(opts, destination) : pino(opts);
  return logger as unknown as Logger;
}
