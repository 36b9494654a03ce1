/** Time goes through this interface so that tests can drive a fake clock. */
export interface Clock {
  /** Wall-clock ms since the Unix epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
}

export interface TimerHandle {
  cancel(): void;
}

/**
 * A Node timer as a TimerHandle: `cancel` is a method, not a closure per timer (every waiting
 * long-poll holds a timer; idle memory per connection counts).
 */
class SystemTimer implements TimerHandle {
  constructor(private readonly timer: NodeJS.Timeout) {}

  cancel(): void {
    clearTimeout(this.timer); // Node clears intervals with it as well
  }
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return new SystemTimer(t);
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    t.unref?.();
    return new SystemTimer(t);
  },
};
