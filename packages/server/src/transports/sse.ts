/**
 * Server-Sent Events (`GET /sse`): works with a bare `new EventSource(url)`. Publications are
 * default (`message`) events whose data is the publication JSON and whose `id` is the cursor set of
 * every stream of the connection, so the browser's automatic reconnect (`Last-Event-ID`) resumes
 * all of them exactly. Control events are typed: `connected`, `subscribed`, `unsubscribed`,
 * `disconnect`.
 */
import type { IncomingMessage } from 'node:http';
import type { StreamPosition } from '@herald/protocol';
import type { EncodeCache, NonPubPush } from '../core/encoder.js';
import { jsonEncoder } from '../core/encoder.js';
import { jsonDataField } from '../core/payload.js';
import type { Publication } from '../core/engine.js';
import type { StreamEncoder, StreamFormat } from './http-streaming.js';
import { StreamCursors } from './stream-cursors.js';

function pubData(pub: Publication): string {
  return (
    `{"stream":${JSON.stringify(pub.stream)},"channel":${JSON.stringify(pub.channel)},` +
    `"epoch":"${pub.epoch}","offset":${pub.offset},${jsonDataField(pub.data)}}`
  );
}

class SseEncoder implements StreamEncoder {
  /**
   * Position of every stream of this connection after the last event written. It starts with the
   * cursors the request resumed from, so that the first events (written while some streams are still
   * subscribing) already name every stream: a browser whose connection drops right after one of them
   * resumes all its streams from where they were, not only the ones that had answered.
   */
  private readonly cursors = new StreamCursors();

  constructor(seed: ReadonlyMap<string, StreamPosition> | undefined) {
    seed?.forEach((pos, stream) => this.cursors.setPosition(stream, pos.epoch, pos.offset));
  }

  /**
   * The `id:` line. With no stream position to name there is none: an empty `id:` would reset the
   * browser's Last-Event-ID, while an event without one leaves it as it was.
   */
  private idLine(): string {
    return this.cursors.size === 0 ? '' : `id: ${this.cursors.format()}\n`;
  }

  publication(pub: Publication, cache: EncodeCache): Uint8Array {
    this.cursors.setPosition(pub.stream, pub.epoch, pub.offset);
    if (this.cursors.size === 1) {
      // The common case, one stream per connection: the event id is the same for every subscriber
      // of this publication, so the whole event is encoded once and shared.
      let whole = cache.sseSingle;
      if (whole === undefined) {
        whole = Buffer.from(`id: ${pub.stream};${pub.epoch};${pub.offset}\ndata: ${pubData(pub)}\n\n`);
        cache.sseSingle = whole;
      }
      return whole;
    }
    let shared = cache.sse;
    if (shared === undefined) {
      shared = Buffer.from(`data: ${pubData(pub)}\n\n`);
      cache.sse = shared;
    }
    return Buffer.concat([Buffer.from(this.idLine()), shared]);
  }

  subscribed(
    result: { stream: string; epoch: string; offset: number; recovered?: boolean },
    pubs: readonly Publication[],
  ): Uint8Array {
    const start = pubs.length > 0 ? (pubs[0] as Publication).offset - 1 : result.offset;
    this.cursors.setPosition(result.stream, result.epoch, start);
    const parts: Uint8Array[] = [Buffer.from(`event: subscribed\n${this.idLine()}data: ${JSON.stringify(result)}\n\n`)];
    for (const pub of pubs) parts.push(this.publication(pub, {}));
    return Buffer.concat(parts);
  }

  unsubscribed(stream: string, error?: { code: string; message: string }): Uint8Array {
    // A refused stream keeps the position it resumed from (if any): the refusal may be passing
    // (engine unavailable), and the URL asks for the stream again on the browser's reconnect, which
    // must then resume from that position rather than from now. An unsubscribe the client asked for
    // drops the stream from the cursor set.
    if (error === undefined) this.cursors.delete(stream);
    const body = error === undefined ? { stream } : { stream, code: error.code, reason: error.message };
    // The client left its last stream: an empty id clears Last-Event-ID, so that a reconnect does
    // not resume streams it unsubscribed from.
    const id = error === undefined && this.cursors.size === 0 ? 'id: \n' : this.idLine();
    return Buffer.from(`event: unsubscribed\n${id}data: ${JSON.stringify(body)}\n\n`);
  }

  reply(id: number, result: object, publications?: readonly Publication[]): Uint8Array {
    return Buffer.from(
      `event: reply\ndata: ${Buffer.from(jsonEncoder.reply(id, result, publications)).toString()}\n\n`,
    );
  }

  error(id: number | undefined, error: { code: string; message: string }): Uint8Array {
    return Buffer.from(`event: reply\ndata: ${JSON.stringify(id === undefined ? { error } : { id, error })}\n\n`);
  }

  push(push: NonPubPush): Uint8Array {
    const retry = push.push === 'disconnect' && push.retryAfterMs !== undefined ? `retry: ${push.retryAfterMs}\n` : '';
    return Buffer.from(`${retry}event: ${push.push}\ndata: ${JSON.stringify(push)}\n\n`);
  }

  join(frames: readonly Uint8Array[]): Uint8Array {
    return Buffer.concat(frames as Uint8Array[]);
  }
}

export function sseFormat(retryMs: number): StreamFormat {
  return {
    name: 'sse',
    contentType: 'text/event-stream; charset=utf-8',
    heartbeat: Buffer.from(':\n\n'),
    preamble(padding) {
      const pad = padding > 0 ? `:${' '.repeat(padding)}\n` : '';
      return Buffer.from(`${pad}retry: ${retryMs}\n\n`);
    },
    encoder: (seed) => new SseEncoder(seed),
    lastEventId(req: IncomingMessage) {
      const v = req.headers['last-event-id'];
      return Array.isArray(v) ? v[0] : v;
    },
  };
}
