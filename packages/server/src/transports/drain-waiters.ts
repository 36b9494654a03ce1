/**
 * Who waits for a transport's last connection to close: graceful shutdown awaits every transport
 * this way (an event, not a poll of the counts).
 */
export class DrainWaiters {
  private waiters: (() => void)[] = [];

  /** Resolves once `count` is 0 (now, or at a later `removed`). */
  wait(count: number): Promise<void> {
    if (count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** A connection was removed; `count` are left. */
  removed(count: number): void {
    if (count !== 0 || this.waiters.length === 0) return;
    for (const w of this.waiters.splice(0)) w();
  }
}
