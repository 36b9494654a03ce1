/**
 * Taking an HTTP/1.x streaming response's socket away from `node:http` once its header is written,
 * the way Node itself hands a socket to an `upgrade` handler.
 *
 * Why: an open SSE or `/stream` response otherwise keeps, for its whole life, node:http's
 * per-connection state: the HTTP parser (~1.6 KB of native memory), the IncomingMessage and
 * ServerResponse with their stream states, four bound socket listeners and the connection's request
 * queues. That was ~4 KiB per connection more than a WebSocket (which node:http already lets go at
 * the upgrade), and idle memory per connection is a product target (<= 6 KiB, docs/performance.md). After the
 * detach, the stream writes chunk-framed bytes to the socket itself (see `StreamingTransport`) and
 * the socket holds nothing of node:http.
 *
 * What it costs: the connection is not reused after the stream ends, since the parser is gone. The
 * response says so up front (`Connection: close`), which HTTP/1.1 allows; clients open a new
 * connection for their next request, as they would after any such response.
 *
 * It relies on node:http internals (the socket's `parser`, its listeners' names, `_http_common`'s
 * `freeParser`), checked before anything is changed: where they are not as expected (another Node
 * version, HTTP/2, a response waiting behind a pipelined one, a request whose body has not been
 * read), `detachable` says no and the stream simply stays on node:http, writing through `res`.
 * test/sse-detach.test.ts fails if the detach stops happening on the Node version in use.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';

interface NodeParser {
  incoming: unknown;
}

type HttpSocket = Socket & { parser?: NodeParser | null; _httpMessage?: unknown };

interface HttpCommon {
  freeParser(parser: NodeParser, req: IncomingMessage | null, socket: Socket | null): void;
}

const httpCommon = ((): HttpCommon | undefined => {
  try {
    const m = createRequire(import.meta.url)('_http_common') as Partial<HttpCommon>;
    return typeof m.freeParser === 'function' ? (m as HttpCommon) : undefined;
  } catch {
    return undefined;
  }
})();

/**
 * The listeners node:http's server puts on each connection's socket (read from Node 20), by event and
 * function name (bound functions are named `bound <name>`). `required`: must be there to detach.
 */
const NODE_LISTENERS: ReadonlyArray<{ event: string; name: string; required: boolean }> = [
  { event: 'data', name: 'bound socketOnData', required: true },
  { event: 'end', name: 'bound socketOnEnd', required: true },
  { event: 'close', name: 'bound socketOnClose', required: true },
  { event: 'drain', name: 'bound socketOnDrain', required: true },
  { event: 'error', name: 'socketOnError', required: true },
  { event: 'timeout', name: 'socketOnTimeout', required: true },
  // Present while the parser reads the socket's handle directly (removed when it stops).
  { event: 'resume', name: 'onSocketResume', required: false },
  { event: 'pause', name: 'onSocketPause', required: false },
];

function findListener(socket: Socket, event: string, name: string): ((...args: unknown[]) => void) | undefined {
  for (const fn of socket.listeners(event)) if (fn.name === name) return fn as (...args: unknown[]) => void;
  return undefined;
}

/**
 * Whether `res`'s socket can be taken from node:http once its header is written: HTTP/1.x, the
 * response owns the socket now (not queued behind a pipelined one), the request was read whole and
 * no later request has been parsed, and node:http's internals look as expected. Call it right before
 * `writeHead`, and `detach` right after, in the same synchronous step.
 */
export function detachable(req: IncomingMessage, res: ServerResponse): boolean {
  if (httpCommon === undefined || req.httpVersionMajor !== 1) return false;
  const socket = req.socket as HttpSocket | null;
  if (!(socket instanceof Socket) || socket.destroyed || res.socket !== socket) return false;
  if (socket._httpMessage !== res || !req.complete) return false;
  const parser = socket.parser;
  if (parser === null || parser === undefined || parser.incoming !== req) return false;
  if (typeof res.detachSocket !== 'function') return false;
  for (const l of NODE_LISTENERS) if (l.required && findListener(socket, l.event, l.name) === undefined) return false;
  return true;
}

/**
 * Sends the header and takes the socket (see the module comment). Returns it, free of node:http's
 * listeners and parser, with its unsent bytes all in the socket; the caller must put its own
 * 'error' and 'close' listeners on it and must not use `req` or `res` again. Returns undefined, and
 * changes nothing but sending the header, if the header could not go straight to the socket.
 */
export function detach(req: IncomingMessage, res: ServerResponse): Socket | undefined {
  res.flushHeaders();
  const socket = req.socket as HttpSocket;
  const parser = socket.parser;
  // flushHeaders hands the header to the socket when the response owns it; otherwise it waits in
  // the response, and the stream must go on through `res`.
  if (httpCommon === undefined || parser === null || parser === undefined) return undefined;
  if (socket.destroyed || res.writableLength !== socket.writableLength) return undefined;
  for (const l of NODE_LISTENERS) {
    const fn = findListener(socket, l.event, l.name);
    if (fn !== undefined) socket.removeListener(l.event, fn);
  }
  res.detachSocket(socket);
  // Stops the parser reading the socket's handle, takes it out of the server's connection list
  // (request timeouts) and frees it: what Node does for an upgrade.
  httpCommon.freeParser(parser, req, socket);
  socket.setTimeout(0);
  // Paused or flowing as node:http left it, the socket flows again once the caller listens to 'data'.
  (socket as { readableFlowing: boolean | null }).readableFlowing = null;
  return socket;
}
