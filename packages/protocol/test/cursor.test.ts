import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatCursor,
  isStreamPosition,
  isValidEpoch,
  isValidOffset,
  parseCursor,
  type StreamPosition,
} from '@herald/protocol';

const EPOCH_CHARS = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-'];
const epoch = fc.string({ unit: fc.constantFrom(...EPOCH_CHARS), minLength: 1, maxLength: 32 });
const offset = fc.oneof(fc.maxSafeNat(), fc.nat({ max: 1000 }), fc.constantFrom(0, Number.MAX_SAFE_INTEGER));
const position: fc.Arbitrary<StreamPosition> = fc.record({ epoch, offset });

describe('formatCursor / parseCursor', () => {
  it('round-trips every valid position', () => {
    fc.assert(
      fc.property(position, (pos) => {
        const text = formatCursor(pos);
        expect(text).toBe(`${pos.epoch}:${pos.offset}`);
        expect(parseCursor(text)).toEqual(pos);
      }),
    );
  });

  it('parses known cursors', () => {
    expect(parseCursor('abc:0')).toEqual({ epoch: 'abc', offset: 0 });
    expect(parseCursor('k3x_9-Z:42')).toEqual({ epoch: 'k3x_9-Z', offset: 42 });
    expect(parseCursor('e:9007199254740991')).toEqual({ epoch: 'e', offset: Number.MAX_SAFE_INTEGER });
    expect(parseCursor(`${'a'.repeat(32)}:1`)).toEqual({ epoch: 'a'.repeat(32), offset: 1 });
  });

  it('never throws, and what it accepts is canonical (formats back to the same text)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.anything()), (input) => {
        const pos = parseCursor(input);
        if (pos !== undefined) {
          expect(isStreamPosition(pos)).toBe(true);
          expect(formatCursor(pos)).toBe(input);
        }
      }),
    );
  });

  it('never throws on near-misses built from valid cursors', () => {
    const noise = fc.constantFrom(':', '-', '0', ' ', '.', 'e', '+', '\n', '');
    fc.assert(
      fc.property(position, noise, fc.nat(), (pos, ch, at) => {
        const text = formatCursor(pos);
        const i = at % (text.length + 1);
        const mutated = text.slice(0, i) + ch + text.slice(i);
        const parsed = parseCursor(mutated);
        if (parsed !== undefined) expect(formatCursor(parsed)).toBe(mutated);
      }),
    );
  });

  it('rejects any text with a character outside [A-Za-z0-9_:-]', () => {
    fc.assert(
      fc.property(position, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), fc.nat(), (pos, ch, at) => {
        fc.pre(!/^[A-Za-z0-9_:-]$/.test(ch));
        const text = formatCursor(pos);
        const i = at % (text.length + 1);
        expect(parseCursor(text.slice(0, i) + ch + text.slice(i))).toBeUndefined();
      }),
    );
  });

  it('rejects malformed cursors', () => {
    const malformed = [
      '',
      ':',
      'abc',
      '12',
      ':5', // no epoch
      'abc:', // no offset
      'a:b:1', // a colon in the epoch
      'abc:01', // leading zero
      'abc:00',
      'abc:-1',
      'abc:+1',
      'abc:1.5',
      'abc:1e3',
      'abc:0x10',
      'abc: 1',
      ' abc:1',
      'abc:1 ',
      'abc:1\n',
      'a.b:1',
      'a b:1',
      'é:1',
      `${'a'.repeat(33)}:1`, // epoch longer than 32
      'abc:9007199254740992', // 2^53, not a safe integer
      'abc:9999999999999999',
      'abc:12345678901234567', // 17 digits
      'abc:Infinity',
      'abc:NaN',
    ];
    for (const text of malformed) expect(parseCursor(text), text).toBeUndefined();
  });

  it('rejects non-strings', () => {
    for (const v of [undefined, null, 0, 1, true, {}, [], { epoch: 'e', offset: 1 }, ['e', 1]]) {
      expect(parseCursor(v)).toBeUndefined();
    }
  });
});

describe('isValidEpoch / isValidOffset / isStreamPosition', () => {
  it('accepts valid parts', () => {
    fc.assert(
      fc.property(position, (pos) => {
        expect(isValidEpoch(pos.epoch)).toBe(true);
        expect(isValidOffset(pos.offset)).toBe(true);
        expect(isStreamPosition(pos)).toBe(true);
      }),
    );
  });

  it('rejects invalid epochs', () => {
    for (const v of ['', 'a'.repeat(33), 'a:b', 'a.b', 'a b', 'é', 1, null, undefined, ['a'], {}]) {
      expect(isValidEpoch(v)).toBe(false);
    }
  });

  it('rejects invalid offsets', () => {
    for (const v of [-1, -0.5, 1.5, NaN, Infinity, -Infinity, Number.MAX_SAFE_INTEGER + 1, '1', null, undefined, 1n]) {
      expect(isValidOffset(v)).toBe(false);
    }
    expect(isValidOffset(0)).toBe(true);
    expect(isValidOffset(Number.MAX_SAFE_INTEGER)).toBe(true);
  });

  it('rejects values that are not positions', () => {
    for (const v of [
      null,
      undefined,
      'e:1',
      1,
      [],
      {},
      { epoch: 'e' },
      { offset: 1 },
      { epoch: '', offset: 1 },
      { epoch: 'e', offset: -1 },
      { epoch: 'e', offset: '1' },
      { epoch: 1, offset: 1 },
    ]) {
      expect(isStreamPosition(v)).toBe(false);
    }
  });

  it('rejects a cursor object with any field besides epoch and offset', () => {
    expect(isStreamPosition({ epoch: 'x', offset: 1 })).toBe(true);
    for (const v of [
      { epoch: 'x', offset: 1, z: 1 },
      { epoch: 'x', offset: 1, epoch2: 'y' },
      { epoch: 'x', offset: 1, undefinedField: undefined },
      JSON.parse('{"epoch":"x","offset":1,"__proto__":{}}') as unknown,
      Object.assign(['x', 1], { epoch: 'x', offset: 1 }),
    ]) {
      expect(isStreamPosition(v), JSON.stringify(v)).toBe(false);
    }
    // Inherited properties are not fields of the object (JSON never makes them).
    expect(isStreamPosition(Object.assign(Object.create({ z: 1 }) as object, { epoch: 'x', offset: 1 }))).toBe(true);
    fc.assert(
      fc.property(
        position,
        fc.string().filter((k) => k !== 'epoch' && k !== 'offset'),
        fc.jsonValue(),
        (pos, key, value) => {
          expect(isStreamPosition({ ...pos, [key]: value })).toBe(false);
        },
      ),
      { seed: 14, numRuns: 500 },
    );
  });

  it('never throws on arbitrary values', () => {
    fc.assert(
      fc.property(fc.anything(), (v) => {
        isStreamPosition(v);
        isValidEpoch(v);
        isValidOffset(v);
      }),
    );
  });
});
