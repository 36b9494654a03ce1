/**
 * The chaos suite's history checker, on hand-made histories: it must call every silent hole,
 * duplicate, reordering and dead stream, and accept holes it was told about.
 */
import { describe, expect, it } from 'vitest';
import {
  channelsOf,
  checkStream,
  formatTable,
  judge,
  type PublishLog,
  type StreamEvent,
  type StreamLog,
} from './history-checker.js';

const CHANNELS = ['x.a', 'x.b', 'x.b.c'];

function published(upTo: Record<string, number>, ambiguous: Record<string, number[]> = {}): PublishLog {
  const range = (n: number): Set<number> => new Set(Array.from({ length: n }, (_, i) => i + 1));
  return {
    acked: new Map(Object.entries(upTo).map(([c, n]) => [c, range(n)])),
    ambiguous: new Map(Object.entries(ambiguous).map(([c, ns]) => [c, new Set(ns)])),
    sentinel: new Map(Object.entries(upTo)),
  };
}

let offset = 0;
const pub = (channel: string, n: number, epoch = 'E'): StreamEvent => ({
  kind: 'pub',
  channel,
  n,
  epoch,
  offset: ++offset,
  at: 0,
});
const hole: StreamEvent = { kind: 'hole', at: 0, detail: 'recovered: false' };
const log = (stream: string, events: StreamEvent[], transport = 'websocket'): StreamLog => ({
  subscriber: 's1',
  transport,
  stream,
  events,
});
const seq = (channel: string, from: number, to: number): StreamEvent[] =>
  Array.from({ length: to - from + 1 }, (_, i) => pub(channel, from + i));

describe('history checker', () => {
  it('knows which channels a stream covers', () => {
    expect(channelsOf('x.a', CHANNELS)).toEqual(['x.a']);
    expect(channelsOf('x.**', CHANNELS)).toEqual(['x.a', 'x.b', 'x.b.c']);
    expect(channelsOf('x.b.**', CHANNELS)).toEqual(['x.b', 'x.b.c']);
  });

  it('passes a whole stream, interleaved across the channels of a subtree', () => {
    const events = [pub('x.b', 1), pub('x.b.c', 1), pub('x.b', 2), pub('x.b.c', 2), pub('x.b.c', 3)];
    const v = checkStream(log('x.b.**', events), published({ 'x.b': 2, 'x.b.c': 3 }), CHANNELS);
    expect(v).toMatchObject({ delivered: 5, silentHoles: 0, duplicates: 0, reorderings: 0, dead: false });
  });

  it('calls a gap with no report a silent hole, counted in publications', () => {
    const v = checkStream(log('x.a', [...seq('x.a', 1, 3), ...seq('x.a', 7, 9)]), published({ 'x.a': 9 }), CHANNELS);
    expect(v.silentHoles).toBe(3);
    expect(v.problems[0]).toContain('x.a#4..6');
  });

  it('accepts a gap after recovered: false, for every channel of the stream', () => {
    const events = [pub('x.a', 1), pub('x.b', 1), hole, pub('x.b', 5), pub('x.a', 4), pub('x.a', 5), pub('x.b', 6)];
    const v = checkStream(log('x.**', events), published({ 'x.a': 5, 'x.b': 6, 'x.b.c': 0 }), CHANNELS);
    expect(v).toMatchObject({ holesReported: 1, missedReported: 5, silentHoles: 0 });
  });

  it('does not let one report cover a later gap of the same channel', () => {
    const events = [pub('x.a', 1), hole, pub('x.a', 3), pub('x.a', 5)];
    const v = checkStream(log('x.a', events), published({ 'x.a': 5 }), CHANNELS);
    expect(v).toMatchObject({ missedReported: 1, silentHoles: 1 });
  });

  it('does not count publications that were never acknowledged', () => {
    const p = published({ 'x.a': 5 });
    (p.acked.get('x.a') as Set<number>).delete(3);
    expect(
      checkStream(log('x.a', [pub('x.a', 1), pub('x.a', 2), pub('x.a', 4), pub('x.a', 5)]), p, CHANNELS).silentHoles,
    ).toBe(0);
  });

  it('calls duplicates and reorderings', () => {
    const v = checkStream(
      log('x.a', [pub('x.a', 1), pub('x.a', 3), pub('x.a', 2), pub('x.a', 3)]),
      published({ 'x.a': 3 }),
      CHANNELS,
    );
    expect(v).toMatchObject({ duplicates: 1, reorderings: 1, silentHoles: 0 });
  });

  it('counts a publication re-applied after the store lost its data apart from duplicates', () => {
    // #2's first attempt was applied, then lost with the store (and its idempotency key); the retry applied it again.
    const events = [pub('x.a', 1), pub('x.a', 2), hole, pub('x.a', 2, 'F'), pub('x.a', 3, 'F')];
    const v = checkStream(log('x.a', events), published({ 'x.a': 3 }, { 'x.a': [2] }), CHANNELS);
    expect(v).toMatchObject({ duplicates: 0, reapplied: 1 });
    // Without a report in between, or for a publication whose every attempt was answered, it is a duplicate.
    expect(
      checkStream(
        log(
          'x.a',
          events.filter((e) => e !== hole),
        ),
        published({ 'x.a': 3 }, { 'x.a': [2] }),
        CHANNELS,
      ).duplicates,
    ).toBe(1);
    expect(checkStream(log('x.a', events), published({ 'x.a': 3 }), CHANNELS).duplicates).toBe(1);
  });

  it('calls a stream dead when the sentinel of one of its channels never arrived', () => {
    const v = checkStream(
      log('x.b.**', [...seq('x.b', 1, 4), ...seq('x.b.c', 1, 2)]),
      published({ 'x.b': 4, 'x.b.c': 3 }),
      CHANNELS,
    );
    expect(v.dead).toBe(true);
    expect(v.silentHoles).toBe(0);
  });

  it('judges a scenario per transport and prints the table', () => {
    const p = published({ 'x.a': 2 });
    const rows = judge(
      'demo',
      [
        log('x.a', seq('x.a', 1, 2), 'websocket'),
        { ...log('x.a', seq('x.a', 1, 2), 'websocket'), subscriber: 's2' },
        log('x.a', [pub('x.a', 2)], 'sse'),
      ],
      p,
      CHANNELS,
    );
    expect(rows.map((r) => [r.transport, r.subscribers, r.delivered, r.silentHoles, r.verdict])).toEqual([
      ['websocket', 2, 4, 0, 'PASS'],
      ['sse', 1, 1, 1, 'FAIL'],
    ]);
    const table = formatTable(rows);
    expect(table.split('\n')[0]).toContain(
      '| scenario | transport | subscribers | publications | delivered | holes reported',
    );
    expect(table).toContain('| demo     | sse       |');
  });
});
