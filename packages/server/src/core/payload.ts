/**
 * Publication payloads as engines store them (`Publication.data`, a string): the JSON text of the
 * data, or, for a binary payload, `\u0000` followed by the bytes in base64. JSON text never starts
 * with U+0000, so engines store both unchanged and one `charCodeAt` tells them apart where a
 * publication is encoded (once per publication and format). JSON frames carry a binary payload as
 * `"b64data":"<base64>"` in place of `"data"`; MessagePack frames as a `bin` value in `data`.
 */
import { HeraldError } from '@herald/protocol';

/** Whether a stored payload is binary. */
export function isBinary(data: string): boolean {
  return data.charCodeAt(0) === 0;
}

/** The stored form of a binary payload. */
export function binaryPayload(bytes: Uint8Array): string {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return '\u0000' + buf.toString('base64');
}

/** The payload's field in a JSON frame: `"data":<json>`, or `"b64data":"<base64>"` for a binary one. */
export function jsonDataField(data: string): string {
  return isBinary(data) ? `"b64data":"${data.slice(1)}"` : `"data":${data}`;
}

/** The payload as a value: the parsed JSON, or the bytes of a binary payload. */
export function payloadValue(data: string): unknown {
  return isBinary(data) ? Buffer.from(data.slice(1), 'base64') : (JSON.parse(data) as unknown);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * The bytes of a `b64data` field (server API publish and broadcast); HERALD_ERR_PROTOCOL_BAD_FIELD
 * when it is not standard, padded base64.
 */
export function bytesOfBase64(value: unknown): Buffer {
  if (typeof value !== 'string' || !BASE64.test(value)) {
    throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', '"b64data" must be a string of standard padded base64');
  }
  return Buffer.from(value, 'base64');
}

/** Bytes of the payload as the publisher gave it (binary: the decoded bytes), for `maxMessageSize`. */
export function payloadSize(data: string): number {
  if (!isBinary(data)) return Buffer.byteLength(data);
  const b64 = data.length - 1;
  const pad = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  return (b64 / 4) * 3 - pad;
}
