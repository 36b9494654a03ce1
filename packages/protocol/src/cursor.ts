/**
 * Cursors. A stream position is `(epoch, offset)`: offsets count 1, 2, 3, ... without gaps in
 * publish order; the epoch changes when the stream's history is lost. The text form is
 * `<epoch>:<offset>`, with epochs of `[A-Za-z0-9_-]`, 1-32 characters, and offsets 0..2^53-1
 * (0 means "before the first publication").
 */

export interface StreamPosition {
  readonly epoch: string;
  readonly offset: number;
}

const EPOCH = /^[A-Za-z0-9_-]{1,32}$/;
const OFFSET = /^(0|[1-9][0-9]{0,15})$/;

export function isValidEpoch(epoch: unknown): epoch is string {
  return typeof epoch === 'string' && EPOCH.test(epoch);
}

export function isValidOffset(offset: unknown): offset is number {
  return typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0;
}

/**
 * Whether `value` is a cursor object: a plain JSON object with exactly `epoch` and `offset`, both
 * valid. Any other field is rejected, like unknown fields of a command (docs/protocol.md), so a typo
 * (`{"epoch":"e","ofset":1}`) or a smuggled field fails loudly instead of riding along.
 */
export function isStreamPosition(value: unknown): value is StreamPosition {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length !== 2 || !keys.every((k) => k === 'epoch' || k === 'offset')) return false;
  const v = value as Record<string, unknown>;
  return isValidEpoch(v['epoch']) && isValidOffset(v['offset']);
}

/** A fresh `{epoch, offset}` with nothing else on it (for a value `isStreamPosition` accepted). */
export function copyStreamPosition(pos: StreamPosition): StreamPosition {
  return { epoch: pos.epoch, offset: pos.offset };
}

export function formatCursor(pos: StreamPosition): string {
  return `${pos.epoch}:${pos.offset}`;
}

/** Parses `<epoch>:<offset>`; returns undefined when malformed. */
export function parseCursor(text: unknown): StreamPosition | undefined {
  if (typeof text !== 'string') return undefined;
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const epoch = text.slice(0, colon);
  const off = text.slice(colon + 1);
  if (!EPOCH.test(epoch) || !OFFSET.test(off)) return undefined;
  const offset = Number(off);
  if (!Number.isSafeInteger(offset)) return undefined;
  return { epoch, offset };
}

/**
 * A cursor set: the positions of several streams in one string, used by the HTTP transports (the
 * SSE event id / `Last-Event-ID`, and the `cursor` query parameter of `/sse`, `/stream`, `/poll`).
 * Form: `<stream>;<epoch>;<offset>` joined by `,` (neither `;` nor `,` may appear in a channel name).
 */
export type CursorSet = Map<string, StreamPosition>;

export const MAX_CURSOR_SET_LENGTH = 8192;

export function formatCursorSet(set: ReadonlyMap<string, StreamPosition>): string {
  let out = '';
  for (const [stream, pos] of set) {
    if (out !== '') out += ',';
    out += `${stream};${pos.epoch};${pos.offset}`;
  }
  return out;
}

/**
 * Parses a cursor set; returns undefined when malformed (stream names are checked by the caller
 * with the channel grammar). A later entry for the same stream wins.
 */
export function parseCursorSet(text: unknown): CursorSet | undefined {
  if (typeof text !== 'string' || text.length > MAX_CURSOR_SET_LENGTH) return undefined;
  const set: CursorSet = new Map();
  if (text === '') return set;
  for (const part of text.split(',')) {
    const bits = part.split(';');
    if (bits.length !== 3) return undefined;
    const [stream, epoch, off] = bits as [string, string, string];
    if (stream === '' || !EPOCH.test(epoch) || !OFFSET.test(off)) return undefined;
    const offset = Number(off);
    if (!Number.isSafeInteger(offset)) return undefined;
    set.set(stream, { epoch, offset });
  }
  return set;
}
