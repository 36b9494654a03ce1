import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatCursorSet, type StreamPosition } from '@herald/protocol';
import { StreamCursors } from '../src/transports/stream-cursors.js';

// A connection's cursors keep their first stream in fields and switch to a Map for more; they must
// format exactly as a Map of the same operations does.
describe('StreamCursors', () => {
  it('formats one stream, then several, like a Map in insertion order', () => {
    const c = new StreamCursors();
    expect([c.size, c.format()]).toEqual([0, '']);
    c.setPosition('news', 'e1', 4);
    expect([c.size, c.format()]).toEqual([1, 'news;e1;4']);
    c.setPosition('news', 'e2', 0); // the same stream: replaced in place
    expect([c.size, c.format()]).toEqual([1, 'news;e2;0']);
    c.setPosition('chat', 'e3', 7);
    c.setPosition('news', 'e2', 1); // keeps its place before chat
    expect([c.size, c.format()]).toEqual([2, 'news;e2;1,chat;e3;7']);
    expect(c.delete('news')).toBe(true);
    expect(c.delete('news')).toBe(false);
    c.setPosition('news', 'e2', 2); // back, and now last
    expect(c.format()).toBe('chat;e3;7,news;e2;2');
  });

  it('deletes its single stream only by its own name', () => {
    const c = new StreamCursors();
    expect(c.delete('a')).toBe(false);
    c.setPosition('a', 'e', 1);
    expect(c.delete('b')).toBe(false);
    expect(c.delete('a')).toBe(true);
    expect([c.size, c.format()]).toEqual([0, '']);
    c.setPosition('b', 'e', 2);
    expect(c.format()).toBe('b;e;2');
  });

  it('matches formatCursorSet over a Map for any sequence of sets and deletes', () => {
    const op = fc.record({
      stream: fc.constantFrom('a', 'b', 'c'),
      del: fc.boolean(),
      epoch: fc.constantFrom('e1', 'e2'),
      offset: fc.nat(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 16 }), (ops) => {
        const c = new StreamCursors();
        const m = new Map<string, StreamPosition>();
        for (const { stream, del, epoch, offset } of ops) {
          if (del) expect(c.delete(stream)).toBe(m.delete(stream));
          else {
            c.setPosition(stream, epoch, offset);
            m.set(stream, { epoch, offset });
          }
          expect([c.size, c.format()]).toEqual([m.size, formatCursorSet(m)]);
        }
      }),
    );
  });
});
