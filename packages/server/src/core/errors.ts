/**
 * Error bodies of replies and API responses. Every refusal is a HeraldError with a code (see
 * @herald/protocol's code table); anything else is a bug, logged once with its stack and answered
 * as HERALD_ERR_INTERNAL without details.
 */
import { HeraldError, type ErrorBody } from '@herald/protocol';
import type { Logger } from './logger.js';

/** Turns any error into a reply body; unexpected ones are logged on `logger` with their stack. */
export function toErrorBody(err: unknown, logger: Logger): ErrorBody {
  if (err instanceof HeraldError) return { code: err.code, message: err.message };
  logger.error({ err }, 'unexpected error');
  return { code: 'HERALD_ERR_INTERNAL', message: 'internal error' };
}
