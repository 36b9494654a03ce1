/**
 * The WebSocket fast path: a publication is framed once (RFC 6455 header + JSON payload) and the
 * same bytes are written to every subscriber's socket, instead of `ws.send` building a header and
 * issuing two writes per subscriber. Server frames are never masked, so the bytes are identical for
 * every connection. Frames queued for one connection in the same tick go out in one socket write.
 */
import type { EncodeCache, FrameEncoder, NonPubPush } from '../core/encoder.js';
import { jsonEncoder, publicationText } from '../core/encoder.js';
import { msgpackEncoder } from '../core/msgpack-encoder.js';
import type { Publication } from '../core/engine.js';

/** Frames `payload` as one final text frame (opcode 1, FIN set, no mask); `own`: see `frameWithHeader`. */
export function textFrame(payload: Uint8Array, own = false): Buffer {
  return wsFrame(payload, 0x81, own);
}

/** Frames `payload` as one final binary frame (opcode 2, FIN set, no mask). */
export function binaryFrame(payload: Uint8Array): Buffer {
  return wsFrame(payload, 0x82);
}

/** `text` as one final text frame, its UTF-8 encoded straight into the frame (no separate payload buffer). */
export function textFrameOfString(text: string, own = false): Buffer {
  const len = Buffer.byteLength(text);
  const frame = frameWithHeader(len, 0x81, own);
  frame.write(text, frame.length - len, 'utf8');
  return frame;
}

/** `first`: the header's first byte (FIN and opcode). */
function wsFrame(payload: Uint8Array, first: number, own = false): Buffer {
  const frame = frameWithHeader(payload.byteLength, first, own);
  frame.set(payload, frame.length - payload.byteLength);
  return frame;
}

/**
 * A frame of `len` payload bytes with its header written; the payload is the caller's to fill.
 * `own`: in memory of its own, not a slice of Node's shared 8 KiB pool. A publication's frame may
 * outlive its turn by seconds (held for a slow subscriber, waiting in a slow socket's queue), and a
 * pool slice keeps the whole pool alive: 25 slow dashboards holding 100 channels each kept ~20 MB
 * of pools for ~2.5 MB of frames, and the old generation filled with them (more mark-compacts).
 */
function frameWithHeader(len: number, first: number, own = false): Buffer {
  const headerLen = len < 126 ? 2 : len < 65_536 ? 4 : 10;
  const frame = own ? Buffer.allocUnsafeSlow(headerLen + len) : Buffer.allocUnsafe(headerLen + len);
  frame[0] = first;
  if (len < 126) {
    frame[1] = len;
  } else if (len < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    frame.writeUInt32BE(len >>> 0, 6);
  }
  return frame;
}

/** Herald's JSON protocol, each frame already a complete WebSocket message. */
export const wsFrameEncoder: FrameEncoder = {
  publication(pub: Publication, cache: EncodeCache) {
    let frame = cache.wsFrame;
    if (frame === undefined) {
      // Another transport may have encoded the JSON already; otherwise the text goes straight into the frame.
      frame =
        cache.json !== undefined ? textFrame(cache.json, true) : textFrameOfString(publicationText(pub, cache), true);
      cache.wsFrame = frame;
    }
    return frame;
  },
  reply: (id, result, publications) => textFrame(jsonEncoder.reply(id, result, publications)),
  error: (id, error) => textFrame(jsonEncoder.error(id, error)),
  push: (push: NonPubPush) => textFrame(jsonEncoder.push(push)),
  join: (frames) => Buffer.concat(frames as Uint8Array[]),
  concatenates: true,
};

/** Herald's MessagePack protocol (subprotocol `herald.msgpack`), each frame one binary WebSocket message. */
export const wsMsgpackFrameEncoder: FrameEncoder = {
  publication(pub: Publication, cache: EncodeCache) {
    let frame = cache.wsFrameMsgpack;
    if (frame === undefined) {
      frame = binaryFrame(msgpackEncoder.publication(pub, cache));
      cache.wsFrameMsgpack = frame;
    }
    return frame;
  },
  reply: (id, result, publications) => binaryFrame(msgpackEncoder.reply(id, result, publications)),
  error: (id, error) => binaryFrame(msgpackEncoder.error(id, error)),
  push: (push: NonPubPush) => binaryFrame(msgpackEncoder.push(push)),
  join: (frames) => Buffer.concat(frames as Uint8Array[]),
  concatenates: true,
};
