import { until } from '@herald/test-support';
import { afterAll, describe, expect, it } from 'vitest';
import type { Publication } from '../src/core/engine.js';
import { NatsEngine } from '../src/engines/nats/nats-engine.js';
import { engineConformance } from './conformance/engine-suite.js';
import { NATS_URL, dropPrefix, skipNats, testPrefix } from './support/nats.js';

const policy = { size: 100, ttlMs: 60_000, metaTtlMs: 120_000 };
const prefix = testPrefix();
afterAll(async () => {
  if (!skipNats) await dropPrefix(prefix);
});

describe.skipIf(skipNats)('nats engine', () => {
  engineConformance('nats', () => {
    const engine = new NatsEngine({ servers: [NATS_URL], prefix });
    return Promise.resolve({
      engine,
      advance: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
      close: () => engine.close(),
    });
  });

  it('refuses to start with a clear message when NATS is not there', async () => {
    const engine = new NatsEngine({ servers: ['nats://herald:s3cret@127.0.0.1:1'], prefix, connectTimeout: 1000 });
    const err = await engine.start({ onPublication: () => undefined }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/^cannot connect to NATS at nats:\/\/herald:\*\*\*@127\.0\.0\.1:1: /);
    expect(err?.message).not.toContain('s3cret');
    expect(engine.ready()).toBe(false);
    await engine.close();
  });

  it('rejects a prefix that cannot be a subject token', () => {
    expect(() => new NatsEngine({ prefix: 'a.b' })).toThrow(/nats\.prefix/);
  });
});

describe.skipIf(skipNats)('nats engine, beyond the conformance suite', () => {
  it('keeps one order per stream when two nodes publish to one channel at once', async () => {
    const a = new NatsEngine({ servers: [NATS_URL], prefix });
    const b = new NatsEngine({ servers: [NATS_URL], prefix });
    const got: Publication[] = [];
    await a.start({ onPublication: () => undefined });
    await b.start({ onPublication: (p) => got.push(p) });
    try {
      await b.subscribe('two.**');
      const n = 100;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          (i % 2 === 0 ? a : b).publish({
            channel: `two.c${i % 3}`,
            data: String(i),
            history: policy,
            idempotencyWindowMs: 1000,
          }),
        ),
      );
      for (let k = 0; k < 3; k++) {
        const offs = results
          .filter((_, i) => i % 3 === k)
          .map((r) => r.position.offset)
          .sort((x, y) => x - y);
        expect(offs).toEqual(offs.map((_, i) => i + 1));
      }
      await until(() => got.length >= n, 'every publication on the subtree stream of node b');
      expect(got.map((p) => p.offset)).toEqual([...Array(n).keys()].map((i) => i + 1));
      const ha = await a.history({ stream: 'two.**', limit: 200 });
      const hb = await b.history({ stream: 'two.**', limit: 200 });
      expect(ha.publications.map((p) => [p.offset, p.data])).toEqual(hb.publications.map((p) => [p.offset, p.data]));
      expect(ha.position).toEqual(hb.position);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('starts a new epoch when the namespace stream is deleted, and reports the gap', async () => {
    const engine = new NatsEngine({ servers: [NATS_URL], prefix });
    const gaps: (readonly string[] | undefined)[] = [];
    await engine.start({ onPublication: () => undefined, onGap: (s) => gaps.push(s) });
    const other = new NatsEngine({ servers: [NATS_URL], prefix });
    await other.start({ onPublication: () => undefined });
    try {
      await engine.subscribe('del.x');
      const first = await engine.publish({ channel: 'del.x', data: '1', history: policy, idempotencyWindowMs: 1000 });
      await other.publish({ channel: 'del.x', data: '2', history: policy, idempotencyWindowMs: 1000 });
      await other.dropAll();
      const again = await engine.publish({ channel: 'del.x', data: '3', history: policy, idempotencyWindowMs: 1000 });
      expect(again.position.offset).toBe(1);
      expect(again.position.epoch).not.toBe(first.position.epoch);
      expect(gaps.flatMap((g) => g ?? [])).toContain('del.x');
      const h = await other.history({ stream: 'del.x', limit: 10 });
      expect(h.position).toEqual(again.position);
      expect(h.publications.map((p) => p.data)).toEqual(['3']);
    } finally {
      await engine.close();
      await other.close();
    }
  });

  it('answers an idempotent publish from another node with the first position', async () => {
    const a = new NatsEngine({ servers: [NATS_URL], prefix });
    const b = new NatsEngine({ servers: [NATS_URL], prefix });
    await a.start({ onPublication: () => undefined });
    await b.start({ onPublication: () => undefined });
    try {
      const req = { channel: 'idem.x', data: '1', history: policy, idempotencyWindowMs: 60_000, idempotencyKey: 'k' };
      const first = await a.publish(req);
      const again = await b.publish(req);
      expect(again).toEqual({ position: first.position, duplicate: true });
      expect((await b.history({ stream: 'idem.x', limit: 10 })).publications).toHaveLength(1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('forwards control requests between nodes and reports a node nobody serves', async () => {
    const a = new NatsEngine({ servers: [NATS_URL], prefix });
    const b = new NatsEngine({ servers: [NATS_URL], prefix });
    await a.start({ onPublication: () => undefined });
    await b.start({ onPublication: () => undefined });
    try {
      await a.control.serve('node-a', (m) => Promise.resolve(`a got ${m}`));
      await b.control.serve('node-b', () => Promise.reject(new Error('boom')));
      expect(await b.control.request('node-a', 'hi', 2000)).toBe('a got hi');
      await expect(a.control.request('node-b', 'hi', 2000)).rejects.toMatchObject({ code: 'HERALD_ERR_INTERNAL' });
      await expect(a.control.request('node-zz', 'hi', 2000)).rejects.toMatchObject({
        code: 'HERALD_ERR_NODE_UNREACHABLE',
      });
      await a.nodes.report('node-a', 'report a', 60_000);
      await b.nodes.report('node-b', 'report b', 60_000);
      const list = await a.nodes.list();
      expect(list.get('node-a')).toBe('report a');
      expect(list.get('node-b')).toBe('report b');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('shares presence between nodes, with joins and leaves on every node', async () => {
    const a = new NatsEngine({ servers: [NATS_URL], prefix });
    const b = new NatsEngine({ servers: [NATS_URL], prefix });
    await a.start({ onPublication: () => undefined });
    await b.start({ onPublication: () => undefined });
    const events: string[] = [];
    b.presence.onEvent((e) => events.push(`${e.kind}:${e.entry.client}`));
    try {
      const opts = { events: true, max: 10 };
      await b.presence.list('pres.room', opts); // b listens from here on
      await a.presence.join('pres.room', [{ entry: { client: 'c1', user: 'u1' }, ttlMs: 60_000 }], opts);
      await a.presence.join('pres.room', [{ entry: { client: 'c1', user: 'u1' }, ttlMs: 60_000 }], opts);
      await b.presence.join('pres.room', [{ entry: { client: 'c2', user: 'u1' }, ttlMs: 300 }], opts);
      expect(await b.presence.count('pres.room', opts)).toEqual({ clients: 2, users: 1 });
      expect(await a.presence.channels('pres', '', 10, opts)).toEqual([{ stream: 'pres.room', clients: 2, users: 1 }]);
      await a.presence.leave('pres.room', 'c1', opts);
      // c2 expires: the first read after its deadline removes it, with one leave.
      await until(async () => (await a.presence.list('pres.room', opts)).length === 0, 'c2 to expire');
      await until(() => events.length >= 4, 'joins and leaves on node b');
      expect(events.sort()).toEqual(['join:c1', 'join:c2', 'leave:c1', 'leave:c2']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
