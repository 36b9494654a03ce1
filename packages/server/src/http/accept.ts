import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, HeraldError } from '@herald/protocol';
import type { Logger } from '../core/logger.js';
import { toErrorBody } from '../core/errors.js';
import type { SessionIdentity } from '../core/identity.js';
import type { Hub } from '../core/hub.js';
import { requestToken } from './token.js';
import { sendJsonError, type Admission } from './admission.js';
import type { Cors } from './cors.js';
import { parseTransportQuery, type TransportQuery } from './query.js';

export interface AcceptOptions {
  readonly admission: Admission;
  readonly cors: Cors;
  readonly logger: Logger;
  readonly transport: string;
  readonly maxChannels: number;
  readonly requireChannel: boolean;
  readonly methods: readonly string[];
  readonly lastEventId?: string | undefined;
}

/**
 * The gate every browser-facing HTTP transport request passes: CORS preflight, method, admission
 * (shutdown, connection limit, Origin), then the query. Answers the request itself (with an HTTP
 * error and a JSON code) and returns undefined when it must not go on.
 */
export function acceptTransportRequest(
  req: IncomingMessage,
  res: ServerResponse,
  opts: AcceptOptions,
): { query: TransportQuery; cors: Record<string, string> } | undefined {
  const cors = opts.cors.headers(req);
  if (req.method === 'OPTIONS') {
    opts.cors.preflight(req, res);
    return undefined;
  }
  req.resume();
  if (!opts.methods.includes(req.method ?? '')) {
    const allow = opts.methods.join(', ');
    sendJsonError(
      res,
      405,
      { code: 'HERALD_ERR_API_METHOD_NOT_ALLOWED', message: `use ${allow}` },
      { Allow: allow, ...cors },
    );
    return undefined;
  }
  const refusal = opts.admission.check(req);
  if (refusal !== undefined) {
    sendJsonError(res, refusal.status, refusal.error, opts.cors.errorHeaders(req));
    return undefined;
  }
  try {
    const query = parseTransportQuery(req.url ?? '/', {
      maxChannels: opts.maxChannels,
      lastEventId: opts.lastEventId,
      requireChannel: opts.requireChannel,
    });
    return { query, cors };
  } catch (err) {
    const e = err instanceof HeraldError ? err : new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', 'bad request');
    opts.logger.info({ code: e.code, transport: opts.transport }, e.message);
    sendJsonError(res, ErrorCodes[e.code].status, e.toJSON(), cors);
    return undefined;
  }
}

/**
 * Who is connecting: the request's token (Bearer header or `token` query parameter) through the
 * hub's authorizer. Answers the request with the error (401, 429, 503...) and returns undefined
 * when the connection is refused.
 */
export async function identify(
  req: IncomingMessage,
  res: ServerResponse,
  hub: Hub,
  info: { clientId: string; transport: string; queryToken: string | undefined; cors: Record<string, string> },
): Promise<SessionIdentity | undefined> {
  try {
    return await hub.authorizer.connect(requestToken(req, info.queryToken), {
      clientId: info.clientId,
      transport: info.transport,
      remoteAddress: req.socket.remoteAddress,
    });
  } catch (err) {
    const error = toErrorBody(err, hub.logger);
    hub.logger.info({ code: error.code, transport: info.transport }, 'connection refused');
    if (!res.headersSent) sendJsonError(res, ErrorCodes[error.code].status, error, info.cors);
    return undefined;
  }
}

/**
 * The last guard of a transport's asynchronous open: an unexpected failure is logged and answered
 * (500) or the response dropped, never left as an unhandled rejection that would end the process.
 */
export function openFailed(res: ServerResponse, logger: Logger, transport: string, err: unknown): void {
  logger.error({ err, transport }, 'opening a connection failed');
  try {
    if (!res.headersSent) {
      sendJsonError(res, 500, { code: 'HERALD_ERR_INTERNAL', message: 'internal error' });
    } else res.destroy();
  } catch {
    // The response is gone already: nothing to answer.
  }
}
