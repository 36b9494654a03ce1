/**
 * HTTP streaming (`GET /stream`): one JSON frame per line (NDJSON), the same frames as the WebSocket
 * protocol; empty lines are the server's heartbeats. Commands go over `POST /send`.
 */
import { lines, streaming } from './http.js';
import type { HeraldTransport, InFrame } from './transport.js';

export const httpStream: HeraldTransport = {
  name: 'http-stream',
  open: streaming('/stream', 'application/x-ndjson', (sink) => {
    let rest = '';
    return (chunk) => {
      rest = lines(rest + chunk, (line) => sink.frame(JSON.parse(line) as InFrame));
    };
  }),
};
