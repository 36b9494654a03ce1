/**
 * Frame encoders turn replies, pushes and publications into bytes for one wire format. A publication
 * is encoded once per format, not once per subscriber: the hub hands every receiving session the
 * same `EncodeCache`, and the encoder fills its own slot on first use.
 */
import type { ErrorBody, Push } from '@herald/protocol';
import type { Publication } from './engine.js';
import { jsonDataField } from './payload.js';

/** One slot per wire format; filled lazily, shared by every session receiving the publication. */
export interface EncodeCache {
  /** The JSON text of the `pub` push (`publicationText`). */
  text?: string;
  json?: Uint8Array;
  /** `json` framed as one WebSocket text message (header + payload), written as is to sockets. */
  wsFrame?: Uint8Array;
  /** `json` with a trailing newline (HTTP streaming). */
  ndjson?: Uint8Array;
  sse?: Uint8Array;
  /** A whole SSE event (id line included) for connections that read this one stream only. */
  sseSingle?: Uint8Array;
  /** The publication as one MessagePack map (`msgpack-encoder.ts`). */
  msgpack?: Uint8Array;
  /** `msgpack` framed as one WebSocket binary message. */
  wsFrameMsgpack?: Uint8Array;
}

export type NonPubPush = Exclude<Push, { push: 'pub' }>;

export interface FrameEncoder {
  publication(pub: Publication, cache: EncodeCache): Uint8Array;
  /** A successful reply; `publications` (JSON text payloads) are appended as `result.publications`. */
  reply(id: number, result: object, publications?: readonly Publication[]): Uint8Array;
  error(id: number | undefined, error: ErrorBody): Uint8Array;
  push(push: NonPubPush): Uint8Array;
  /** Joins several encoded frames into one write (one WebSocket message). */
  join(frames: readonly Uint8Array[]): Uint8Array;
  /** `join` is plain concatenation (each frame a whole message), so frames may be written as they are. */
  readonly concatenates?: boolean;
}

/** `{"channel":..,"offset":..,"data":..}` for each publication (`b64data` for bytes), as a JSON array text. */
export function publicationsJson(pubs: readonly Publication[]): string {
  let out = '[';
  for (let i = 0; i < pubs.length; i++) {
    const p = pubs[i] as Publication;
    if (i > 0) out += ',';
    out += `{"channel":${JSON.stringify(p.channel)},"offset":${p.offset},${jsonDataField(p.data)}}`;
  }
  return out + ']';
}

/** Appends `"publications":[...]` to the JSON text of an object. */
export function withPublications(result: object, pubs: readonly Publication[]): string {
  const text = JSON.stringify(result);
  const sep = text.length > 2 ? ',' : '';
  return `${text.slice(0, -1)}${sep}"publications":${publicationsJson(pubs)}}`;
}

/** The `pub` push of `pub` as JSON text, made once per publication (`cache.text`). */
export function publicationText(pub: Publication, cache: EncodeCache): string {
  return (cache.text ??=
    `{"push":"pub","stream":${JSON.stringify(pub.stream)},"channel":${JSON.stringify(pub.channel)},` +
    `"epoch":"${pub.epoch}","offset":${pub.offset},${jsonDataField(pub.data)}}`);
}

const NEWLINE = Buffer.from('\n');

/** Herald's JSON protocol: one JSON object per frame, frames of one message joined by `\n`. */
export const jsonEncoder: FrameEncoder = {
  publication(pub, cache) {
    let bytes = cache.json;
    if (bytes === undefined) {
      bytes = Buffer.from(publicationText(pub, cache));
      cache.json = bytes;
    }
    return bytes;
  },
  reply(id, result, publications) {
    const body = publications === undefined ? JSON.stringify(result) : withPublications(result, publications);
    return Buffer.from(`{"id":${id},"result":${body}}`);
  },
  error(id, error) {
    return Buffer.from(JSON.stringify(id === undefined ? { error } : { id, error }));
  },
  push(push) {
    return Buffer.from(JSON.stringify(push));
  },
  join(frames) {
    const parts: Uint8Array[] = [];
    for (let i = 0; i < frames.length; i++) {
      if (i > 0) parts.push(NEWLINE);
      parts.push(frames[i] as Uint8Array);
    }
    return Buffer.concat(parts);
  },
};
