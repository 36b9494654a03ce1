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

export function isStreamPosition(value: unknown): value is StreamPosition {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return isValidEpoch(v['epoch']) && isValidOffset(v['offset']);
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
