/**
 * `EnginePresence` as each engine keeps it (memory with a fake clock, Redis with Redis's own time):
 * joins and refreshes, leaves, the `max` bound, expiry with exactly one leave per expired entry,
 * events on or off, distinct users (user ids with any characters), the channels of a namespace,
 * and nothing left in Redis once a channel is empty.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/core/engine.js';
import type { EnginePresence, PresenceEntry, PresenceEvent } from '../src/core/presence.js';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { RedisEngine } from '../src/engines/redis/redis-engine.js';
import { NatsEngine } from '../src/engines/nats/nats-engine.js';
import { until } from '@herald/test-support';
import { FakeClock } from './support/fake-clock.js';
import { adminClient, dropPrefix, REDIS_URL, skipRedis, testPrefix } from './support/redis.js';
import * as natsSupport from './support/nats.js';

interface Fixture {
  engine: Engine & { readonly presence: EnginePresence };
  /** Lets `ms` pass for the engine (a fake clock moves; real time is waited for by `until`). */
  advance(ms: number): void;
}

const ON = { events: true };
const OFF = { events: false };

function suite(name: string, make: () => Fixture, extra?: (f: () => Fixture) => void): void {
  describe(`presence of the ${name} engine`, () => {
    let f: Fixture;
    let events: PresenceEvent[] = [];
    let uniq = '';

    async function started(): Promise<EnginePresence> {
      f = make();
      events = [];
      uniq = `p${Math.random().toString(36).slice(2, 10)}`;
      await f.engine.start({ onPublication: () => undefined });
      f.engine.presence.onEvent((e) => events.push(e));
      return f.engine.presence;
    }
    /** Events reach a node through the stream's subscription (Redis): subscribe first. */
    async function stream(suffix: string): Promise<string> {
      const s = `${uniq}.${suffix}`;
      await f.engine.subscribe(s);
      return s;
    }
    const entry = (client: string, user: string, extra: Partial<PresenceEntry> = {}): PresenceEntry => ({
      client,
      user,
      ...extra,
    });
    const kinds = (s: string): string[] =>
      events.filter((e) => e.stream === s).map((e) => `${e.kind}:${e.entry.client}`);
    const waitEvents = (s: string, n: number): Promise<number> =>
      until(() => kinds(s).length >= n, `${n} presence events of ${s}`);

    it('joins once, refreshes without a second join, and leaves with the entry', async () => {
      const p = await started();
      try {
        const s = await stream('a');
        const ann = entry('c1', 'ann', { info: { name: 'Ann' }, chanInfo: [1, 'x'] });
        await p.join(s, [{ entry: ann, ttlMs: 60_000 }], { ...ON, max: 10 });
        await p.join(
          s,
          [
            { entry: entry('c2', 'ann'), ttlMs: 60_000 },
            { entry: ann, ttlMs: 60_000 },
          ],
          {
            ...ON,
            max: 10,
          },
        );
        await waitEvents(s, 2);
        expect(kinds(s)).toEqual(['join:c1', 'join:c2']);
        expect(events[0]!.entry).toEqual(ann);
        expect((await p.list(s, ON)).sort((x, y) => x.client.localeCompare(y.client))).toEqual([
          ann,
          entry('c2', 'ann'),
        ]);
        expect(await p.count(s, ON)).toEqual({ clients: 2, users: 1 });
        await p.leave(s, 'c1', ON);
        await p.leave(s, 'c1', ON);
        await p.leave(s, 'nobody', ON);
        await waitEvents(s, 3);
        expect(events.filter((e) => e.kind === 'leave').map((e) => e.entry)).toEqual([ann]);
        expect(await p.count(s, ON)).toEqual({ clients: 1, users: 1 });
        await p.leave(s, 'c2', ON);
        expect(await p.list(s, ON)).toEqual([]);
        expect(await p.count(s, ON)).toEqual({ clients: 0, users: 0 });
      } finally {
        await f.engine.close();
      }
    });

    it('holds at most max entries, refreshes those it holds, and counts distinct users of any name', async () => {
      const p = await started();
      try {
        const s = await stream('max');
        const odd = ['12:ü:x', '', '3:ab', '12:ü:x'];
        const joins = odd.map((user, i) => ({ entry: entry(`c${i}`, user), ttlMs: 60_000 }));
        await p.join(s, joins, { ...ON, max: 3 });
        expect(await p.count(s, ON)).toEqual({ clients: 3, users: 3 });
        await p.join(s, joins, { ...ON, max: 3 });
        expect(await p.count(s, ON)).toEqual({ clients: 3, users: 3 });
        await p.leave(s, 'c0', ON);
        expect(await p.count(s, ON)).toEqual({ clients: 2, users: 2 });
        // Room again: the one left out comes in with the next join or refresh.
        await p.join(s, joins.slice(3), { ...ON, max: 3 });
        expect(await p.count(s, ON)).toEqual({ clients: 3, users: 3 });
        expect((await p.list(s, ON)).map((e) => e.user).sort()).toEqual(['', '12:ü:x', '3:ab']);
        await waitEvents(s, 5);
        expect(kinds(s)).toEqual(['join:c0', 'join:c1', 'join:c2', 'leave:c0', 'join:c3']);
      } finally {
        await f.engine.close();
      }
    });

    it('expires entries not refreshed, with exactly one leave each', async () => {
      const p = await started();
      try {
        const s = await stream('exp');
        await p.join(s, [{ entry: entry('short', 'u1'), ttlMs: 300 }], { ...ON, max: 10 });
        await p.join(s, [{ entry: entry('long', 'u2'), ttlMs: 60_000 }], { ...ON, max: 10 });
        f.advance(400);
        await until(async () => (await p.count(s, ON)).clients === 1, 'the short entry to expire');
        expect((await p.list(s, ON)).map((e) => e.client)).toEqual(['long']);
        // Found expired by several calls, reported once.
        await p.join(s, [], { ...ON, max: 10 });
        await p.count(s, ON);
        await waitEvents(s, 3);
        expect(kinds(s)).toEqual(['join:short', 'join:long', 'leave:short']);
        // A refresh keeps an entry: it lives on past its first deadline.
        await p.join(s, [{ entry: entry('kept', 'u3'), ttlMs: 300 }], { ...ON, max: 10 });
        for (let i = 0; i < 4; i++) {
          f.advance(150);
          await p.join(s, [{ entry: entry('kept', 'u3'), ttlMs: 300 }], { ...ON, max: 10 });
        }
        expect((await p.list(s, ON)).map((e) => e.client).sort()).toEqual(['kept', 'long']);
      } finally {
        await f.engine.close();
      }
    });

    it('reports nothing with events off', async () => {
      const p = await started();
      try {
        const s = await stream('quiet');
        const probe = await stream('probe');
        await p.join(s, [{ entry: entry('c1', 'u'), ttlMs: 60_000 }], { ...OFF, max: 10 });
        await p.leave(s, 'c1', OFF);
        // An event on another stream, sent after: once it is here, the quiet ones would have been too.
        await p.join(probe, [{ entry: entry('c9', 'u'), ttlMs: 60_000 }], { ...ON, max: 10 });
        await waitEvents(probe, 1);
        expect(kinds(s)).toEqual([]);
      } finally {
        await f.engine.close();
      }
    });

    it('lists the channels of a namespace with entries, by prefix, with their counts', async () => {
      const p = await started();
      try {
        const ns = uniq;
        const opts = { ...OFF, max: 10 };
        await p.join(
          `${ns}.g1`,
          [
            { entry: entry('a', 'u1'), ttlMs: 60_000 },
            { entry: entry('b', 'u2'), ttlMs: 60_000 },
          ],
          opts,
        );
        await p.join(`${ns}.g2`, [{ entry: entry('c', 'u1'), ttlMs: 60_000 }], opts);
        await p.join(`${ns}.h1`, [{ entry: entry('d', 'u1'), ttlMs: 60_000 }], opts);
        await p.join(`${ns}x.g1`, [{ entry: entry('e', 'u1'), ttlMs: 60_000 }], opts);
        await p.join(`${ns}.gone`, [{ entry: entry('f', 'u1'), ttlMs: 60_000 }], opts);
        await p.leave(`${ns}.gone`, 'f', OFF);
        const byName = (list: { stream: string }[]) => [...list].sort((x, y) => x.stream.localeCompare(y.stream));
        expect(byName(await p.channels(ns, `${ns}.`, 100, OFF))).toEqual([
          { stream: `${ns}.g1`, clients: 2, users: 2 },
          { stream: `${ns}.g2`, clients: 1, users: 1 },
          { stream: `${ns}.h1`, clients: 1, users: 1 },
        ]);
        expect(byName(await p.channels(ns, `${ns}.g`, 100, OFF)).map((c) => c.stream)).toEqual([
          `${ns}.g1`,
          `${ns}.g2`,
        ]);
        expect(await p.channels(ns, `${ns}.`, 1, OFF)).toHaveLength(1);
      } finally {
        await f.engine.close();
      }
    });

    extra?.(() => f);
  });
}

suite('memory', () => {
  const clock = new FakeClock();
  const engine = new MemoryEngine({ clock });
  return { engine, advance: (ms) => clock.advance(ms) };
});

const prefix = testPrefix();
afterAll(async () => {
  if (!skipRedis) await dropPrefix(prefix);
});

describe.skipIf(skipRedis)('redis', () => {
  suite('redis', () => {
    const engine = new RedisEngine({ urls: [REDIS_URL], prefix });
    // Deadlines are Redis's time: `until` waits for them.
    return { engine, advance: () => undefined };
  });

  it('leaves no key behind once a channel is empty', async () => {
    const engine = new RedisEngine({ urls: [REDIS_URL], prefix });
    await engine.start({ onPublication: () => undefined });
    const admin = await adminClient();
    try {
      const s = 'pkeys.room';
      await engine.presence.join(s, [{ entry: { client: 'c1', user: 'u' }, ttlMs: 60_000 }], {
        events: false,
        max: 10,
      });
      expect((await admin.keys(`${prefix}:{pkeys}:*`)).sort()).toEqual(
        [
          `${prefix}:{pkeys}:pc`,
          `${prefix}:{pkeys}:pd:${s}`,
          `${prefix}:{pkeys}:pe:${s}`,
          `${prefix}:{pkeys}:pu:${s}`,
        ].sort(),
      );
      // Every key expires with the latest deadline, at most.
      for (const key of await admin.keys(`${prefix}:{pkeys}:*`)) {
        const ttl = await admin.pttl(key);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(61_000);
      }
      await engine.presence.leave(s, 'c1', { events: false });
      expect(await admin.keys(`${prefix}:{pkeys}:*`)).toEqual([]);
    } finally {
      admin.disconnect();
      await engine.close();
    }
  });
});

const natsPrefix = natsSupport.testPrefix();
afterAll(async () => {
  if (!natsSupport.skipNats) await natsSupport.dropPrefix(natsPrefix);
});

describe.skipIf(natsSupport.skipNats)('nats', () => {
  suite('nats', () => {
    const engine = new NatsEngine({ servers: [natsSupport.NATS_URL], prefix: natsPrefix });
    // Deadlines are real time: `until` waits for them.
    return { engine, advance: () => undefined };
  });
});
