/**
 * Whether a request's client is gone: its HTTP/2 stream closed or reset, or its HTTP/1 connection
 * closed. Every transport asks this when an asynchronous step of its open (auth, hooks, engine)
 * resumes, before it creates anything: a request whose stream was reset while it waited must
 * create no session and hold nothing (its 'close' was emitted before any listener could be put on
 * it, so nothing would ever release what it allocated).
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse, ServerHttp2Stream } from 'node:http2';

/** The HTTP/2 stream of a response made by Node's HTTP/2 compatibility API; undefined over HTTP/1. */
export function h2Stream(res: ServerResponse | Http2ServerResponse): ServerHttp2Stream | undefined {
  return (res as { stream?: ServerHttp2Stream }).stream;
}

export function responseGone(res: ServerResponse | Http2ServerResponse): boolean {
  const stream = h2Stream(res);
  if (stream !== undefined) return stream.destroyed || stream.closed;
  const h1 = res as ServerResponse;
  return h1.destroyed || h1.socket === null || h1.socket.destroyed;
}
