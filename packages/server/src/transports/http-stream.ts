/**
 * HTTP streaming (`GET /stream`): one JSON object per line (`application/x-ndjson`), the same
 * frames as the WebSocket protocol. Works with `curl -N` and `fetch` + `ReadableStream`. The
 * subscriptions named in the query are confirmed with `subscribed` lines that carry their
 * recovered/backlog publications; then `pub` lines follow.
 */
import type { EncodeCache, NonPubPush } from '../core/encoder.js';
import { jsonEncoder, withPublications } from '../core/encoder.js';
import type { Publication } from '../core/engine.js';
import type { StreamEncoder, StreamFormat } from './http-streaming.js';

const NL = Buffer.from('\n');

function line(bytes: Uint8Array): Uint8Array {
  return Buffer.concat([bytes, NL]);
}

const ndjsonEncoder: StreamEncoder = {
  publication(pub: Publication, cache: EncodeCache) {
    let bytes = cache.ndjson;
    if (bytes === undefined) {
      bytes = line(jsonEncoder.publication(pub, cache));
      cache.ndjson = bytes;
    }
    return bytes;
  },
  subscribed(result, pubs) {
    return Buffer.from(`${withPublications({ push: 'subscribed', ...result }, pubs)}\n`);
  },
  unsubscribed(stream, error) {
    const body =
      error === undefined
        ? { push: 'unsubscribed', stream }
        : { push: 'unsubscribed', stream, code: error.code, reason: error.message };
    return Buffer.from(`${JSON.stringify(body)}\n`);
  },
  reply: (id, result, pubs) => line(jsonEncoder.reply(id, result, pubs)),
  error: (id, error) => line(jsonEncoder.error(id, error)),
  push: (p: NonPubPush) => line(jsonEncoder.push(p)),
  join: (frames) => Buffer.concat(frames as Uint8Array[]),
};

export function httpStreamFormat(): StreamFormat {
  return {
    name: 'http-stream',
    contentType: 'application/x-ndjson; charset=utf-8',
    heartbeat: NL,
    preamble: (padding) => Buffer.from(padding > 0 ? `${' '.repeat(padding)}\n` : ''),
    encoder: () => ndjsonEncoder,
  };
}
