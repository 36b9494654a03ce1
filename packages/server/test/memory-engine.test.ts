import { describe, expect, it } from 'vitest';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { engineConformance } from './conformance/engine-suite.js';
import { FakeClock } from './support/fake-clock.js';

engineConformance('memory', () => {
  const clock = new FakeClock();
  const engine = new MemoryEngine({ clock });
  return Promise.resolve({
    engine,
    advance: (ms: number) => {
      clock.advance(ms);
      return Promise.resolve();
    },
    close: () => engine.close(),
  });
});

describe('memory engine', () => {
  it('gives a new epoch after a restart, so old cursors are not recovered', async () => {
    const a = new MemoryEngine();
    await a.start({ onPublication: () => undefined });
    const p = await a.publish({
      channel: 'x',
      data: '1',
      history: { size: 10, ttlMs: 1000, metaTtlMs: 1000 },
      idempotencyWindowMs: 1000,
    });
    await a.close();
    const b = new MemoryEngine();
    await b.start({ onPublication: () => undefined });
    const h = await b.history({ stream: 'x', limit: 10 });
    expect(h.position.epoch).not.toBe(p.position.epoch);
    expect(h.position.offset).toBe(0);
    await b.close();
  });

  it('forgets idle unsubscribed streams after their meta TTL and expired idempotency keys', async () => {
    const clock = new FakeClock();
    const e = new MemoryEngine({ clock, sweepInterval: 1000 });
    await e.start({ onPublication: () => undefined });
    const policy = { size: 10, ttlMs: 1000, metaTtlMs: 5000 };
    const first = await e.publish({
      channel: 'idle',
      data: '1',
      history: policy,
      idempotencyWindowMs: 2000,
      idempotencyKey: 'k',
    });
    await e.subscribe('kept');
    await e.publish({ channel: 'kept', data: '1', history: policy, idempotencyWindowMs: 2000 });
    expect(e.streamCount).toBe(4); // idle, idle.**, kept, kept.**
    clock.advance(3000);
    const again = await e.publish({
      channel: 'idle',
      data: '2',
      history: policy,
      idempotencyWindowMs: 2000,
      idempotencyKey: 'k',
    });
    expect(again.duplicate).toBe(false);
    expect(again.position.offset).toBe(2);
    clock.advance(7000);
    // idle.** and idle were forgotten; kept (subscribed) stays, kept.** (not subscribed) goes.
    expect(e.streamCount).toBe(1);
    const h = await e.history({ stream: 'idle', limit: 10 });
    expect(h.position.epoch).not.toBe(first.position.epoch);
    await e.close();
  });
});
