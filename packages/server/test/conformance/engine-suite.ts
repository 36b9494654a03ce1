/**
 * The engine conformance suite: every Engine (memory now, Redis next) must pass it unchanged.
 * `make` returns a started-able engine and a way to advance time where the engine supports it.
 */
import { until } from '@herald/test-support';
import { describe, expect, it } from 'vitest';
import type { Engine, HistoryPolicy, Publication, PublicationSink } from '../../src/core/engine.js';

export interface EngineFixture {
  engine: Engine;
  /** Moves the engine's clock forward (fake clock), or waits for real time to pass. */
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

const POLICY: HistoryPolicy = { size: 10, ttlMs: 60_000, metaTtlMs: 3_600_000 };

class CollectingSink implements PublicationSink {
  readonly pubs: Publication[] = [];
  gaps = 0;
  onPublication(pub: Publication): void {
    this.pubs.push(pub);
  }
  onGap(): void {
    this.gaps += 1;
  }
}

export function engineConformance(name: string, make: () => Promise<EngineFixture>): void {
  describe(`engine conformance: ${name}`, () => {
    async function started(): Promise<{ f: EngineFixture; sink: CollectingSink; uniq: string }> {
      const f = await make();
      const sink = new CollectingSink();
      await f.engine.start(sink);
      return { f, sink, uniq: `t${Math.random().toString(36).slice(2, 10)}` };
    }
    const pub = (
      engine: Engine,
      channel: string,
      data: unknown,
      extra: Partial<{ idempotencyKey: string; history: HistoryPolicy }> = {},
    ) =>
      engine.publish({
        channel,
        data: JSON.stringify(data),
        history: extra.history ?? POLICY,
        idempotencyWindowMs: 60_000,
        ...(extra.idempotencyKey ? { idempotencyKey: extra.idempotencyKey } : {}),
      });

    it('assigns offsets 1, 2, 3 per stream, in the exact stream and every subtree stream above it', async () => {
      const { f, uniq } = await started();
      try {
        const e = f.engine;
        const a = await pub(e, `${uniq}.a`, 1);
        const b = await pub(e, `${uniq}.a.b`, 2);
        const c = await pub(e, `${uniq}.a`, 3);
        expect([a.position.offset, b.position.offset, c.position.offset]).toEqual([1, 1, 2]);
        const sub = await e.history({ stream: `${uniq}.a.**`, limit: 10 });
        expect(sub.publications.map((p) => [p.channel, p.offset, p.data])).toEqual([
          [`${uniq}.a`, 1, '1'],
          [`${uniq}.a.b`, 2, '2'],
          [`${uniq}.a`, 3, '3'],
        ]);
        const ns = await e.history({ stream: `${uniq}.**`, limit: 10 });
        expect(ns.position.offset).toBe(3);
        const deep = await e.history({ stream: `${uniq}.a.b.**`, limit: 10 });
        expect(deep.publications.map((p) => p.offset)).toEqual([1]);
        expect(a.position.epoch).toBe(c.position.epoch);
      } finally {
        await f.close();
      }
    });

    it('reads history since a position, with a limit, and newest first', async () => {
      const { f, uniq } = await started();
      try {
        const e = f.engine;
        for (let i = 1; i <= 5; i++) await pub(e, `${uniq}.h`, i);
        const all = await e.history({ stream: `${uniq}.h`, limit: 10 });
        const epoch = all.position.epoch;
        expect(all.oldest).toBe(1);
        expect(
          (await e.history({ stream: `${uniq}.h`, since: { epoch, offset: 3 }, limit: 10 })).publications.map(
            (p) => p.offset,
          ),
        ).toEqual([4, 5]);
        expect(
          (await e.history({ stream: `${uniq}.h`, since: { epoch, offset: 1 }, limit: 2 })).publications.map(
            (p) => p.offset,
          ),
        ).toEqual([2, 3]);
        expect(
          (await e.history({ stream: `${uniq}.h`, limit: 2, reverse: true })).publications.map((p) => p.offset),
        ).toEqual([5, 4]);
        expect(
          (await e.history({ stream: `${uniq}.h`, since: { epoch: 'other', offset: 1 }, limit: 10 })).publications,
        ).toEqual([]);
        const none = await e.history({ stream: `${uniq}.h`, limit: 0 });
        expect(none.publications).toEqual([]);
        expect(none.position).toEqual({ epoch, offset: 5 });
      } finally {
        await f.close();
      }
    });

    it('keeps the epoch of a stream that was read before its first publication', async () => {
      const { f, uniq } = await started();
      try {
        const before = await f.engine.history({ stream: `${uniq}.fresh`, limit: 0 });
        expect(before.position.offset).toBe(0);
        const p = await pub(f.engine, `${uniq}.fresh`, 'x');
        expect(p.position).toEqual({ epoch: before.position.epoch, offset: 1 });
      } finally {
        await f.close();
      }
    });

    it('trims history to its size, keeping offsets', async () => {
      const { f, uniq } = await started();
      try {
        const small = { ...POLICY, size: 3 };
        for (let i = 1; i <= 7; i++) await pub(f.engine, `${uniq}.s`, i, { history: small });
        const h = await f.engine.history({ stream: `${uniq}.s`, limit: 10 });
        expect(h.publications.map((p) => p.offset)).toEqual([5, 6, 7]);
        expect(h.oldest).toBe(5);
        expect(h.position.offset).toBe(7);
      } finally {
        await f.close();
      }
    });

    it('expires history after its TTL, keeping the epoch and top offset', async () => {
      const { f, uniq } = await started();
      try {
        const short = { ...POLICY, ttlMs: 1000 };
        await pub(f.engine, `${uniq}.t`, 1, { history: short });
        const h1 = await f.engine.history({ stream: `${uniq}.t`, limit: 10 });
        expect(h1.publications).toHaveLength(1);
        await f.advance(1500);
        const h2 = await f.engine.history({ stream: `${uniq}.t`, limit: 10 });
        expect(h2.publications).toEqual([]);
        expect(h2.position).toEqual(h1.position);
        expect(h2.oldest).toBe(2);
      } finally {
        await f.close();
      }
    });

    it('keeps no history when size is 0, but still counts offsets', async () => {
      const { f, uniq } = await started();
      try {
        const none = { ...POLICY, size: 0 };
        await pub(f.engine, `${uniq}.n`, 1, { history: none });
        const p2 = await pub(f.engine, `${uniq}.n`, 2, { history: none });
        expect(p2.position.offset).toBe(2);
        expect((await f.engine.history({ stream: `${uniq}.n`, limit: 10 })).publications).toEqual([]);
      } finally {
        await f.close();
      }
    });

    it('applies an idempotency key once per channel within the window', async () => {
      const { f, sink, uniq } = await started();
      try {
        await f.engine.subscribe(`${uniq}.i`);
        const first = await pub(f.engine, `${uniq}.i`, 1, { idempotencyKey: 'k1' });
        const again = await pub(f.engine, `${uniq}.i`, 1, { idempotencyKey: 'k1' });
        expect(again).toEqual({ position: first.position, duplicate: true });
        const other = await pub(f.engine, `${uniq}.j`, 1, { idempotencyKey: 'k1' });
        expect(other.duplicate).toBe(false);
        expect(sink.pubs.filter((p) => p.stream === `${uniq}.i`)).toHaveLength(1);
        expect((await f.engine.history({ stream: `${uniq}.i`, limit: 10 })).position.offset).toBe(1);
      } finally {
        await f.close();
      }
    });

    it('delivers to the sink only the streams subscribed on this node, in offset order', async () => {
      const { f, sink, uniq } = await started();
      try {
        await f.engine.subscribe(`${uniq}.**`);
        await f.engine.subscribe(`${uniq}.x`);
        for (let i = 1; i <= 3; i++) await pub(f.engine, `${uniq}.x`, i);
        await pub(f.engine, `${uniq}.y`, 4);
        await f.engine.unsubscribe(`${uniq}.x`);
        await pub(f.engine, `${uniq}.x`, 5);
        // Sentinel: the last publication reached the subtree stream, so every earlier one had its chance.
        await until(
          () => sink.pubs.some((p) => p.stream === `${uniq}.**` && p.offset === 5),
          'publication 5 on the subtree',
        );
        expect(sink.pubs.filter((p) => p.stream === `${uniq}.x`).map((p) => p.offset)).toEqual([1, 2, 3]);
        expect(sink.pubs.filter((p) => p.stream === `${uniq}.**`).map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);
        expect(sink.pubs.some((p) => p.stream === `${uniq}.y`)).toBe(false);
      } finally {
        await f.close();
      }
    });

    it('keeps one total order per stream under concurrent publishes', async () => {
      const { f, uniq } = await started();
      try {
        const big = { ...POLICY, size: 500 };
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) => pub(f.engine, `${uniq}.c${i % 4}`, i, { history: big })),
        );
        for (let k = 0; k < 4; k++) {
          const offs = results
            .filter((_, i) => i % 4 === k)
            .map((r) => r.position.offset)
            .sort((a, b) => a - b);
          expect(offs).toEqual([...Array(50).keys()].map((n) => n + 1));
        }
        const ns = await f.engine.history({ stream: `${uniq}.**`, limit: 500 });
        expect(ns.publications.map((p) => p.offset)).toEqual([...Array(200).keys()].map((n) => n + 1));
      } finally {
        await f.close();
      }
    });
  });
}
