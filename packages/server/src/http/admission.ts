/**
 * Admission checks shared by every transport before a connection is accepted: shutting down,
 * connection limit, browser Origin allow-list.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCodes, type ErrorBody } from '@herald/protocol';

export interface Refusal {
  readonly status: number;
  readonly error: ErrorBody;
}

export interface AdmissionOptions {
  readonly allowedOrigins: readonly string[];
  readonly maxConnections: number;
  /**
   * Current number of client connections over every transport, and of accepted sockets that have
   * not sent their first request yet (docs/configuration.md, "Connection limit").
   */
  readonly connectionCount: () => number;
  readonly shuttingDown: () => boolean;
}

export class Admission {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;

  constructor(private readonly opts: AdmissionOptions) {
    this.anyOrigin = opts.allowedOrigins.includes('*');
    this.origins = new Set(opts.allowedOrigins.map((o) => o.toLowerCase()));
  }

  /** Returns why the connection must be refused, or undefined to accept it. */
  check(req: IncomingMessage): Refusal | undefined {
    if (this.opts.shuttingDown()) {
      return refusal('HERALD_ERR_SHUTTING_DOWN', 'the server is shutting down');
    }
    if (this.opts.connectionCount() >= this.opts.maxConnections) {
      return refusal('HERALD_ERR_CONNECTION_LIMIT', `the server holds ${this.opts.maxConnections} connections`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !this.anyOrigin && !this.origins.has(origin.toLowerCase())) {
      return {
        status: 403,
        error: { code: 'HERALD_ERR_PERMISSION_DENIED', message: `origin ${origin.slice(0, 100)} is not allowed` },
      };
    }
    return undefined;
  }
}

function refusal(code: 'HERALD_ERR_SHUTTING_DOWN' | 'HERALD_ERR_CONNECTION_LIMIT', message: string): Refusal {
  return { status: ErrorCodes[code].status, error: { code, message } };
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Answers a refused upgrade with an HTTP error and a JSON body, then closes the socket. */
export function rejectUpgrade(socket: Duplex, r: Refusal): void {
  const body = JSON.stringify({ error: r.error });
  socket.end(
    `HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status] ?? 'Error'}\r\n` +
      'Connection: close\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** Writes a JSON error response (server API and HTTP transports). */
export function sendJsonError(
  res: ServerResponse,
  status: number,
  error: ErrorBody,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify({ error });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(body);
}
