import { describe, expect, it } from 'vitest';
import { ANONYMOUS, Authenticator } from '../src/auth/authenticator.js';
import { FailureLimiter } from '../src/auth/failure-limiter.js';
import { TokenVerifier } from '../src/auth/token-verifier.js';
import { FakeClock } from './support/fake-clock.js';
import { NOW, NOW_S, SECRET, rejectsWith, sign } from './support/tokens.js';

function setup(opts: { anonymousConnect?: boolean; maxFailures?: number } = {}) {
  const clock = new FakeClock(NOW);
  const verifier = new TokenVerifier({ hmacSecret: SECRET, clock });
  const limiter = new FailureLimiter({ maxFailures: opts.maxFailures ?? 3, windowMs: 60_000, clock });
  const auth = new Authenticator({ verifier, limiter, anonymousConnect: opts.anonymousConnect ?? true });
  return { clock, auth, limiter };
}

describe('Authenticator', () => {
  it('no token: anonymous where allowed, TOKEN_REQUIRED where not', async () => {
    expect(await setup().auth.authenticate(undefined)).toBe(ANONYMOUS);
    expect(await setup().auth.authenticate('')).toBe(ANONYMOUS);
    await rejectsWith(
      setup({ anonymousConnect: false }).auth.authenticate(undefined),
      'HERALD_ERR_AUTH_TOKEN_REQUIRED',
    );
  });

  it('a bad token never falls back to anonymous', async () => {
    const { auth } = setup();
    await rejectsWith(auth.authenticate('garbage'), 'HERALD_ERR_AUTH_TOKEN_MALFORMED');
    await rejectsWith(
      auth.authenticate(await sign({ sub: '42', exp: NOW_S - 1 }, SECRET)),
      'HERALD_ERR_AUTH_TOKEN_EXPIRED',
    );
  });

  it('a valid token gives the user, expiry, info and permissions', async () => {
    const token = await sign({ sub: '42', exp: NOW_S + 60, info: { n: 1 }, channels: { subscribe: ['a.**'] } }, SECRET);
    const id = await setup().auth.authenticate(token, '10.0.0.1');
    expect(id).toMatchObject({ userId: '42', anonymous: false, expiresAt: (NOW_S + 60) * 1000, info: { n: 1 } });
    expect(id.permissions.canSubscribe('a.b')).toBe(true);
  });

  it('refresh keeps the user: a token for another user, or for an anonymous connection, is refused', async () => {
    const { auth } = setup();
    const first = await auth.authenticate(await sign({ sub: '42', exp: NOW_S + 60 }, SECRET));
    const next = await auth.refresh(
      first,
      await sign({ sub: '42', exp: NOW_S + 3600, channels: { publish: ['a.b'] } }, SECRET),
    );
    expect(next.expiresAt).toBe((NOW_S + 3600) * 1000);
    expect(next.permissions.canPublish('a.b')).toBe(true);
    await rejectsWith(
      auth.refresh(first, await sign({ sub: '43', exp: NOW_S + 60 }, SECRET)),
      'HERALD_ERR_AUTH_TOKEN_CLAIMS',
    );
    await rejectsWith(auth.refresh(ANONYMOUS, await sign({ sub: '42' }, SECRET)), 'HERALD_ERR_AUTH_TOKEN_CLAIMS');
    await rejectsWith(auth.refresh(first, 'garbage'), 'HERALD_ERR_AUTH_TOKEN_MALFORMED');
  });

  it('failed attempts are limited per address and window; good tokens do not reset the count', async () => {
    const { auth, clock } = setup({ maxFailures: 3 });
    const good = await sign({ sub: '42' }, SECRET);
    for (let i = 0; i < 3; i++) {
      await auth.authenticate(good, '10.0.0.1');
      await rejectsWith(auth.authenticate(`bad${i}`, '10.0.0.1'), 'HERALD_ERR_AUTH_TOKEN_MALFORMED');
    }
    const limited = await rejectsWith(auth.authenticate(good, '10.0.0.1'), 'HERALD_ERR_AUTH_RATE_LIMITED');
    expect(limited.message).toContain('60 s');
    // Other addresses, and clients without a token, are not affected.
    expect((await auth.authenticate(good, '10.0.0.2')).userId).toBe('42');
    expect(await auth.authenticate(undefined, '10.0.0.1')).toBe(ANONYMOUS);
    clock.advance(59_999);
    await rejectsWith(auth.authenticate(good, '10.0.0.1'), 'HERALD_ERR_AUTH_RATE_LIMITED');
    clock.advance(1);
    expect((await auth.authenticate(good, '10.0.0.1')).userId).toBe('42');
  });
});

describe('FailureLimiter', () => {
  it('remembers a bounded number of addresses, dropping ended windows, then the oldest', () => {
    const clock = new FakeClock(NOW);
    const limiter = new FailureLimiter({ maxFailures: 1, windowMs: 1_000, maxTracked: 3, clock });
    for (const a of ['a', 'b', 'c']) limiter.fail(a);
    expect(limiter.tracked).toBe(3);
    limiter.fail('d');
    expect(limiter.tracked).toBe(3);
    expect(() => limiter.check('a')).not.toThrow(); // the oldest was dropped
    expect(() => limiter.check('d')).toThrow(/too many/);
    clock.advance(1_000);
    limiter.fail('e');
    expect(limiter.tracked).toBe(1);
  });

  it('0 turns it off', () => {
    const limiter = new FailureLimiter({ maxFailures: 0 });
    for (let i = 0; i < 100; i++) limiter.fail('a');
    expect(() => limiter.check('a')).not.toThrow();
    expect(limiter.tracked).toBe(0);
  });
});
