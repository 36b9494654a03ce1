/** The wait between attempts: bounds of the jittered exponential backoff, and `Retry-After`. */
import { describe, expect, it } from 'vitest';
import { backoffDelay, retryAfterMs } from '../src/backoff.js';

const opts = { initial: 100, max: 1000 };

describe('backoffDelay', () => {
  it('doubles from initial up to max, between half and all of it', () => {
    const ceilings = [100, 200, 400, 800, 1000, 1000];
    ceilings.forEach((ceiling, i) => {
      expect(backoffDelay(i + 1, opts, undefined, () => 0)).toBe(ceiling / 2);
      expect(backoffDelay(i + 1, opts, undefined, () => 1)).toBe(ceiling);
    });
  });

  it("waits at least the server's hint, capped at max", () => {
    expect(backoffDelay(1, opts, 600, () => 0)).toBe(600);
    expect(backoffDelay(1, opts, 60_000, () => 0)).toBe(1000);
    expect(backoffDelay(4, opts, 10, () => 1)).toBe(800);
  });
});

describe('retryAfterMs', () => {
  it('reads seconds or an HTTP date', () => {
    expect(retryAfterMs('3')).toBe(3000);
    expect(retryAfterMs(['2', '9'])).toBe(2000);
    const now = Date.parse('2030-01-01T00:00:00Z');
    expect(retryAfterMs('Tue, 01 Jan 2030 00:00:05 GMT', now)).toBe(5000);
    expect(retryAfterMs('Mon, 31 Dec 2029 00:00:00 GMT', now)).toBe(0);
  });

  it('ignores what it cannot read', () => {
    for (const h of [undefined, '', 'soon', '-1']) expect(retryAfterMs(h)).toBeUndefined();
  });
});
