/**
 * The one error class of `@herald/api`. Its `code` is always a code of Herald's table
 * (`@herald/protocol`, docs/errors.md): the server's own when it answered with one, else the code
 * of what the client saw:
 *
 * | What happened                                                        | `code`                             | `status`   |
 * | -------------------------------------------------------------------- | ---------------------------------- | ---------- |
 * | No connection could be made (refused, DNS, unreachable network)       | `HERALD_ERR_CLIENT_DISCONNECTED`   | 0          |
 * | The connection dropped before the answer (reset, closed by the peer) | `HERALD_ERR_CLIENT_DISCONNECTED`   | 0          |
 * | No answer within `timeout`                                           | `HERALD_ERR_TIMEOUT`               | 0          |
 * | The client was closed (`close()`, `destroy()`)                       | `HERALD_ERR_CLIENT_CLOSED`         | 0          |
 * | An answer that is not Herald's (a proxy's error page, another server) | by its HTTP status (see below)     | the status |
 */
import { ErrorCodes, HeraldError, isErrorCode, type ErrorBody, type ErrorCode } from '@herald/protocol';

export interface HeraldApiErrorInit {
  /** The HTTP status of the answer; 0 when there was none (connection failure, timeout, closed client). */
  readonly status?: number;
  /** Whether making the same call again may succeed; by default, whether the code is a server fault (5xx). */
  readonly retriable?: boolean;
  /** How many requests were made for this call (1 when it was not retried). */
  readonly attempts?: number;
  /** The server API method called (`publish`, `batch`, ...), when the error comes from a call. */
  readonly method?: string;
  /** The underlying error (undici's, for a connection failure). */
  readonly cause?: unknown;
}

/**
 * A failed call, or a publication of `publishMany`/`broadcast` that failed. Match on `code` (stable),
 * never on `message` (for humans). `retriable` says whether the same call may succeed later: the
 * client has already retried such failures `retries` times when it throws one.
 */
export class HeraldApiError extends HeraldError {
  /** The HTTP status of the answer; 0 when there was none (connection failure, timeout, closed client). */
  readonly status: number;
  /** Whether making the same call again may succeed (a server fault, a lost connection, a timeout). */
  readonly retriable: boolean;
  /** How many requests were made for this call before it failed (0: none was made). */
  readonly attempts: number;
  /** The server API method called (`publish`, `batch`, ...), when the error comes from a call. */
  readonly method: string | undefined;

  constructor(code: ErrorCode, message: string, init: HeraldApiErrorInit = {}) {
    super(code, message);
    this.name = 'HeraldApiError';
    this.status = init.status ?? 0;
    this.retriable = init.retriable ?? ErrorCodes[code].status >= 500;
    this.attempts = init.attempts ?? 0;
    this.method = init.method;
    if (init.cause !== undefined) this.cause = init.cause;
  }

  override toJSON(): { code: ErrorCode; message: string; status: number; retriable: boolean; attempts: number } {
    return {
      code: this.code,
      message: this.message,
      status: this.status,
      retriable: this.retriable,
      attempts: this.attempts,
    };
  }
}

/** The error of one item of a batch or broadcast reply (`{"code","message"}` from the server). */
export function itemError(body: unknown, method: string, attempts: number): HeraldApiError {
  const b = isObject(body) ? body : {};
  const code = isErrorCode(b['code']) ? b['code'] : 'HERALD_ERR_INTERNAL';
  const message = typeof b['message'] === 'string' ? b['message'] : code;
  return new HeraldApiError(code, message, { status: ErrorCodes[code].status, attempts, method });
}

/**
 * The code of an error answer without Herald's JSON body (a proxy's 502 page, a server that is not
 * Herald): the code of the table that says the same thing.
 */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'HERALD_ERR_API_UNAUTHORIZED';
    case 404:
      return 'HERALD_ERR_API_NOT_FOUND';
    case 405:
      return 'HERALD_ERR_API_METHOD_NOT_ALLOWED';
    case 413:
      return 'HERALD_ERR_API_BODY_TOO_LARGE';
    case 415:
      return 'HERALD_ERR_API_UNSUPPORTED_MEDIA_TYPE';
    case 502:
    case 503:
      // A gateway in front of Herald could not reach it.
      return 'HERALD_ERR_CLIENT_DISCONNECTED';
    case 408:
    case 504:
      return 'HERALD_ERR_TIMEOUT';
    default:
      return status >= 500 ? 'HERALD_ERR_INTERNAL' : 'HERALD_ERR_API_BAD_REQUEST';
  }
}

/** `{"error":{"code","message"}}` with a known code, else undefined. */
export function errorBodyOf(json: unknown): ErrorBody | undefined {
  if (!isObject(json) || !isObject(json['error'])) return undefined;
  const { code, message } = json['error'];
  if (!isErrorCode(code)) return undefined;
  return { code, message: typeof message === 'string' ? message : code };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
