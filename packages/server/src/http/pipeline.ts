/**
 * HTTP/1.1 pipelining, served one request at a time. Node parses every request a client pipelines
 * on one connection at once, and hands each to the request handler at once, while their responses
 * are queued behind the first. Left alone, each transport would start on all of them: a
 * connection carrying 1,200 `GET /sse` would open 1,200 sessions whose queued responses are never
 * closed (only the connection's current response hears that the connection closed), and 1,000
 * pipelined `GET /poll?backlog=100` would build and buffer every answer at once.
 *
 * Instead a request whose response waits behind another one waits too, doing nothing, until Node
 * hands its response the connection (`'socket'`): the previous response has then been written out,
 * so a client that does not read holds at most one answer's work. If the connection closes first,
 * the request is dropped with the connection. A client that queues more than `maxWaiting` requests
 * on one connection is not a browser (they do not pipeline): its connection is closed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const WAITING = Symbol('herald.pipelineWaiting');
type CountedSocket = Socket & { [WAITING]?: number };

/** Requests one HTTP/1.1 connection may have waiting behind its current one. */
export const MAX_PIPELINED = 16;

/**
 * Runs `serve` now if `res` owns its connection (HTTP/2, and HTTP/1 requests not queued behind
 * another), else once it does. Returns false if the connection was closed for pipelining too much.
 */
export function whenCurrent(
  req: IncomingMessage,
  res: ServerResponse,
  serve: () => void,
  maxWaiting = MAX_PIPELINED,
): boolean {
  if (req.httpVersionMajor !== 1 || res.socket !== null) {
    serve();
    return true;
  }
  const socket = req.socket as CountedSocket | null;
  if (socket === null || socket.destroyed) return true;
  const waiting = (socket[WAITING] ?? 0) + 1;
  if (waiting > maxWaiting) {
    socket.destroy();
    return false;
  }
  socket[WAITING] = waiting;
  res.once('socket', () => {
    socket[WAITING] = (socket[WAITING] ?? 1) - 1;
    serve();
  });
  return true;
}
