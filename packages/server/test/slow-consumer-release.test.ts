/**
 * Releases of held publications (drop-oldest, latest-only) are served a slice of the event loop at
 * a time: connections whose output drained together do not hold the thread for all of their
 * releases at once, so deliveries to fast subscribers (anything scheduled meanwhile) go in between.
 */
import { describe, expect, it } from 'vitest';
import { jsonEncoder } from '../src/core/encoder.js';
import type { Publication } from '../src/core/engine.js';
import { Held, queueRelease } from '../src/core/slow-consumer.js';

/** Keeps the thread busy for `ms`, as a release of many held publications does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe('queueRelease', () => {
  it('runs releases in order, a time slice per turn, with other work in between', async () => {
    const order: string[] = [];
    const done = new Promise<void>((resolve) => {
      for (const name of ['a', 'b', 'c']) {
        queueRelease(() => {
          order.push(name);
          busy(3);
          if (name === 'c') resolve();
        });
      }
    });
    // Work that arrives while the releases wait: it must not wait for all three.
    setImmediate(() => {
      order.push('x');
      setImmediate(() => order.push('y'));
    });
    await done;
    expect(order).toEqual(['a', 'x', 'b', 'y', 'c']);
  });

  it('runs quick releases together in one turn', async () => {
    const order: string[] = [];
    const done = new Promise<void>((resolve) => {
      for (const name of ['a', 'b', 'c']) queueRelease(() => (order.push(name), name === 'c' && resolve()));
    });
    setImmediate(() => order.push('x'));
    await done;
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['a', 'b', 'c', 'x']);
  });
});

describe('holding for dropping policies', () => {
  const pub = (offset: number, channel = 's'): Publication => ({
    stream: 's',
    channel,
    epoch: 'e',
    offset,
    data: String(offset),
    time: 0,
  });
  const frame = (offset: number): Uint8Array => new TextEncoder().encode(`${offset}\n`);
  /** What a release writes, decoded: offsets of publications, `skip:since+count` for skip pushes. */
  function released(held: Held, room = 1 << 20): string[] {
    const out: string[] = [];
    held.release('s', jsonEncoder, room, (bytes) => {
      const text = new TextDecoder().decode(bytes).trim();
      if (text.startsWith('{')) {
        const p = JSON.parse(text) as { push: string; since: { offset: number }; count: number };
        out.push(`skip:${p.since.offset}+${p.count}`);
      } else out.push(text);
    });
    return out;
  }

  it('keeps the newest K through the ring growing and wrapping, and says what it dropped', () => {
    const held = Held.create({ policy: 'drop-oldest', keep: 10 }, pub(1));
    let dropped = 0;
    for (let o = 1; o <= 7; o++) dropped += held.add(pub(o), frame(o)); // grows 4 -> 8
    expect(dropped).toBe(0);
    // The session drops from the front past its byte bound: the ring's head moves on.
    expect(held.dropOldest()).toBe(true);
    expect(held.dropOldest()).toBe(true);
    for (let o = 8; o <= 30; o++) dropped += held.add(pub(o), frame(o)); // wraps, grows to 16
    expect(dropped).toBe(18); // 3..30 held at most 10 at a time: 13..30 each pushed one out
    expect(held.bytes).toBe(Array.from({ length: 10 }, (_, i) => frame(21 + i).byteLength).reduce((a, b) => a + b));
    expect(released(held)).toEqual(['skip:0+20', ...Array.from({ length: 10 }, (_, i) => String(21 + i))]);
    expect(held.empty).toBe(true);
    expect(held.bytes).toBe(0);
  });

  it('writes only what fits, and starts again where it stopped after a restart', () => {
    const held = Held.create({ policy: 'drop-oldest', keep: 100 }, pub(1));
    for (let o = 1; o <= 5; o++) held.add(pub(o), frame(o));
    expect(released(held, frame(1).byteLength * 2)).toEqual(['1', '2']);
    expect(released(held)).toEqual(['3', '4', '5']);
    expect(held.empty).toBe(true);
    // Reused for the next time the connection falls behind: no skip when nothing was missed.
    held.restart(pub(6));
    for (let o = 6; o <= 8; o++) held.add(pub(o), frame(o));
    expect(released(held)).toEqual(['6', '7', '8']);
  });

  it('latest-only keeps the newest of each channel in offset order, at most keep channels', () => {
    const held = Held.create({ policy: 'latest-only', keep: 3 }, pub(1, 'a'));
    held.add(pub(1, 'a'), frame(1));
    held.add(pub(2, 'b'), frame(2));
    expect(held.add(pub(3, 'a'), frame(3))).toBe(1); // a@1 replaced
    held.add(pub(4, 'c'), frame(4));
    expect(released(held)).toEqual(['skip:0+1', '2', '3', '4']);
    expect(held.empty).toBe(true);
    held.restart(pub(5, 'a'));
    held.add(pub(5, 'a'), frame(5));
    held.add(pub(6, 'b'), frame(6));
    held.add(pub(7, 'c'), frame(7));
    expect(held.add(pub(8, 'd'), frame(8))).toBe(1); // a fourth channel: the oldest (a@5) goes
    expect(held.add(pub(9, 'c'), frame(9))).toBe(1); // c@7 replaced
    expect(held.bytes).toBe([6, 8, 9].map((o) => frame(o).byteLength).reduce((a, b) => a + b));
    expect(released(held)).toEqual(['skip:4+1', '6', 'skip:6+1', '8', '9']);
    expect(held.bytes).toBe(0);
  });
});
