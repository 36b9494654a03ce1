import { createRequire } from 'node:module';
import { pino } from 'pino';
import type PinoPretty from 'pino-pretty';
import type { Logger } from './core/logger.js';
import type { LogFormat, LogLevel } from './config/config.js';

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

export interface LoggerOptions {
  /**
   * `json`: JSON lines (pino); `pretty`: one readable line per event; `auto` (the default): pretty
   * when the destination is a terminal, else JSON.
   */
  format?: LogFormat;
  /** Where the lines go; stdout when not given. */
  destination?: NodeJS.WritableStream;
}

/**
 * The process logger: JSON lines (pino) or readable lines, on stdout by default. Secrets are
 * redacted wherever they appear, in either format: the readable line is made from the JSON line
 * once pino redacted it and `scrubSecrets` scrubbed it.
 */
export function createLogger(level: LogLevel, options: LoggerOptions = {}): Logger {
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
  const { destination } = options;
  const format = options.format ?? 'auto';
  const tty = isTTY(destination ?? process.stdout);
  let logger;
  if (format === 'pretty' || (format === 'auto' && tty)) {
    const colorize = tty && (process.env['NO_COLOR'] ?? '') === '';
    logger = pino(opts, prettySink(destination ?? pino.destination({ dest: 1, sync: true }), colorize));
  } else {
    logger = destination !== undefined ? pino(opts, destination) : pino(opts);
  }
  return logger as unknown as Logger;
}

function isTTY(stream: NodeJS.WritableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/** Control characters (a newline in a message would split the event over lines). */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;

/**
 * A destination for pino that writes each (already redacted and scrubbed) JSON line as one readable
 * line: `[12:00:01.234] INFO: listening {"port":8080,...}`. Synchronous: nothing is buffered, nothing
 * is lost when the process exits. An `err` field is summed up in one line (type, message, where);
 * the JSON format keeps the whole stack.
 */
function prettySink(out: { write(s: string): unknown }, colorize: boolean): { write(line: string): void } {
  // Loaded only here: a process that logs JSON does not pay for pino-pretty's start-up (~40 ms).
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  const pretty = prettyFactory({
    colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,svc',
    errorLikeObjectKeys: [],
    messageFormat: (log, messageKey) => String(log[messageKey] ?? '').replace(CONTROL, ' '),
    customPrettifiers: { err: (value) => errorSummary(value) },
  });
  return { write: (line) => void out.write(pretty(line)) };
}

/** `TypeError: message (at file:line:col)` from pino's serialized error. */
function errorSummary(value: unknown): string {
  if (typeof value !== 'object' || value === null) return String(value);
  const e = value as { type?: unknown; message?: unknown; stack?: unknown; code?: unknown };
  const type = typeof e.type === 'string' ? e.type : 'Error';
  const message = typeof e.message === 'string' ? e.message : '';
  const code = typeof e.code === 'string' || typeof e.code === 'number' ? ` [${e.code}]` : '';
  const at = typeof e.stack === 'string' ? /\n\s*at (.+)/.exec(e.stack)?.[1] : undefined;
  return `${type}: ${message}${code}${at !== undefined ? ` (at ${at})` : ''}`;
}
