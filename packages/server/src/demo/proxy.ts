/**
 * The demos as a worker of `herald serve --workers N` serves them: the supervisor runs the demo
 * backends once (a game's state must not be split over workers) and serves `/demo/` on a loopback
 * port; each worker passes its `/demo` requests there. Nothing on the delivery path goes through it.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { sendJsonError } from '../http/admission.js';
import type { DemoHost } from './demos.js';

/** Connection-level headers, which a proxy does not pass on (and HTTP/2 forbids). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

/**
 * Says to the supervisor's demo server that the request came over TLS: the demos tell their pages
 * Herald's URL from the request (the `Host` header, kept, and whether the socket was encrypted).
 */
export const FORWARDED_TLS = 'x-herald-demo-tls';

function passable(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(':') && !HOP_BY_HOP.has(name) && name !== FORWARDED_TLS) out[name] = value;
  }
  return out;
}

export class DemoProxy implements DemoHost {
  constructor(
    readonly names: readonly string[],
    private readonly port: number,
  ) {}

  start(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const headers = passable(req.headers);
    // HTTP/2 names the host in `:authority`.
    headers.host ??= req.headers[':authority'] as string | undefined;
    if ((req.socket as { encrypted?: boolean }).encrypted === true) headers[FORWARDED_TLS] = '1';
    const upstream = request(
      { host: '127.0.0.1', port: this.port, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, passable(answer.headers));
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) {
        sendJsonError(res, 502, { code: 'HERALD_ERR_INTERNAL', message: 'the demos did not answer (supervisor)' });
      } else res.destroy();
    });
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }
}
