/**
 * Test support for the client SDK: waits for its events that fail clearly, publication checks, and
 * publishers that go through the server API. The server itself, free ports and `until` come from
 * `@herald/test-support`.
 */
import { until } from '@herald/test-support';
import { api } from '@herald/test-support/server';
import type { Emitter } from '../../src/emitter.js';
import type { Publication, Subscription } from '../../src/index.js';

/** Resolves with the first `event` (from now on) that passes `pred`; rejects after `ms`. */
export function next<E extends object, K extends keyof E>(
  emitter: Emitter<E>,
  event: K,
  pred: (e: E[K]) => boolean = () => true,
  ms = 5000,
): Promise<E[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for ${String(event)}`));
    }, ms);
    const off = emitter.on(event, (e) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

/** Every publication a subscription delivers, in order. */
export function collect<T>(sub: Subscription<T>): Publication<T>[] {
  const got: Publication<T>[] = [];
  sub.on('publication', (p) => got.push(p));
  return got;
}

/** Waits until `got` has `n` items; rejects after `ms` with what it has. */
export async function count<T>(sub: Subscription<T>, got: readonly unknown[], n: number, ms = 10_000): Promise<void> {
  if (got.length >= n) return;
  await next(sub, 'publication', () => got.length >= n, ms).catch((err: unknown) => {
    throw new Error(`${String(err)} (have ${got.length} of ${n} publications)`);
  });
}

/** Waits until the subscription has delivered the publication at `offset`. */
export async function reach<T>(sub: Subscription<T>, offset: number, ms = 10_000): Promise<void> {
  if ((sub.cursor?.offset ?? 0) >= offset) return;
  await next(sub, 'publication', (p) => p.offset >= offset, ms).catch((err: unknown) => {
    throw new Error(`${String(err)} (at offset ${sub.cursor?.offset} of ${offset})`);
  });
}

/** Asserts offsets are exactly first..last, once each, in order (no gap, no duplicate). */
export function gapless(offsets: readonly number[], first = 1): string | undefined {
  for (let i = 0; i < offsets.length; i++) {
    if (offsets[i] !== first + i)
      return `at index ${i}: expected offset ${first + i}, got ${offsets[i]} (${offsets.slice(Math.max(0, i - 3), i + 3).join(',')})`;
  }
  return undefined;
}

/** Publishes through the server API, retrying while the server (re)starts or a pooled connection is stale. */
export async function publishSoon(base: string, channel: string, data: unknown, ms = 5000): Promise<void> {
  let last = '';
  const published = async (): Promise<boolean> => {
    const r = await api(base, 'publish', { channel, data }).catch((err: unknown) => err as Error);
    last = r instanceof Error ? String(r) : String(r.status);
    return !(r instanceof Error) && r.status === 200;
  };
  await until(published, `a publish to ${channel} to succeed`, ms, 20).catch((err: unknown) => {
    throw new Error(`${(err as Error).message} (last: ${last})`);
  });
}

/** Publishes `{ n }` to `channel` through the server API, one after the other, until stopped. */
export function publisher(base: string, channel: string, pauseMs = 2): { stop(): Promise<number>; sent(): number } {
  let n = 0;
  let running = true;
  const done = (async () => {
    while (running) {
      const r = await api(base, 'publish', { channel, data: { n: n + 1 } });
      if (r.status !== 200) throw new Error(`publish failed: ${JSON.stringify(r.body)}`);
      n += 1;
      if (pauseMs > 0) await new Promise((res) => setTimeout(res, pauseMs));
    }
    return n;
  })();
  return {
    stop: () => {
      running = false;
      return done;
    },
    sent: () => n,
  };
}
