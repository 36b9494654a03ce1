/**
 * Fuzz target for what the HTTP transports parse from a request (issue 14): the query of `/sse`,
 * `/stream`, `/poll` (`channel`, `cursor`, `backlog`, `timeout`, `session`, `token`) and the SSE
 * `Last-Event-ID` header, through `parseTransportQuery`; and the cursor sets `StreamCursors` writes
 * (the SSE event id a browser sends back). Whatever arrives, parsing returns a well-formed query or
 * throws a HeraldError with a documented code (answered as an HTTP error), never anything else.
 *
 * Fixed seed and run budget, so the suite is repeatable and quick; FUZZ_SEED / FUZZ_RUNS explore
 * further.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeraldError, checkChannel, isErrorCode, isStreamPosition } from '@herald/protocol';
import { MAX_URL_LENGTH, parseTransportQuery, type TransportQuery } from '../src/http/query.js';
import { StreamCursors } from '../src/transports/stream-cursors.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 2000);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20_140_014);
const budget = { seed: SEED, numRuns: RUNS };

const MAX_CHANNELS = 4;

const segment = fc.string({ unit: fc.constantFrom(...'abcXYZ019_@~=+:-'.split('')), minLength: 1, maxLength: 6 });
const channel = fc.array(segment, { minLength: 1, maxLength: 3 }).map((s) => s.join('.'));
const epoch = fc.string({ unit: fc.constantFrom(...'abcXYZ019_-'.split('')), minLength: 1, maxLength: 12 });
const anyText = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }));

/** A cursor set with some valid entries and some broken ones. */
const cursorText = fc
  .array(
    fc.oneof(
      fc.tuple(channel, epoch, fc.maxSafeNat()).map(([c, e, o]) => `${c};${e};${o}`),
      fc
        .tuple(fc.oneof(channel, anyText), fc.oneof(epoch, anyText), fc.oneof(fc.nat().map(String), anyText))
        .map((parts) => parts.join(';')),
      fc.tuple(epoch, fc.nat()).map(([e, o]) => `${e}:${o}`),
      anyText,
    ),
    { maxLength: 4 },
  )
  .map((entries) => entries.join(','));

/** A query string built from the parameters the transports read, valid or not, in any order. */
const queryText = fc
  .array(
    fc.oneof(
      fc.oneof(channel, fc.constant('a.**'), anyText).map((v) => ['channel', v]),
      cursorText.map((v) => ['cursor', v]),
      fc.oneof(fc.nat({ max: 2000 }).map(String), anyText).map((v) => ['backlog', v]),
      fc.oneof(fc.double().map(String), fc.nat({ max: 4000 }).map(String), anyText).map((v) => ['timeout', v]),
      anyText.map((v) => ['session', v]),
      anyText.map((v) => ['token', v]),
      fc.tuple(anyText, anyText),
    ),
    { maxLength: 8 },
  )
  .map((pairs) => new URLSearchParams(pairs as Array<[string, string]>).toString());

/** A raw path and query as it could arrive on the wire (bad escapes, lone `%`, odd separators). */
const rawUrl = fc.oneof(
  queryText.map((q) => `/sse?${q}`),
  anyText.map((q) => `/poll?${q}`),
  fc.string({ unit: fc.constantFrom(...'/?&=%;,.:*abc019'.split('')) }),
  fc.constant(`/sse?channel=${'a'.repeat(MAX_URL_LENGTH)}`),
);

type Outcome = { ok: true; query: TransportQuery } | { ok: false; error: HeraldError };

function parse(url: string, lastEventId: string | undefined, requireChannel: boolean): Outcome {
  try {
    return { ok: true, query: parseTransportQuery(url, { maxChannels: MAX_CHANNELS, lastEventId, requireChannel }) };
  } catch (err) {
    // Anything but a HeraldError with a documented code fails the property here.
    expect(err).toBeInstanceOf(HeraldError);
    expect(isErrorCode((err as HeraldError).code)).toBe(true);
    return { ok: false, error: err as HeraldError };
  }
}

function expectWellFormed(q: TransportQuery, requireChannel: boolean): void {
  expect(q.streams.length).toBeLessThanOrEqual(MAX_CHANNELS);
  if (requireChannel) expect(q.streams.length).toBeGreaterThan(0);
  expect(new Set(q.streams).size).toBe(q.streams.length);
  for (const s of q.streams) expect(checkChannel(s).ok).toBe(true);
  for (const [stream, pos] of q.cursors) {
    expect(q.streams).toContain(stream);
    expect(isStreamPosition(pos)).toBe(true);
  }
  if (q.backlog !== undefined) expect(Number.isInteger(q.backlog) && q.backlog >= 0 && q.backlog <= 1000).toBe(true);
  if (q.timeoutMs !== undefined) expect(q.timeoutMs >= 0 && q.timeoutMs <= 3_600_000).toBe(true);
}

describe('fuzz: parseTransportQuery (query and Last-Event-ID)', () => {
  it('returns a well-formed query or throws a HeraldError, for any URL and Last-Event-ID', () => {
    const outcomes = { ok: 0, refused: 0 };
    fc.assert(
      fc.property(
        rawUrl,
        fc.option(fc.oneof(cursorText, anyText), { nil: undefined }),
        fc.boolean(),
        (url, lastEventId, requireChannel) => {
          const r = parse(url, lastEventId, requireChannel);
          if (r.ok) {
            outcomes.ok++;
            expectWellFormed(r.query, requireChannel);
          } else outcomes.refused++;
        },
      ),
      budget,
    );
    // The arbitraries reach past the first checks: both outcomes happen.
    expect(outcomes.ok).toBeGreaterThan(RUNS / 20);
    expect(outcomes.refused).toBeGreaterThan(RUNS / 20);
  });

  it('Last-Event-ID wins over the cursor parameter for the streams it names', () => {
    fc.assert(
      fc.property(channel, epoch, fc.maxSafeNat(), fc.maxSafeNat(), (c, e, o1, o2) => {
        const q = parseTransportQuery(
          `/sse?channel=${encodeURIComponent(c)}&cursor=${encodeURIComponent(`${e}:${o1}`)}`,
          {
            maxChannels: MAX_CHANNELS,
            lastEventId: `${c};${e};${o2}`,
            requireChannel: true,
          },
        );
        expect(q.cursors.get(c)).toEqual({ epoch: e, offset: o2 });
      }),
      budget,
    );
  });
});

describe('fuzz: StreamCursors (the SSE event id a browser sends back)', () => {
  it('what it writes, read back as Last-Event-ID, gives the same positions', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(channel, epoch, fc.maxSafeNat()), {
          selector: ([c]) => c,
          minLength: 1,
          maxLength: MAX_CHANNELS,
        }),
        (entries) => {
          const cursors = new StreamCursors();
          for (const [c, e, o] of entries) cursors.setPosition(c, e, o);
          const q = parseTransportQuery('/sse', {
            maxChannels: MAX_CHANNELS,
            lastEventId: cursors.format(),
            requireChannel: true,
          });
          expect(q.streams).toEqual(entries.map(([c]) => c));
          for (const [c, e, o] of entries) expect(q.cursors.get(c)).toEqual({ epoch: e, offset: o });
        },
      ),
      budget,
    );
  });
});
