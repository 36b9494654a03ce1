/**
 * Durations and sizes as people write them in config files and environment variables.
 *
 * - Durations resolve to milliseconds: a number is ms; a string is one or more `<number><unit>` parts
 *   with units `ms`, `s`, `m`, `h`, `d` (`"250ms"`, `"30s"`, `"1.5h"`, `"1m30s"`); a bare numeric
 *   string is ms.
 * - Sizes resolve to bytes: a number is bytes; a string is `<number><unit>` with units `b`, `kb`,
 *   `mb`, `gb` (also `k`/`m`/`g` and `kib`/`mib`/`gib`), all powers of 1024 (`"64kb"` is 65536); a bare
 *   numeric string is bytes.
 *
 * Units are case-insensitive and may be separated from the number by spaces. Both parsers return
 * `undefined` for anything they cannot read (negative numbers, unknown units, NaN, ...); they do not
 * check ranges or that the result is a whole number: the config validator does.
 */

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

const NUMBER = /^\d+(?:\.\d+)?$/;
const DURATION_PART = /(\d+(?:\.\d+)?)\s*([a-z]+)\s*/y;
const SIZE = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/;

function fromNumber(input: number): number | undefined {
  return Number.isFinite(input) && input >= 0 ? input : undefined;
}

/** Milliseconds from a number (ms) or a string such as `"250ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"1d"`. */
export function parseDuration(input: unknown): number | undefined {
  if (typeof input === 'number') return fromNumber(input);
  if (typeof input !== 'string') return undefined;
  const text = input.trim().toLowerCase();
  if (NUMBER.test(text)) return Number(text);
  if (text === '') return undefined;
  let total = 0;
  let pos = 0;
  let lastUnit = Infinity;
  while (pos < text.length) {
    DURATION_PART.lastIndex = pos;
    const match = DURATION_PART.exec(text);
    if (!match) return undefined;
    const unit = DURATION_UNITS[match[2] ?? ''];
    // Parts must be known units, from the largest to the smallest, each once ("1h30m", not "30m1h").
    if (unit === undefined || unit >= lastUnit) return undefined;
    lastUnit = unit;
    total += Number(match[1]) * unit;
    pos = DURATION_PART.lastIndex;
  }
  return total;
}

/** Bytes from a number (bytes) or a string such as `"512b"`, `"64kb"`, `"1mb"` (1kb = 1024 bytes). */
export function parseSize(input: unknown): number | undefined {
  if (typeof input === 'number') return fromNumber(input);
  if (typeof input !== 'string') return undefined;
  const text = input.trim().toLowerCase();
  if (NUMBER.test(text)) return Number(text);
  const match = SIZE.exec(text);
  if (!match) return undefined;
  const unit = SIZE_UNITS[match[2] ?? ''];
  return unit === undefined ? undefined : Number(match[1]) * unit;
}

/** A short human form of a number of ms, for messages: `300000` → `"5m"`, `1500` → `"1500ms"`. */
export function formatDuration(ms: number): string {
  for (const [unit, factor] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= factor && ms % factor === 0) return `${ms / factor}${unit}`;
  }
  return `${ms}ms`;
}

/** A short human form of a number of bytes, for messages: `65536` → `"64kb"`, `1000` → `"1000b"`. */
export function formatSize(bytes: number): string {
  for (const [unit, factor] of [
    ['gb', 1024 ** 3],
    ['mb', 1024 ** 2],
    ['kb', 1024],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}b`;
}
