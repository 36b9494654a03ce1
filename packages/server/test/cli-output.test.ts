/** The pieces of the CLI's output and pacing: network errors in a few words, backoff, URLs. */
import { describe, expect, it } from 'vitest';
import { BACKOFF_CAP_MS, backoffDelay, shouldLogAttempt } from '../src/cli/backoff.js';
import { describeNetworkError, table, truncate } from '../src/cli/output.js';
import { resolveTarget } from '../src/cli/server-client.js';

const sysError = (code: string, extra: Record<string, unknown> = {}): Error =>
  Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code, ...extra });

describe('describeNetworkError', () => {
  it("unwraps undici's fetch failed, AggregateError and plain socket errors", () => {
    expect(describeNetworkError(new TypeError('fetch failed', { cause: sysError('ECONNREFUSED') }))).toBe(
      'connection refused',
    );
    const both = new AggregateError([sysError('ECONNREFUSED'), sysError('ECONNREFUSED')], 'connect failed');
    expect(describeNetworkError(Object.assign(both, { code: 'ECONNREFUSED' }))).toBe('connection refused');
    expect(describeNetworkError(new AggregateError([sysError('ETIMEDOUT')]))).toBe('connection timed out');
    expect(describeNetworkError(sysError('ENOTFOUND', { hostname: 'x.invalid' }))).toBe('unknown host "x.invalid"');
    expect(describeNetworkError(sysError('EHOSTUNREACH'))).toBe('host unreachable');
    expect(describeNetworkError(Object.assign(new Error('odd'), { code: 'EWHAT' }))).toBe('odd (EWHAT)');
    expect(describeNetworkError('text')).toBe('text');
  });
});

describe('backoff', () => {
  it('grows from 0.5 s, doubling, capped at 30 s, with jitter in the upper half', () => {
    expect(backoffDelay(1, 0)).toBe(250);
    expect(backoffDelay(1, 0.999)).toBeCloseTo(500, 0);
    expect(backoffDelay(3, 0)).toBe(1000);
    expect(backoffDelay(20, 0)).toBe(BACKOFF_CAP_MS / 2);
    expect(backoffDelay(1000, 0.999)).toBeLessThanOrEqual(BACKOFF_CAP_MS);
  });

  it('logs tries 1, 2, 4, 8, ..., at least every 5 minutes, and on a new reason', () => {
    const logged = [...Array(40).keys()].map((i) => i + 1).filter((n) => shouldLogAttempt(n, false, 0));
    expect(logged).toEqual([1, 2, 4, 8, 16, 32]);
    expect(shouldLogAttempt(5, true, 0)).toBe(true);
    expect(shouldLogAttempt(5, false, 5 * 60_000)).toBe(true);
  });
});

describe('resolveTarget', () => {
  it('takes a URL from --url, HERALD_URL or the default, in the forms a user types', () => {
    expect(resolveTarget(undefined, {})).toEqual({ base: 'http://localhost:8080', given: false });
    expect(resolveTarget(undefined, { HERALD_URL: 'http://h:1/' })).toEqual({ base: 'http://h:1', given: true });
    expect(resolveTarget('localhost:9000', {}).base).toBe('http://localhost:9000');
    expect(resolveTarget('wss://example.com/herald/ws', {}).base).toBe('https://example.com/herald');
    expect(() => resolveTarget('ftp://x', {})).toThrow(/--url must be http/);
    expect(() => resolveTarget('http://', {})).toThrow(/not a URL/);
  });
});

describe('text', () => {
  it('truncates with an ellipsis and aligns columns', () => {
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(truncate('abc', 4)).toBe('abc');
    expect(
      table([
        ['A', 'BB', 'C'],
        ['aaa', 'b', 'c'],
      ]),
    ).toEqual(['A    BB  C', 'aaa  b   c']);
  });
});
