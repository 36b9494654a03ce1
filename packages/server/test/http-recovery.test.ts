/**
 * The recovery property over every HTTP transport: a publisher that never stops, clients on exact
 * and subtree streams that drop and resume from their cursor (SSE through Last-Event-ID, /stream
 * through `cursor`, /poll by polling with the cursor of the previous answer, sometimes abandoning a
 * held poll). Each client must end with exactly its stream's sequence, compared with history.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { api, startServer, type TestServer } from '@herald/test-support/server';
import { NdjsonReader, SseReader } from './support/http-clients.js';

let srv: TestServer;
beforeAll(async () => {
  srv = await startServer({ namespaces: { hr: { historySize: 5000 } }, http: { pollTimeout: 1000 } });
});
afterAll(async () => {
  await srv.close();
});

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Got {
  offset: number;
  channel: string;
  data: unknown;
}

abstract class Client {
  readonly got: Got[] = [];
  readonly errors: string[] = [];
  offset = 0;
  sessions = 0;
  constructor(
    readonly stream: string,
    public epoch: string,
    protected readonly rand: () => number,
  ) {}
  get cursor(): string {
    return `${this.stream};${this.epoch};${this.offset}`;
  }
  accept(p: { offset: number; channel: string; data: unknown; epoch?: string }): void {
    if (p.epoch !== undefined && p.epoch !== this.epoch) this.errors.push(`epoch ${p.epoch} != ${this.epoch}`);
    if (p.offset !== this.offset + 1) this.errors.push(`offset ${p.offset} after ${this.offset}`);
    this.offset = p.offset;
    this.got.push({ offset: p.offset, channel: p.channel, data: p.data });
  }
  /** One connection (or poll); ends after a few publications. */
  abstract session(): Promise<void>;
  async churn(until: () => boolean): Promise<void> {
    while (!until()) {
      await this.session();
      this.sessions += 1;
    }
  }
}

class SseClient extends Client {
  async session(): Promise<void> {
    const es = new SseReader(`${srv.url}/sse?channel=${encodeURIComponent(this.stream)}`, {
      headers: { 'Last-Event-ID': this.cursor },
    });
    const want = 1 + Math.floor(this.rand() * 20);
    let seen = 0;
    try {
      await es.waitFor(
        (events) => {
          for (; seen < events.length; seen++) {
            const e = events[seen]!;
            if (e.event === 'subscribed') {
              const s = JSON.parse(e.data) as { recovered?: boolean };
              if (s.recovered !== true) this.errors.push(`not recovered at ${this.offset}`);
            }
            if (e.event === 'message') this.accept(JSON.parse(e.data) as Got);
          }
          return events.filter((e) => e.event === 'message').length >= want;
        },
        'sse publications',
        1500,
      );
    } catch {
      // the publisher stopped: fine
    }
    es.close();
    await es.done;
  }
}

class StreamClient extends Client {
  async session(): Promise<void> {
    const r = new NdjsonReader(
      `${srv.url}/stream?channel=${encodeURIComponent(this.stream)}&cursor=${encodeURIComponent(this.cursor)}`,
    );
    const want = 1 + Math.floor(this.rand() * 20);
    let seen = 0;
    let count = 0;
    try {
      await r.waitFor(
        (lines) => {
          for (; seen < lines.length; seen++) {
            const f = lines[seen]!;
            if (f['push'] === 'subscribed') {
              if (f['recovered'] !== true) this.errors.push(`not recovered at ${this.offset}`);
              for (const p of f['publications'] as Got[]) this.accept(p);
            } else if (f['push'] === 'pub') {
              this.accept(f as unknown as Got);
              count += 1;
            }
          }
          return count >= want;
        },
        'stream publications',
        1500,
      );
    } catch {
      // the publisher stopped
    }
    r.close();
    await r.done;
  }
}

class PollClient extends Client {
  private sessionId: string | undefined;
  async session(): Promise<void> {
    const q = `channel=${encodeURIComponent(this.stream)}&cursor=${encodeURIComponent(this.cursor)}${this.sessionId ? `&session=${this.sessionId}` : ''}`;
    if (this.rand() < 0.2) {
      // Abandon a held poll: nothing may be lost because of it.
      const ac = new AbortController();
      const p = fetch(`${srv.url}/poll?${q}`, { signal: ac.signal }).catch(() => undefined);
      ac.abort();
      await p;
    }
    const res = await fetch(`${srv.url}/poll?${q}&timeout=0.5`);
    const body = (await res.json()) as {
      session: string;
      cursor: string;
      streams: Record<string, { recovered?: boolean }>;
      publications: Got[];
    };
    this.sessionId = body.session;
    if (body.streams[this.stream]?.recovered !== true) this.errors.push(`not recovered at ${this.offset}`);
    for (const p of body.publications) this.accept(p);
  }
}

describe('recovery over HTTP transports', () => {
  it('no gap and no duplicate on SSE, /stream and /poll while a publisher never stops', async () => {
    const streams = ['hr.a', 'hr.**', 'hr.b.**'];
    const kinds = [SseClient, StreamClient, PollClient];
    const clients: Client[] = [];
    let seed = 1;
    for (const Kind of kinds) {
      for (const stream of streams) {
        const epoch = (await api(srv.url, 'history', { channel: stream, limit: 0 })).body.epoch as string;
        clients.push(new Kind(stream, epoch, prng(seed++)));
      }
    }
    const rand = prng(99);
    const channels = ['hr.a', 'hr.b', 'hr.b.c', 'hr.z'];
    const total = 400;
    let published = 0;
    const publisher = (async () => {
      for (let i = 0; i < total; i++) {
        const channel = channels[Math.floor(rand() * channels.length)]!;
        await api(srv.url, 'publish', { channel, data: { i } });
        published += 1;
      }
    })();
    const churning = clients.map((c) => c.churn(() => published >= total));
    await withTimeout(publisher, 60_000, 'publisher');
    await withTimeout(Promise.all(churning), 30_000, 'clients');
    for (const c of clients) {
      const h = await api(srv.url, 'history', { channel: c.stream, limit: 5000 });
      // Catch up with whatever is left, then compare with the whole stream.
      const deadline = Date.now() + 10_000;
      while (c.offset < h.body.offset && Date.now() < deadline) await c.session();
      expect([c.constructor.name, c.stream, c.errors]).toEqual([c.constructor.name, c.stream, []]);
      expect(c.got).toEqual(
        (h.body.publications as Got[]).map((p) => ({ offset: p.offset, channel: p.channel, data: p.data })),
      );
      expect(c.sessions).toBeGreaterThan(2);
    }
  }, 120_000);
});
