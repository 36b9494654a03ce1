/** Reconnection pacing of `herald subscribe`. */

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 30_000;

/**
 * The wait before try `attempt` + 1 after `attempt` failures in a row (1, 2, ...): exponential
 * from 0.5 s, capped at 30 s, with "equal jitter" (half fixed, half random) so that many
 * subscribers cut off together do not come back in step. `random` in [0, 1).
 */
export function backoffDelay(attempt: number, random: number = Math.random()): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 16));
  return ceiling / 2 + (ceiling / 2) * random;
}

/**
 * Whether to log failed try `attempt` (1, 2, ...) when stderr is not a terminal: the first two,
 * then the powers of two, and at least every 5 minutes; and whenever the reason changed.
 */
export function shouldLogAttempt(attempt: number, reasonChanged: boolean, msSinceLastLog: number): boolean {
  if (reasonChanged || attempt <= 2) return true;
  if ((attempt & (attempt - 1)) === 0) return true;
  return msSinceLastLog >= 5 * 60_000;
}
