/**
 * Long-polling several streams on an engine that answers like a remote store (random latency): a
 * poll must not answer before every one of its streams has subscribed, and its cursor must name
 * every stream, so that a loop of polls receives every publication of every stream exactly once.
 * (Answering on the first stream's publication dropped the slower streams from the cursor, and the
 * next poll started them again at their top, silently skipping what was published meanwhile.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryEngine } from '../src/engines/memory/memory-engine.js';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { LatencyEngine } from './support/latency-engine.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({ http: { pollTimeout: 2000 } }, { engine: new LatencyEngine(new MemoryEngine(), 8) });
});
afterAll(async () => {
  await srv.close();
});

interface Answer {
  cursor: string;
  publications: { stream: string; data: number | string }[];
}

async function poll(query: string): Promise<Answer> {
  const res = await fetch(`${srv.url}/poll?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Answer;
}

describe('long-poll with several streams', () => {
  it('a loop of polls gets every publication of a busy and eight quiet streams, exactly once', async () => {
    const channels = ['lps.busy', ...Array.from({ length: 8 }, (_, i) => `lps.quiet${i}`)];
    const query = channels.map((c) => `channel=${c}`).join('&');
    const got = new Map<string, (number | string)[]>(channels.map((c) => [c, []]));
    const sent = new Map<string, (number | string)[]>(channels.map((c) => [c, []]));
    let cursor = (await poll(query)).cursor;
    let publishing = true;
    const publisher = (async () => {
      for (let n = 0; n < 150; n++) {
        const channel = n % 5 === 0 ? (channels[1 + ((n / 5) % 8)] as string) : 'lps.busy';
        sent.get(channel)?.push(n);
        expect((await api(srv.url, 'publish', { channel, data: n })).status).toBe(200);
      }
      for (const channel of channels) {
        sent.get(channel)?.push('end');
        expect((await api(srv.url, 'publish', { channel, data: 'end' })).status).toBe(200);
      }
      publishing = false;
    })();
    const done = (): boolean => channels.every((c) => got.get(c)?.at(-1) === 'end');
    const deadline = Date.now() + 15_000;
    while (!done() || publishing) {
      if (Date.now() > deadline) throw new Error('timed out polling for every publication');
      const a = await poll(`${query}&cursor=${encodeURIComponent(cursor)}`);
      for (const c of channels) expect(a.cursor, 'the cursor names every stream').toContain(`${c};`);
      for (const p of a.publications) got.get(p.stream)?.push(p.data);
      cursor = a.cursor;
    }
    await publisher;
    expect(got).toEqual(sent);
  });
});
