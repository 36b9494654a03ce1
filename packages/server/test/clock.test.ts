import { describe, expect, it } from 'vitest';
import { systemClock } from '../src/core/clock.js';

describe('systemClock', () => {
  it('cancels timeouts and intervals (a later timeout proves the cancelled ones never ran)', async () => {
    const ran: string[] = [];
    systemClock.setTimeout(() => ran.push('kept'), 1);
    systemClock.setTimeout(() => ran.push('cancelled timeout'), 1).cancel();
    const every = systemClock.setInterval(() => ran.push('interval'), 1);
    systemClock.setInterval(() => ran.push('cancelled interval'), 1).cancel();
    await new Promise<void>((resolve) => {
      const poll = (): void => {
        if (ran.filter((r) => r === 'interval').length >= 2) resolve();
        else systemClock.setTimeout(poll, 1);
      };
      poll();
    });
    every.cancel();
    expect(ran.filter((r) => r !== 'interval')).toEqual(['kept']);
  });
});
