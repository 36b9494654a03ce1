/**
 * Releases of held publications (drop-oldest, latest-only) are served a slice of the event loop at
 * a time: connections whose output drained together do not hold the thread for all of their
 * releases at once, so deliveries to fast subscribers (anything scheduled meanwhile) go in between.
 */
import { describe, expect, it } from 'vitest';
import { queueRelease } from '../src/core/slow-consumer.js';

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
