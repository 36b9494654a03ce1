/**
 * `POST /send`: client → server commands for a session opened by `/sse`, `/stream` or `/poll` —
 * the bidirectional emulation that gives every transport the WebSocket's commands. The session id
 * (header `X-Herald-Session` or `?session=`) is the signed id the client got in its first
 * event/line/response. The body holds one or more commands (`\n`-separated JSON, as on /ws); the
 * response holds their replies, one JSON object per line (`application/x-ndjson`).
 *
 * A session streaming from this node (SSE, HTTP stream) runs the commands itself, so `subscribe`
 * adds a stream to the running response. A session streaming from another node (its client id names
 * the node) gets them through the engine's control channel (`Hub.control`), with the same effect and
 * the same replies: no sticky sessions needed. A long-poll client has no lasting session: its
 * commands run detached on this node, and `subscribe` answers with the position (and
 * recovery/backlog) to poll from.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCodes, HeraldError } from '@herald/protocol';
import { jsonEncoder } from '../core/encoder.js';
import { toErrorBody } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { nodeOfClientId, runSendCommands, takesSendCommands } from '../core/node-control.js';
import { sendJsonError } from '../http/admission.js';
import { readBody } from '../http/body.js';
import { requestToken } from '../http/token.js';
import type { Cors } from '../http/cors.js';
import type { SessionTokens } from '../http/session-token.js';

export interface SendOptions {
  readonly hub: Hub;
  readonly cors: Cors;
  readonly tokens: SessionTokens;
  readonly maxBodySize: number;
  /** How long to wait for the node holding a session to answer forwarded commands, in ms. */
  readonly forwardTimeout: number;
}

export class SendHandler {
  constructor(private readonly opts: SendOptions) {}

  handle(req: IncomingMessage, res: ServerResponse): void {
    const cors = this.opts.cors.headers(req);
    if (req.method === 'OPTIONS') {
      this.opts.cors.preflight(req, res);
      return;
    }
    this.run(req, res, cors).catch((err: unknown) => {
      const body = toErrorBody(err, this.opts.hub.logger);
      if (!res.headersSent) sendJsonError(res, ErrorCodes[body.code].status, body, cors);
      else res.destroy();
    });
  }

  private async run(req: IncomingMessage, res: ServerResponse, cors: Record<string, string>): Promise<void> {
    if (req.method !== 'POST') {
      req.resume();
      sendJsonError(
        res,
        405,
        { code: 'HERALD_ERR_API_METHOD_NOT_ALLOWED', message: 'use POST' },
        { Allow: 'POST', ...cors },
      );
      return;
    }
    if (!this.opts.cors.allowed(req.headers.origin)) {
      req.resume();
      sendJsonError(
        res,
        403,
        {
          code: 'HERALD_ERR_PERMISSION_DENIED',
          message: `origin ${String(req.headers.origin).slice(0, 100)} is not allowed`,
        },
        this.opts.cors.errorHeaders(req),
      );
      return;
    }
    const header = req.headers['x-herald-session'];
    const q = (req.url ?? '').indexOf('?');
    const token =
      (Array.isArray(header) ? header[0] : header) ??
      new URLSearchParams(q === -1 ? '' : (req.url ?? '').slice(q + 1)).get('session') ??
      undefined;
    const clientId = this.opts.tokens.verify(token);
    if (clientId === undefined) {
      req.resume();
      this.opts.hub.logger.info({ code: 'HERALD_ERR_SESSION_NOT_FOUND' }, 'send: invalid session id');
      throw new HeraldError('HERALD_ERR_SESSION_NOT_FOUND', 'unknown or invalid session id (X-Herald-Session)');
    }
    const raw = await readBody(req, this.opts.maxBodySize);
    const body = await this.execute(req, clientId, raw.toString('utf8'));
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Content-Length': body.byteLength, ...cors });
    res.end(body);
  }

  /** Runs the commands where the session is; resolves with the replies (NDJSON). */
  private async execute(req: IncomingMessage, clientId: string, text: string): Promise<Uint8Array> {
    const hub = this.opts.hub;
    const live = hub.sessions.get(clientId);
    if (live !== undefined && !live.transport.traits.stateless) {
      // A session this node holds: a streaming one runs the commands (subscribe adds to its response).
      if (!takesSendCommands(live)) {
        throw new HeraldError('HERALD_ERR_SESSION_NOT_FOUND', 'this session does not take commands over /send');
      }
      if (live.state !== 'open') throw new HeraldError('HERALD_ERR_SESSION_NOT_FOUND', 'the session is closed');
      return runSendCommands(live, text);
    }
    const holder = nodeOfClientId(clientId);
    if (holder !== undefined && live === undefined) {
      // A session held by a node: another one gets the commands through the engine.
      if (holder !== hub.nodeId && hub.control.available) {
        return hub.control.send(clientId, text, this.opts.forwardTimeout);
      }
      throw new HeraldError(
        'HERALD_ERR_SESSION_NOT_FOUND',
        holder === hub.nodeId
          ? 'the session is closed'
          : `the session lives on node ${holder}, which this engine cannot reach`,
      );
    }
    // A long-poll client: no session lives anywhere; the request's token says who it is.
    const identity = await hub.authorizer.connect(requestToken(req), {
      clientId,
      transport: 'long-poll',
      remoteAddress: req.socket.remoteAddress,
    });
    const session = hub.detachedSession(jsonEncoder, {
      id: clientId,
      identity,
      remoteAddress: req.socket.remoteAddress,
    });
    return runSendCommands(session, text);
  }
}
