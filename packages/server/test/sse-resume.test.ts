/**
 * SSE resume across several streams: every event id names the connection's whole cursor set, so a
 * browser whose connection drops after any event — even the first `subscribed` of a resume, while
 * its other streams are still subscribing — resumes every stream with no gap and no duplicate.
 * Property: for 1–4 streams with publications interleaved at random (fixed seed), cut a resumed
 * connection after each of its events in turn and resume again with the last id seen.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { SseReader } from './support/http-clients.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({
    http: { heartbeatInterval: 30_000 },
    namespaces: { closed: { anonymousSubscribe: false } },
  });
});
afterAll(async () => {
  await srv.close();
});

let run = 0;

async function publish(channel: string, n: number): Promise<void> {
  const r = await api(srv.url, 'publish', { channel, data: n });
  expect(r.status).toBe(200);
}

function sseUrl(channels: readonly string[]): string {
  return `${srv.url}/sse?${channels.map((c) => `channel=${encodeURIComponent(c)}`).join('&')}`;
}

/** Opens an SSE connection (resuming from `lastId` if given) and reads until `done` holds. */
async function read(channels: readonly string[], lastId: string | undefined, done: (r: SseReader) => boolean) {
  const r = new SseReader(sseUrl(channels), lastId === undefined ? {} : { headers: { 'Last-Event-ID': lastId } });
  await r.waitFor(() => done(r), 'the expected events');
  r.close();
  return r;
}

describe('SSE resume with several streams', () => {
  it('no event carries an empty id, and a cut after any event of a resume loses nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.nat(3), { minLength: 2, maxLength: 12 }),
        fc.array(fc.nat(3), { minLength: 1, maxLength: 12 }),
        async (k, before, after) => {
          run += 1;
          const channels = Array.from({ length: k }, (_, i) => `resume${run}.s${i}`);
          const published = new Map<string, number[]>(channels.map((c) => [c, []]));
          let n = 0;
          const pub = async (pick: number): Promise<void> => {
            const channel = channels[pick % k] as string;
            published.get(channel)?.push(n);
            await publish(channel, n++);
          };
          // A first connection reads the publications before the drop; its last id is the cursor.
          const first = await read(channels, undefined, (r) => r.of('subscribed').length === k);
          for (const p of before) await pub(p);
          const seenFirst = before.length;
          const conn1 = await read(channels, first.lastEventId, (r) => r.pubs().length >= seenFirst);
          const cursor = conn1.lastEventId;
          // Then, while it is away, more; a resume must bring exactly these.
          for (const p of after) await pub(p);
          const missed = new Map<string, number[]>(
            channels.map((c) => [c, (published.get(c) ?? []).filter((_, i, all) => i >= all.length - countOf(c))]),
          );
          function countOf(c: string): number {
            return after.filter((p) => channels[p % k] === c).length;
          }
          const total = after.length;
          const resumed = await read(
            channels,
            cursor,
            (r) => r.of('subscribed').length === k && r.pubs().length >= total,
          );
          for (const e of resumed.items) expect(e.id).not.toBe('');
          expect(gather(channels, resumed.items)).toEqual(missed);
          // Cut after each event in turn: what was seen up to it, plus a resume from its id.
          for (let cut = 0; cut < resumed.items.length; cut++) {
            const seen = resumed.items.slice(0, cut + 1);
            let lastId = cursor;
            for (const e of seen) if (e.id !== undefined) lastId = e.id;
            const seenPubs = gather(channels, seen);
            const want = total - [...seenPubs.values()].reduce((a, v) => a + v.length, 0);
            const again = await read(
              channels,
              lastId,
              (r) => r.of('subscribed').length === k && r.pubs().length >= want,
            );
            const union = new Map<string, number[]>(channels.map((c) => [c, []]));
            for (const [c, v] of seenPubs) union.get(c)?.push(...v);
            for (const [c, v] of gather(channels, again.items)) union.get(c)?.push(...v);
            expect(union, `cut after event ${cut} (${seen[cut]?.event})`).toEqual(missed);
            for (const s of again.of('subscribed')) expect(s['recovered']).toBe(true);
          }
        },
      ),
      { seed: 20261204, numRuns: 12 },
    );
  });
});

describe('SSE event ids of refused streams', () => {
  it('a refused stream alone: its unsubscribed event has no id (an empty one would reset Last-Event-ID)', async () => {
    const r = new SseReader(sseUrl(['closed.a']));
    await r.waitFor((items) => items.some((e) => e.event === 'unsubscribed'), 'the refusal');
    r.close();
    const e = r.items.find((x) => x.event === 'unsubscribed');
    expect(e?.id).toBeUndefined();
  });

  it('a refused stream keeps the position it resumed from; the others go on', async () => {
    await publish('resumeref.ok', 1);
    const first = await read(['resumeref.ok'], undefined, (x) => x.of('subscribed').length === 1);
    const okPos = first.lastEventId; // resumeref.ok;<epoch>;1
    const lastId = `${okPos},closed.b;someepoch;7`;
    await publish('resumeref.ok', 2);
    const r = await read(['resumeref.ok'], lastId, (x) => x.of('unsubscribed').length === 1 && x.pubs().length >= 1);
    for (const e of r.items) expect(e.id === undefined || e.id.includes('closed.b;someepoch;7')).toBe(true);
    expect(r.lastEventId).toMatch(
      /^resumeref\.ok;[^;]+;2,closed\.b;someepoch;7$|^closed\.b;someepoch;7,resumeref\.ok;[^;]+;2$/,
    );
  });
});

/** Publication numbers by stream, in the order received. */
function gather(channels: readonly string[], events: readonly { event: string; data: string }[]) {
  const out = new Map<string, number[]>(channels.map((c) => [c, []]));
  for (const e of events) {
    if (e.event !== 'message') continue;
    const p = JSON.parse(e.data) as { stream: string; data: number };
    const list = out.get(p.stream) ?? [];
    list.push(p.data);
    out.set(p.stream, list);
  }
  return out;
}
