import { describe, expect, it } from 'vitest';
import { Subscription, Subscriptions } from '../src/core/subscription.js';
import type { Session } from '../src/core/session.js';

// A session's subscription collection keeps its first entry in a field and switches to a Map for more.
describe('Subscriptions', () => {
  const session = {} as Session;
  const sub = (stream: string): Subscription => new Subscription(session, stream);

  it('holds one subscription, then many, then none, like a Map keyed by stream', () => {
    const s = new Subscriptions();
    expect(s.size).toBe(0);
    expect(s.list()).toEqual([]);
    const a = sub('a');
    s.add(a);
    expect([s.size, s.get('a'), s.has('b')]).toEqual([1, a, false]);
    const a2 = sub('a');
    s.add(a2); // replaces, as Map.set does
    expect([s.size, s.get('a')]).toEqual([1, a2]);
    const b = sub('b');
    const c = sub('c');
    s.add(b);
    s.add(c);
    expect(s.size).toBe(3);
    expect(s.list().map((x) => x.stream)).toEqual(['a', 'b', 'c']);
    expect(s.delete('b')).toBe(true);
    expect(s.delete('b')).toBe(false);
    expect([s.has('a'), s.has('b'), s.get('c')]).toEqual([true, false, c]);
    // list() is a snapshot: deleting while iterating visits every entry once.
    const seen: string[] = [];
    for (const x of s.list()) {
      seen.push(x.stream);
      s.delete(x.stream);
    }
    expect(seen).toEqual(['a', 'c']);
    expect(s.size).toBe(0);
  });

  it('deletes its single entry only by its own stream', () => {
    const s = new Subscriptions();
    s.add(sub('x'));
    expect(s.delete('y')).toBe(false);
    expect(s.delete('x')).toBe(true);
    expect([s.size, s.get('x')]).toEqual([0, undefined]);
  });
});
