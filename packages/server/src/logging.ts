import { pino } from 'pino';
import type { Logger } from './core/logger.js';
import type { LogLevel } from './config/config.js';

/** The process logger: JSON lines on stdout (pino). Secrets are redacted wherever they appear. */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const opts = {
    level,
    base: { svc: 'herald' },
    redact: {
      paths: ['token', 'apiKey', 'authorization', '*.token', '*.apiKey', '*.authorization'],
      censor: '[redacted]',
    },
  };
  const logger = destination !== undefined ? pino(opts, destination) : pino(opts);
  return logger as unknown as Logger;
}
