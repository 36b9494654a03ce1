/**
 * Fuzz target for everything the protocol package parses from a client (issue 14): frame splitting
 * (`splitFrames`), command decoding (`decodeCommand`), cursors (`parseCursor`, `isStreamPosition`)
 * and cursor sets (`parseCursorSet`, the SSE `Last-Event-ID`). Whatever arrives, each one returns a
 * result (an error result, or undefined) and never throws; what it accepts is well-formed.
 *
 * Fixed seed and run budget: the suite is repeatable and takes about a second. To explore further,
 * run with another seed (FUZZ_SEED=<n>) and more runs (FUZZ_RUNS=<n>); a failure prints the seed
 * and path that reproduce it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  COMMAND_NAMES,
  MAX_CURSOR_SET_LENGTH,
  checkChannel,
  isStreamName,
  decodeCommand,
  formatCursorSet,
  isErrorCode,
  isStreamPosition,
  parseCursor,
  parseCursorSet,
  splitFrames,
  type DecodeResult,
} from '@herald/protocol';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 2000);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20_140_014);
const budget = { seed: SEED, numRuns: RUNS };

/** Text as a client could send it: any code units, lone surrogates, JSON-ish punctuation. */
const anyText = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: fc.constantFrom(...'{}[]":,;\n\r\t 0123456789.-eE_ab*\\'.split('')) }),
);

/** Values that look like commands: the right keys, arbitrary values, sometimes an extra key. */
const commandLike = fc.record(
  {
    id: fc.oneof(fc.integer(), fc.double(), fc.constant(1), fc.jsonValue()),
    cmd: fc.oneof(fc.constantFrom(...COMMAND_NAMES), fc.string()),
    channel: fc.oneof(fc.constantFrom('a', 'a.b', 'a.**', '**', 'a..b', ''), fc.string(), fc.jsonValue()),
    since: fc.oneof(
      fc.record({ epoch: fc.string(), offset: fc.oneof(fc.nat(), fc.double()) }),
      fc.record({ epoch: fc.constant('e'), offset: fc.nat(), z: fc.jsonValue() }),
      fc.jsonValue(),
    ),
    backlog: fc.oneof(fc.nat({ max: 2000 }), fc.jsonValue()),
    limit: fc.oneof(fc.nat({ max: 2000 }), fc.jsonValue()),
    reverse: fc.jsonValue(),
    data: fc.jsonValue(),
    token: fc.oneof(fc.string(), fc.jsonValue()),
    method: fc.oneof(fc.string(), fc.jsonValue()),
    idempotencyKey: fc.oneof(fc.string(), fc.jsonValue()),
    extra: fc.jsonValue(),
  },
  { requiredKeys: ['id', 'cmd'] },
);

/** Commands that are often valid: the tests below must see both outcomes, not only early rejections. */
const nearlyValid = fc.oneof(
  fc.record({ id: fc.integer({ min: 1 }), cmd: fc.constant('ping') }),
  fc.record(
    {
      id: fc.integer({ min: 1 }),
      cmd: fc.constantFrom('subscribe', 'history', 'unsubscribe'),
      channel: fc.constantFrom('a', 'a.b', 'a.**', 'a..b'),
      since: fc.oneof(
        fc.record({ epoch: fc.constantFrom('e', 'x:y'), offset: fc.integer({ min: -1 }) }),
        fc.jsonValue(),
      ),
    },
    { requiredKeys: ['id', 'cmd', 'channel'] },
  ),
  fc.record({
    id: fc.integer({ min: 1 }),
    cmd: fc.constant('publish'),
    channel: fc.constant('a'),
    data: fc.jsonValue(),
  }),
);

/** A decode result is either a command or a documented error with a message. */
function expectWellFormed(r: DecodeResult): void {
  if (r.ok) {
    expect(Number.isSafeInteger(r.command.id) && r.command.id > 0).toBe(true);
    expect(COMMAND_NAMES).toContain(r.command.cmd);
    return;
  }
  expect(isErrorCode(r.code)).toBe(true);
  expect(typeof r.message).toBe('string');
  expect(r.id === undefined || (Number.isSafeInteger(r.id) && r.id > 0)).toBe(true);
}

describe('fuzz: splitFrames', () => {
  it('returns the non-blank lines of any text, none holding a newline', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const frames = splitFrames(text);
        expect(frames).toEqual(text.split('\n').filter((l) => l.trim() !== ''));
        for (const f of frames) expect(f.includes('\n')).toBe(false);
      }),
      budget,
    );
  });
});

describe('fuzz: decodeCommand', () => {
  it('never throws on any value, and answers with a command or a documented error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.jsonValue(), commandLike, nearlyValid), (value) => {
        expectWellFormed(decodeCommand(value));
      }),
      budget,
    );
  });

  it('never throws on any text that parses as JSON, frame by frame (what a connection receives)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          anyText,
          fc.json(),
          commandLike.map((c) => JSON.stringify(c)),
        ),
        (text) => {
          for (const frame of splitFrames(text)) {
            let value: unknown;
            try {
              value = JSON.parse(frame);
            } catch {
              continue; // the session answers HERALD_ERR_PROTOCOL_MALFORMED without decoding
            }
            expectWellFormed(decodeCommand(value));
          }
        },
      ),
      budget,
    );
  });

  it('reaches both outcomes on command-shaped input (the arbitraries are not all rejected early)', () => {
    let accepted = 0;
    let rejected = 0;
    fc.assert(
      fc.property(fc.oneof(commandLike, nearlyValid), (value) => {
        expectWellFormed(decodeCommand(value));
        if (decodeCommand(value).ok) accepted++;
        else rejected++;
      }),
      budget,
    );
    expect(accepted).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
  });

  it('accepts a cursor only as exactly {epoch, offset}', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (since) => {
        const r = decodeCommand({ id: 1, cmd: 'subscribe', channel: 'a', since });
        expect(r.ok).toBe(isStreamPosition(since));
        if (r.ok && r.command.cmd === 'subscribe')
          expect(Object.keys(r.command.since ?? {}).sort()).toEqual(['epoch', 'offset']);
      }),
      budget,
    );
  });
});

describe('fuzz: cursors and cursor sets (Last-Event-ID)', () => {
  it('parseCursor never throws, and what it accepts formats back to the same text', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.anything()), (input) => {
        const pos = parseCursor(input);
        if (pos === undefined) return;
        expect(isStreamPosition(pos)).toBe(true);
        expect(`${pos.epoch}:${pos.offset}`).toBe(input);
      }),
      budget,
    );
  });

  it('parseCursorSet never throws, and what it accepts round-trips', () => {
    const cursorish = fc
      .array(
        fc.tuple(
          fc.oneof(fc.constantFrom('a', 'a.b', 'a.**', ''), fc.string()),
          fc.oneof(fc.constantFrom('e', 'E_-9', ''), fc.string()),
          fc.oneof(fc.nat().map(String), fc.constantFrom('01', '-1', '1.5', '9007199254740993'), fc.string()),
        ),
        { maxLength: 5 },
      )
      .map((parts) => parts.map((p) => p.join(';')).join(','));
    fc.assert(
      fc.property(fc.oneof(anyText, cursorish, fc.anything()), (input) => {
        const set = parseCursorSet(input);
        if (set === undefined) return;
        expect(typeof input).toBe('string');
        expect((input as string).length).toBeLessThanOrEqual(MAX_CURSOR_SET_LENGTH);
        for (const [stream, pos] of set) {
          expect(stream).not.toBe('');
          expect(isStreamPosition(pos)).toBe(true);
        }
        expect(parseCursorSet(formatCursorSet(set))).toEqual(set);
      }),
      budget,
    );
  });

  it('a formatted set of valid streams parses back to itself', () => {
    const segment = fc.string({ unit: fc.constantFrom(...'abcXYZ019_@~=+:-'.split('')), minLength: 1, maxLength: 8 });
    const channel = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => s.join('.'));
    const epoch = fc.string({ unit: fc.constantFrom(...'abcXYZ019_-'.split('')), minLength: 1, maxLength: 32 });
    fc.assert(
      fc.property(fc.dictionary(channel, fc.record({ epoch, offset: fc.maxSafeNat() }), { maxKeys: 8 }), (dict) => {
        const set = new Map(Object.entries(dict));
        for (const stream of set.keys()) expect(checkChannel(stream).ok).toBe(true);
        expect(parseCursorSet(formatCursorSet(set))).toEqual(set);
      }),
      budget,
    );
  });
});

describe('isStreamName', () => {
  // Names near the grammar's edges: segments from a small alphabet with '.', '*', a non-ASCII letter.
  const near = fc
    .array(fc.oneof(fc.constantFrom('a', 'Z', '0', '_', '-', '~', '.', '.', '**', '*', 'é', ' ', '/')), {
      maxLength: 40,
    })
    .map((parts) => parts.join(''));
  const long = fc
    .integer({ min: 1, max: 20 })
    .chain((n) => fc.array(fc.stringMatching(/^[a-z]{1,20}$/), { minLength: n, maxLength: n }).map((s) => s.join('.')));

  it('accepts exactly what checkChannel accepts', () => {
    fc.assert(
      fc.property(fc.oneof(near, long, fc.string()), (name) => {
        expect(isStreamName(name), JSON.stringify(name)).toBe(checkChannel(name).ok);
      }),
      budget,
    );
    for (const name of ['a', 'a.**', 'a.b.c', '**', 'a.**.b', 'a..b', '.a', 'a.', 'x'.repeat(255), 'x'.repeat(256)])
      expect(isStreamName(name), name).toBe(checkChannel(name).ok);
  });
});
