import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_CHANNEL_BYTES,
  MAX_CHANNEL_SEGMENTS,
  checkChannel,
  isSubtree,
  isValidChannel,
  isValidStream,
  namespaceOf,
  streamMatches,
  streamsOf,
} from '@herald/protocol';

const SEGMENT_CHARS = [
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
  '_',
  '@',
  '~',
  '=',
  '+',
  ':',
  '-',
];
const bytes = (s: string): number => new TextEncoder().encode(s).length;

const segment = (maxLength = 12): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength: 1, maxLength });

/** Valid exact channels, from one segment up to the limits (16 segments, 255 bytes). */
const channel: fc.Arbitrary<string> = fc
  .array(segment(24), { minLength: 1, maxLength: MAX_CHANNEL_SEGMENTS })
  .map((segs) => segs.join('.'))
  .filter((c) => bytes(c) <= MAX_CHANNEL_BYTES);

/** Valid subtree patterns `x.**` (the `**` counts as a segment and its bytes count too). */
const pattern: fc.Arbitrary<string> = fc
  .array(segment(24), { minLength: 1, maxLength: MAX_CHANNEL_SEGMENTS - 1 })
  .map((segs) => `${segs.join('.')}.**`)
  .filter((c) => bytes(c) <= MAX_CHANNEL_BYTES);

/** Channels of valid segments, at most 16 of them, over 255 bytes: each segment is long enough to get there. */
const tooLong: fc.Arbitrary<string> = fc.integer({ min: 1, max: MAX_CHANNEL_SEGMENTS }).chain((n) => {
  const minLength = Math.ceil((MAX_CHANNEL_BYTES + 1 - (n - 1)) / n);
  return fc
    .array(fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength, maxLength: minLength + 20 }), {
      minLength: n,
      maxLength: n,
    })
    .map((segs) => segs.join('.'));
});

/** One character the grammar forbids inside a segment (`.` is the separator, not a segment char). */
const forbiddenChar: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom(' ', '*', '/', '#', '$', '?', '%', '\n', '\t', '\0', '!', '"', "'", '\\', 'é', '€', '😀', '\uD800'),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  )
  .filter((ch) => !SEGMENT_CHARS.includes(ch) && ch !== '.');

describe('checkChannel: valid input', () => {
  it('accepts every generated exact channel', () => {
    fc.assert(
      fc.property(channel, (c) => {
        const check = checkChannel(c);
        expect(check).toEqual({ ok: true, channel: c, subtree: false, base: c, namespace: c.split('.')[0] });
        expect(isValidChannel(c)).toBe(true);
        expect(isValidStream(c)).toBe(true);
        expect(checkChannel(c, { allowSubtree: false }).ok).toBe(true);
      }),
    );
  });

  it('accepts every generated subtree pattern as a stream, but not as an exact channel', () => {
    fc.assert(
      fc.property(pattern, (p) => {
        const base = p.slice(0, -3);
        expect(checkChannel(p)).toEqual({ ok: true, channel: p, subtree: true, base, namespace: p.split('.')[0] });
        expect(isValidStream(p)).toBe(true);
        expect(isValidChannel(p)).toBe(false);
        expect(checkChannel(p, { allowSubtree: false })).toEqual({
          ok: false,
          reason: 'a subtree pattern is not allowed here',
        });
      }),
    );
  });

  it('accepts the limits exactly', () => {
    const sixteen = Array.from({ length: 16 }, (_, i) => `s${i}`).join('.');
    expect(isValidChannel(sixteen)).toBe(true);
    const fifteenAndSubtree = Array.from({ length: 15 }, (_, i) => `s${i}`).join('.') + '.**';
    expect(isValidStream(fifteenAndSubtree)).toBe(true);
    expect(isValidChannel('a'.repeat(255))).toBe(true);
    expect(isValidStream('a'.repeat(252) + '.**')).toBe(true);
    expect(isValidChannel(SEGMENT_CHARS.join(''))).toBe(true);
  });
});

describe('checkChannel: invalid input', () => {
  it('rejects non-strings and the empty string', () => {
    for (const v of [undefined, null, 1, true, {}, [], ['a'], Symbol('a')]) {
      expect(checkChannel(v)).toEqual({ ok: false, reason: 'channel must be a string' });
      expect(isValidChannel(v)).toBe(false);
      expect(isValidStream(v)).toBe(false);
    }
    expect(checkChannel('')).toEqual({ ok: false, reason: 'channel must not be empty' });
  });

  it('rejects any channel with a forbidden character', () => {
    fc.assert(
      fc.property(channel, forbiddenChar, fc.nat(), (c, ch, at) => {
        const i = at % (c.length + 1);
        const bad = c.slice(0, i) + ch + c.slice(i);
        const check = checkChannel(bad);
        expect(check.ok).toBe(false);
        expect(isValidStream(bad)).toBe(false);
        if (!check.ok && bytes(bad) <= MAX_CHANNEL_BYTES && !bad.split('.').includes('')) {
          expect(check.reason).toMatch(/has a character outside/);
        }
      }),
    );
  });

  it('rejects any channel with an empty segment', () => {
    fc.assert(
      fc.property(fc.array(segment(), { minLength: 1, maxLength: 8 }), fc.nat(), (segs, at) => {
        const withEmpty = [...segs];
        withEmpty.splice(at % (segs.length + 1), 0, '');
        const bad = withEmpty.join('.');
        expect(checkChannel(bad)).toEqual({ ok: false, reason: 'channel has an empty segment' });
        expect(isValidStream(bad + '.**')).toBe(false);
      }),
    );
    for (const bad of ['.', '..', 'a.', '.a', 'a..b', '.**', 'a..**']) expect(isValidStream(bad)).toBe(false);
  });

  it('rejects more than 16 segments, counting a trailing `**`', () => {
    fc.assert(
      fc.property(fc.array(segment(3), { minLength: MAX_CHANNEL_SEGMENTS + 1, maxLength: 40 }), (segs) => {
        const bad = segs.join('.');
        expect(checkChannel(bad)).toEqual({ ok: false, reason: 'channel has more than 16 segments' });
      }),
    );
    const sixteen = Array.from({ length: 16 }, (_, i) => `s${i}`).join('.');
    expect(isValidStream(sixteen + '.**')).toBe(false);
  });

  it('rejects more than 255 bytes', () => {
    fc.assert(
      fc.property(tooLong, (bad) => {
        expect(checkChannel(bad)).toEqual({ ok: false, reason: 'channel is longer than 255 bytes' });
      }),
    );
    expect(isValidChannel('a'.repeat(256))).toBe(false);
    expect(isValidStream('a'.repeat(253) + '.**')).toBe(false);
  });

  it('counts bytes in UTF-8, not UTF-16 code units', () => {
    const tooLong = { ok: false, reason: 'channel is longer than 255 bytes' };
    expect(checkChannel('é'.repeat(128))).toEqual(tooLong); // 128 code units, 256 bytes
    expect(checkChannel('€'.repeat(86))).toEqual(tooLong); // 86 code units, 258 bytes
    expect(checkChannel('😀'.repeat(64))).toEqual(tooLong); // 128 code units, 256 bytes
    // At or under 255 bytes the length passes and the characters are what is rejected.
    expect(checkChannel('€'.repeat(85))).toMatchObject({ ok: false, reason: expect.stringMatching(/character/) });
    expect(checkChannel('😀'.repeat(63))).toMatchObject({ ok: false, reason: expect.stringMatching(/character/) });
  });

  it('rejects `**` anywhere but as the last segment after at least one other', () => {
    fc.assert(
      fc.property(fc.array(segment(), { minLength: 1, maxLength: 8 }), fc.nat(), (segs, at) => {
        const withStars = [...segs];
        withStars.splice(at % segs.length, 0, '**'); // never at the end
        expect(checkChannel(withStars.join('.')).ok).toBe(false);
      }),
    );
    expect(checkChannel('**')).toEqual({
      ok: false,
      reason: '`**` needs a channel before it (for example `news.**`)',
    });
    expect(checkChannel('a.**.b')).toEqual({ ok: false, reason: '`**` may only be the last segment' });
    expect(checkChannel('a.**.**')).toEqual({ ok: false, reason: '`**` may only be the last segment' });
    for (const bad of ['*', 'a.*', 'a**', 'a.b**', 'a.**b', 'a.***', '**.a']) expect(isValidStream(bad)).toBe(false);
  });

  it('keeps the error message short for long input', () => {
    const check = checkChannel(`a.${'x'.repeat(100)}!`);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason.length).toBeLessThan(100);
  });
});

describe('streams', () => {
  it('isSubtree tells patterns from exact channels', () => {
    fc.assert(fc.property(channel, (c) => void expect(isSubtree(c)).toBe(false)));
    fc.assert(fc.property(pattern, (p) => void expect(isSubtree(p)).toBe(true)));
  });

  it('streamsOf lists the exact channel, then every subtree from the deepest to the namespace', () => {
    expect(streamsOf('a')).toEqual(['a', 'a.**']);
    expect(streamsOf('a.b.c')).toEqual(['a.b.c', 'a.b.c.**', 'a.b.**', 'a.**']);
    fc.assert(
      fc.property(channel, (c) => {
        const streams = streamsOf(c);
        const segs = c.split('.');
        expect(streams).toHaveLength(segs.length + 1);
        expect(streams[0]).toBe(c);
        expect(new Set(streams).size).toBe(streams.length);
        for (const s of streams) {
          expect(streamMatches(s, c)).toBe(true);
          expect(namespaceOf(s)).toBe(namespaceOf(c)); // a subtree never crosses namespaces
        }
        for (const s of streams.slice(1)) expect(isSubtree(s)).toBe(true);
      }),
    );
  });

  it('a stream matches a channel exactly when it is one of streamsOf(channel)', () => {
    // A tiny alphabet so that generated patterns and channels share prefixes often.
    const small = fc.constantFrom('a', 'b', 'ab', 'a-b');
    const smallChannel = fc.array(small, { minLength: 1, maxLength: 5 }).map((s) => s.join('.'));
    const smallStream = fc.oneof(
      smallChannel,
      smallChannel.map((c) => `${c}.**`),
    );
    fc.assert(
      fc.property(smallChannel, smallStream, (c, s) => {
        expect(streamMatches(s, c)).toBe(streamsOf(c).includes(s));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(channel, pattern, (c, s) => {
        expect(streamMatches(s, c)).toBe(streamsOf(c).includes(s));
      }),
    );
  });

  it('does not match on a shared string prefix that is not a segment boundary', () => {
    expect(streamMatches('ab.**', 'abc')).toBe(false);
    expect(streamMatches('ab.**', 'ab')).toBe(true);
    expect(streamMatches('ab.**', 'ab.c')).toBe(true);
    expect(streamMatches('a.b.**', 'a.bc.d')).toBe(false);
    expect(streamMatches('a.b', 'a.b.c')).toBe(false);
    expect(streamMatches('a.b.c', 'a.b')).toBe(false);
  });
});

describe('namespaceOf', () => {
  it('is the first segment of a channel or pattern, as checkChannel reports it', () => {
    fc.assert(
      fc.property(fc.oneof(channel, pattern), (c) => {
        const ns = namespaceOf(c);
        expect(ns).toBe(c.split('.')[0]);
        expect(checkChannel(c)).toMatchObject({ ok: true, namespace: ns });
        expect(ns).not.toContain('.');
      }),
    );
    expect(namespaceOf('radio')).toBe('radio');
    expect(namespaceOf('radio.event.tweet')).toBe('radio');
    expect(namespaceOf('radio.**')).toBe('radio');
  });
});
