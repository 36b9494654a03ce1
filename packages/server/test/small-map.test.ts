import { describe, expect, it } from 'vitest';
import { SmallMap } from '../src/core/small-map.js';
import { Subscription } from '../src/core/subscription.js';
import type { Session } from '../src/core/session.js';

// A session's subscriptions (and a connection's cursors) keep their first entry in fields and switch
// to a Map for more.
describe('SmallMap', () => {
  const session = {} as Session;
  const sub = (stream: string): Subscription => new Subscription(session, stream);

  it('holds one subscription, then many, then none, like a Map keyed by stream', () => {
    const s = new SmallMap<Subscription>();
    expect(s.size).toBe(0);
    expect(s.values()).toEqual([]);
    const a = sub('a');
    s.set(a.stream, a);
    expect([s.size, s.get('a'), s.has('b')]).toEqual([1, a, false]);
    const a2 = sub('a');
    s.set(a2.stream, a2); // replaces, as Map.set does
    expect([s.size, s.get('a')]).toEqual([1, a2]);
    const b = sub('b');
    const c = sub('c');
    s.set(b.stream, b);
    s.set(c.stream, c);
    expect(s.size).toBe(3);
    expect(s.values().map((x) => x.stream)).toEqual(['a', 'b', 'c']);
    expect(s.delete('b')).toBe(true);
    expect(s.delete('b')).toBe(false);
    expect([s.has('a'), s.has('b'), s.get('c')]).toEqual([true, false, c]);
    // values() is a snapshot: deleting while iterating visits every entry once.
    const seen: string[] = [];
    for (const x of s.values()) {
      seen.push(x.stream);
      s.delete(x.stream);
    }
    expect(seen).toEqual(['a', 'c']);
    expect(s.size).toBe(0);
  });

  it('deletes its single entry only by its own stream', () => {
    const s = new SmallMap<Subscription>();
    s.set('x', sub('x'));
    expect(s.delete('y')).toBe(false);
    expect(s.delete('x')).toBe(true);
    expect([s.size, s.get('x')]).toEqual([0, undefined]);
  });
});
