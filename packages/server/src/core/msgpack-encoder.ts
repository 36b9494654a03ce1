/**
 * Herald's MessagePack protocol: the same frames as the JSON protocol (same maps, same field names),
 * each one MessagePack map; a payload is its value (a `bin` for a binary payload) instead of JSON
 * text. A publication is turned from its stored JSON text into MessagePack once, in the shared
 * `EncodeCache`, whatever the number of its MessagePack subscribers. Commands from a client may
 * come several to a message, as consecutive MessagePack values.
 */
import { Decoder, Encoder, ExtData } from '@msgpack/msgpack';
import type { ErrorBody } from '@herald/protocol';
import type { EncodeCache, FrameEncoder, NonPubPush } from './encoder.js';
import type { Publication } from './engine.js';
import { payloadValue } from './payload.js';

// `ignoreUndefined` matches JSON.stringify, which leaves undefined fields out. One encoder and one
// decoder serve every session: both are synchronous and re-entrant (they clone themselves when
// entered twice).
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

function encode(value: unknown): Buffer {
  const view = encoder.encodeSharedRef(value);
  // A copy (the shared buffer is reused by the next encode), as a Buffer so `join` can concat it.
  return Buffer.from(view);
}

function publicationsValue(pubs: readonly Publication[]): object[] {
  return pubs.map((p) => ({ channel: p.channel, offset: p.offset, data: payloadValue(p.data) }));
}

export const msgpackEncoder: FrameEncoder = {
  publication(pub: Publication, cache: EncodeCache) {
    let bytes = cache.msgpack;
    if (bytes === undefined) {
      bytes = encode({
        push: 'pub',
        stream: pub.stream,
        channel: pub.channel,
        epoch: pub.epoch,
        offset: pub.offset,
        data: payloadValue(pub.data),
      });
      cache.msgpack = bytes;
    }
    return bytes;
  },
  reply(id: number, result: object, publications?: readonly Publication[]) {
    const body = publications === undefined ? result : { ...result, publications: publicationsValue(publications) };
    return encode({ id, result: body });
  },
  error(id: number | undefined, error: ErrorBody) {
    return encode(id === undefined ? { error } : { id, error });
  },
  push(push: NonPubPush) {
    return encode(push);
  },
  join(frames: readonly Uint8Array[]) {
    return Buffer.concat(frames);
  },
};

/** What `decodeMsgpackCommands` makes of one message: the values, or why it is malformed. */
export type MsgpackMessage = { ok: true; values: unknown[] } | { ok: false; message: string };

/**
 * Decodes the MessagePack values of one client message (each should be a command map). Refuses the
 * whole message when it is not valid MessagePack, and when a value holds what the JSON payload model
 * cannot store: bytes anywhere but as a publish's whole `data`, and extension types.
 */
export function decodeMsgpackCommands(bytes: Uint8Array): MsgpackMessage {
  const values: unknown[] = [];
  try {
    for (const value of decoder.decodeMulti(bytes)) values.push(value);
  } catch (err) {
    return { ok: false, message: `message is not valid MessagePack (${(err as Error).message.slice(0, 80)})` };
  }
  for (const value of values) {
    const bad = unstorable(value);
    if (bad !== undefined) return { ok: false, message: bad };
  }
  if (values.length === 0) return { ok: false, message: 'message holds no MessagePack value' };
  return { ok: true, values };
}

/** Why a decoded command cannot be taken (see `decodeMsgpackCommands`), or undefined. Not recursive. */
function unstorable(command: unknown): string | undefined {
  const stack: unknown[] = [command];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (v instanceof ExtData) return 'MessagePack extension types are not accepted';
    if (v instanceof Uint8Array) {
      // Bytes are a payload of their own, not part of one: only a publish's `data` may be bytes.
      const data = (command as { cmd?: unknown; data?: unknown }).data;
      if (v === data && (command as { cmd?: unknown }).cmd === 'publish') continue;
      return 'binary (bin) values are accepted only as the whole "data" of a publish';
    }
    // Pushed one by one: spreading a large array into push() would overflow the call stack.
    if (v instanceof Date) continue;
    for (const item of Array.isArray(v) ? (v as unknown[]) : Object.values(v)) stack.push(item);
  }
  return undefined;
}
