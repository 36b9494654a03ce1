/**
 * The MessagePack codec of the WebSocket transport (`format: 'msgpack'`), in a module of its own:
 * the transport imports it dynamically, so bundles load it (and @msgpack/msgpack) only when an
 * application chooses the format. It imports nothing of the SDK at run time, so a bundler's lazy
 * chunk holds this and the codec only. The server sends one frame per message; several commands go out in one
 * message as consecutive MessagePack values.
 */
import { decodeMulti, Encoder } from '@msgpack/msgpack';
import type { WebSocketLike } from './transport.js';

// `ignoreUndefined`: commands leave unset options undefined, which JSON.stringify drops too.
const encoder = new Encoder({ ignoreUndefined: true });

/** Opens the socket: subprotocol `herald.msgpack`, binary messages as ArrayBuffers. */
export function open(Ctor: WebSocketLike, url: string): WebSocket {
  const socket = new Ctor(url, 'herald.msgpack');
  socket.binaryType = 'arraybuffer';
  return socket;
}

/** The frames of one binary message. */
export function decode(data: unknown): unknown[] {
  return [...decodeMulti(new Uint8Array(data as ArrayBuffer))];
}

/** One message holding `frames`. */
export function encode(frames: readonly unknown[]): Uint8Array {
  if (frames.length === 1) return encoder.encode(frames[0]);
  const parts = frames.map((f) => encoder.encode(f));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
