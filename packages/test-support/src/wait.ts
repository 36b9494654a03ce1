/**
 * Waiting in tests: for a promise, with a timeout that fails the test (`withTimeout`), or for a
 * condition that emits no event (`until`, `untilValue`). Never a fixed sleep that hopes something
 * happened: wait for the thing itself, and fail with what was awaited when it does not come.
 */

/** Resolves or rejects as `p` does; rejects naming `what` if `p` has not settled after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/**
 * Resolves once `cond()` (sync or async) is true, checking every `everyMs`; rejects naming `what`
 * after `ms`. Resolves with how long it waited, in ms. An exception from `cond` fails at once (wrap
 * it, e.g. `() => probe().catch(() => false)`, when failing to check means "not yet").
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 5000,
  everyMs = 10,
): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Like `until`, for a value: resolves with the first thing `get()` returns other than undefined. */
export async function untilValue<T>(
  get: () => T | undefined | Promise<T | undefined>,
  what: string,
  ms = 5000,
  everyMs = 10,
): Promise<T> {
  let value: T | undefined;
  await until(
    async () => {
      value = await get();
      return value !== undefined;
    },
    what,
    ms,
    everyMs,
  );
  return value as T;
}
