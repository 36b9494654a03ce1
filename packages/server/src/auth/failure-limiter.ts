/**
 * Limits failed authentication attempts per remote address: after `maxFailures` failures within
 * one window, that address is refused (`HERALD_ERR_AUTH_RATE_LIMITED`) until the window ends,
 * before any token is parsed. Successes do not reset the count (one valid token must not unlock
 * guessing). Memory is bounded: at most `maxTracked` addresses are remembered, the oldest dropped
 * first.
 */
import { HeraldError } from '@herald/protocol';
import { systemClock, type Clock } from '../core/clock.js';

export interface FailureLimiterOptions {
  /** Failures allowed per address and window; 0 turns the limiter off. */
  readonly maxFailures: number;
  /** Length of a window, in ms. Default 60 s. */
  readonly windowMs?: number;
  /** Addresses remembered at most. Default 100 000. */
  readonly maxTracked?: number;
  readonly clock?: Clock;
}

interface Window {
  start: number;
  failures: number;
}

export class FailureLimiter {
  private readonly maxFailures: number;
  private readonly windowMs: number;
  private readonly maxTracked: number;
  private readonly clock: Clock;
  private readonly windows = new Map<string, Window>();

  constructor(opts: FailureLimiterOptions) {
    this.maxFailures = opts.maxFailures;
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxTracked = opts.maxTracked ?? 100_000;
    this.clock = opts.clock ?? systemClock;
  }

  /** Throws `HERALD_ERR_AUTH_RATE_LIMITED` when `address` used up its failures in this window. */
  check(address: string | undefined): void {
    if (this.maxFailures === 0 || address === undefined) return;
    const w = this.current(address);
    if (w !== undefined && w.failures >= this.maxFailures) {
      const retryAfter = Math.ceil((w.start + this.windowMs - this.clock.now()) / 1000);
      throw new HeraldError(
        'HERALD_ERR_AUTH_RATE_LIMITED',
        `too many failed authentication attempts from this address; retry in ${retryAfter} s`,
      );
    }
  }

  /** Seconds until `address` may try again: 0 while it has failures left in this window. */
  blockedFor(address: string | undefined): number {
    if (this.maxFailures === 0 || address === undefined) return 0;
    const w = this.current(address);
    if (w === undefined || w.failures < this.maxFailures) return 0;
    return Math.max(1, Math.ceil((w.start + this.windowMs - this.clock.now()) / 1000));
  }

  /** Counts one failed authentication of `address`. */
  fail(address: string | undefined): void {
    if (this.maxFailures === 0 || address === undefined) return;
    const w = this.current(address);
    if (w !== undefined) {
      w.failures += 1;
      return;
    }
    if (this.windows.size >= this.maxTracked) this.prune();
    this.windows.set(address, { start: this.clock.now(), failures: 1 });
  }

  /** Addresses currently remembered (for tests and `info`). */
  get tracked(): number {
    return this.windows.size;
  }

  private current(address: string): Window | undefined {
    const w = this.windows.get(address);
    if (w === undefined) return undefined;
    if (this.clock.now() - w.start >= this.windowMs) {
      this.windows.delete(address);
      return undefined;
    }
    return w;
  }

  /** Drops ended windows; if still full, the oldest entries (a Map keeps insertion order). */
  private prune(): void {
    const now = this.clock.now();
    for (const [address, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(address);
    for (const address of this.windows.keys()) {
      if (this.windows.size < this.maxTracked) break;
      this.windows.delete(address);
    }
  }
}
