/**
 * Waiting between attempts: capped exponential backoff with "equal jitter" (half the delay fixed,
 * half random), so that retries spread out but still wait long enough in total to ride out a
 * server restart, and an optional server hint (`Retry-After`) that lengthens one wait.
 */

export interface BackoffOptions {
  /** The wait before the first retry, in ms (before jitter). Default 250. */
  readonly initial?: number;
  /** The longest wait between two attempts, in ms. Default 4000. */
  readonly max?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initial: 250, max: 4000 };

/**
 * The wait before retry number `retry` (1 for the first retry): between half and all of
 * `min(max, initial * 2^(retry-1))`, and at least `hintMs` (capped at `max`) when the server gave one.
 */
export function backoffDelay(
  retry: number,
  opts: Required<BackoffOptions>,
  hintMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(opts.max, opts.initial * 2 ** Math.max(0, retry - 1));
  const delay = ceiling / 2 + (random() * ceiling) / 2;
  return Math.round(hintMs !== undefined ? Math.max(delay, Math.min(hintMs, opts.max)) : delay);
}

/** Resolves after `ms`; rejects with the signal's reason as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** `Retry-After` (seconds, or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  if (/^\s*[-+.\d]+\s*$/.test(value)) return undefined; // a number, but not whole seconds
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
