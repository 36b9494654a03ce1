import fc from 'fast-check';
import { HeraldError } from '@herald/protocol';
import { describe, expect, it } from 'vitest';
import { TokenVerifier, type TokenVerifierOptions } from '../src/auth/token-verifier.js';
import { FakeClock } from './support/fake-clock.js';
import { NOW, NOW_S, SECRET, b64, hmacToken, keyPair, rejectsWith, sign } from './support/tokens.js';

const rsa = keyPair('rsa');
const rsa2 = keyPair('rsa');
const ec = keyPair('ec-256');
const ec384 = keyPair('ec-384');
const ed = keyPair('ed25519');

function verifier(opts: Partial<TokenVerifierOptions> = {}, clock = new FakeClock(NOW)): TokenVerifier {
  return new TokenVerifier({ hmacSecret: SECRET, clock, ...opts });
}

const valid = { sub: '42', exp: NOW_S + 3600 };

describe('connection tokens: what a valid token gives', () => {
  it('HS256: user id, expiry in ms, info, and permissions with $sub replaced', async () => {
    const token = await sign(
      {
        ...valid,
        info: { name: 'Ann' },
        channels: { subscribe: ['chat.room1', 'user.$sub.**'], publish: ['chat.**'], presence: ['chat.room1'] },
      },
      SECRET,
    );
    const id = await verifier().verifyConnectionToken(token);
    expect(id.userId).toBe('42');
    expect(id.expiresAt).toBe((NOW_S + 3600) * 1000);
    expect(id.info).toEqual({ name: 'Ann' });
    expect(id.permissions.toJSON()).toEqual({
      subscribe: ['chat.room1', 'user.42.**'],
      publish: ['chat.**'],
      history: [],
      presence: ['chat.room1'],
    });
    expect(id.permissions.canSubscribe('user.42.inbox')).toBe(true);
    expect(id.permissions.canSubscribe('user.43.inbox')).toBe(false);
  });

  it('a token without exp never expires, one without channels grants nothing', async () => {
    const id = await verifier().verifyConnectionToken(await sign({ sub: 'u1' }, SECRET));
    expect(id.expiresAt).toBeUndefined();
    expect(id.permissions.empty).toBe(true);
    expect('info' in id).toBe(false);
  });

  it.each([
    ['RS256', rsa],
    ['RS512', rsa],
    ['PS256', rsa],
    ['PS384', rsa],
    ['ES256', ec],
    ['ES384', ec384],
    ['EdDSA', ed],
  ] as const)('%s with a PEM public key', async (alg, pair) => {
    const v = verifier({ hmacSecret: '', publicKeys: [{ pem: pair.publicPem }] });
    const id = await v.verifyConnectionToken(await sign(valid, pair.privateKey, alg));
    expect(id.userId).toBe('42');
  });

  it('HS384 and HS512 with the secret', async () => {
    for (const alg of ['HS384', 'HS512']) {
      expect((await verifier().verifyConnectionToken(await sign(valid, SECRET, alg))).userId).toBe('42');
    }
  });

  it('several keys: a kid picks its key, keys without kid are tried for any token (key rotation)', async () => {
    const v = verifier({
      hmacSecret: '',
      publicKeys: [{ kid: 'old', pem: rsa.publicPem }, { kid: 'new', pem: rsa2.publicPem }, { pem: ec.publicPem }],
    });
    expect((await v.verifyConnectionToken(await sign(valid, rsa.privateKey, 'RS256', { kid: 'old' }))).userId).toBe(
      '42',
    );
    expect((await v.verifyConnectionToken(await sign(valid, rsa2.privateKey, 'RS256', { kid: 'new' }))).userId).toBe(
      '42',
    );
    // No kid: every RSA key is tried.
    expect((await v.verifyConnectionToken(await sign(valid, rsa2.privateKey, 'RS256'))).userId).toBe('42');
    // A kid that no key has, where no RSA key is without kid.
    const e = await rejectsWith(
      v.verifyConnectionToken(await sign(valid, rsa.privateKey, 'RS256', { kid: 'gone' })),
      'HERALD_ERR_AUTH_TOKEN_INVALID',
    );
    expect(e.message).toContain('"gone"');
    // The right kid but signed by the other key.
    await rejectsWith(
      v.verifyConnectionToken(await sign(valid, rsa2.privateKey, 'RS256', { kid: 'old' })),
      'HERALD_ERR_AUTH_TOKEN_INVALID',
    );
    // A kid-less EC key is tried for an EC token with an unknown kid.
    expect((await v.verifyConnectionToken(await sign(valid, ec.privateKey, 'ES256', { kid: 'whatever' }))).userId).toBe(
      '42',
    );
  });

  it('issuer and audience, when configured, must match; an aud list containing ours is fine', async () => {
    const v = verifier({ issuer: 'https://app.example.com', audience: 'herald' });
    const ok = await sign({ ...valid, iss: 'https://app.example.com', aud: ['other', 'herald'] }, SECRET);
    expect((await v.verifyConnectionToken(ok)).userId).toBe('42');
    for (const claims of [
      { ...valid, iss: 'https://evil.example.com', aud: 'herald' },
      { ...valid, iss: 'https://app.example.com', aud: 'other' },
      { ...valid, aud: 'herald' },
      { ...valid, iss: 'https://app.example.com' },
    ]) {
      await rejectsWith(v.verifyConnectionToken(await sign(claims, SECRET)), 'HERALD_ERR_AUTH_TOKEN_CLAIMS');
    }
    // Not configured: not checked.
    expect((await verifier().verifyConnectionToken(await sign({ ...valid, iss: 'x', aud: 'y' }, SECRET))).userId).toBe(
      '42',
    );
  });

  it('expiry and not-before follow the injected clock, with the configured tolerance', async () => {
    const clock = new FakeClock(NOW);
    const strict = verifier({}, clock);
    const lenient = verifier({ clockTolerance: 30_000 }, clock);
    const token = await sign({ sub: '42', exp: NOW_S + 60, nbf: NOW_S - 1 }, SECRET);
    await strict.verifyConnectionToken(token);
    clock.advance(60_000);
    await rejectsWith(strict.verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_EXPIRED');
    await lenient.verifyConnectionToken(token);
    clock.advance(30_000);
    await rejectsWith(lenient.verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_EXPIRED');

    const early = await sign({ sub: '42', nbf: NOW_S + 20 }, SECRET);
    const at = new FakeClock(NOW);
    await rejectsWith(verifier({}, at).verifyConnectionToken(early), 'HERALD_ERR_AUTH_TOKEN_NOT_YET_VALID');
    await verifier({ clockTolerance: 30_000 }, at).verifyConnectionToken(early);
  });
});

describe('connection tokens: every attack fails closed with a clear code', () => {
  it('alg "none", in any casing, with or without a signature', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      for (const sig of ['', 'c2lnbmF0dXJl']) {
        const token = `${b64({ alg, typ: 'JWT' })}.${b64(valid)}.${sig}`;
        await rejectsWith(verifier().verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_ALGORITHM');
        await rejectsWith(
          verifier({ hmacSecret: '', publicKeys: [{ pem: rsa.publicPem }] }).verifyConnectionToken(token),
          'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
        );
      }
    }
  });

  it('algorithm confusion: HS256 signed with the RS256 public key as its secret', async () => {
    const forged = hmacToken({ alg: 'HS256', typ: 'JWT' }, valid, rsa.publicPem);
    const forgedTrimmed = hmacToken({ alg: 'HS256', typ: 'JWT' }, valid, rsa.publicPem.trim());
    // Only the public key configured: HS* is not an algorithm of any configured key.
    const onlyRsa = verifier({ hmacSecret: '', publicKeys: [{ pem: rsa.publicPem }] });
    await rejectsWith(onlyRsa.verifyConnectionToken(forged), 'HERALD_ERR_AUTH_TOKEN_ALGORITHM');
    await rejectsWith(onlyRsa.verifyConnectionToken(forgedTrimmed), 'HERALD_ERR_AUTH_TOKEN_ALGORITHM');
    // Both configured: HS* is checked against the HMAC secret only, never against a public key.
    const both = verifier({ publicKeys: [{ pem: rsa.publicPem }] });
    await rejectsWith(both.verifyConnectionToken(forged), 'HERALD_ERR_AUTH_TOKEN_INVALID');
    await rejectsWith(both.verifyConnectionToken(forgedTrimmed), 'HERALD_ERR_AUTH_TOKEN_INVALID');
  });

  it('an algorithm that fits no configured key, or is left out of the allow-list', async () => {
    const onlyEc = verifier({ hmacSecret: '', publicKeys: [{ pem: ec.publicPem }] });
    await rejectsWith(
      onlyEc.verifyConnectionToken(await sign(valid, rsa.privateKey, 'RS256')),
      'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
    );
    await rejectsWith(
      onlyEc.verifyConnectionToken(await sign(valid, ec384.privateKey, 'ES384')),
      'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
    );
    const hs256only = verifier({ algorithms: ['HS256'] });
    await rejectsWith(
      hs256only.verifyConnectionToken(await sign(valid, SECRET, 'HS512')),
      'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
    );
    expect(hs256only.algorithms).toEqual(['HS256']);
    // A made-up algorithm name.
    const token = `${b64({ alg: 'HS1024' })}.${b64(valid)}.c2ln`;
    await rejectsWith(verifier().verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_ALGORITHM');
  });

  it('an embedded jwk header is never used to verify (the attacker signs with their own key)', async () => {
    const attacker = keyPair('rsa');
    const jwk = attacker.publicKey.export({ format: 'jwk' });
    const v = verifier({ hmacSecret: '', publicKeys: [{ pem: rsa.publicPem }] });
    const token = await sign(valid, attacker.privateKey, 'RS256', { jwk, x5c: ['MIIB'] });
    await rejectsWith(v.verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_INVALID');
  });

  it('wrong key: another secret, another RSA key, another Ed25519 key', async () => {
    await rejectsWith(
      verifier().verifyConnectionToken(await sign(valid, `${SECRET}-other`)),
      'HERALD_ERR_AUTH_TOKEN_INVALID',
    );
    const v = verifier({ hmacSecret: '', publicKeys: [{ pem: rsa.publicPem }, { pem: ed.publicPem }] });
    await rejectsWith(
      v.verifyConnectionToken(await sign(valid, rsa2.privateKey, 'RS256')),
      'HERALD_ERR_AUTH_TOKEN_INVALID',
    );
    await rejectsWith(
      v.verifyConnectionToken(await sign(valid, keyPair('ed25519').privateKey, 'EdDSA')),
      'HERALD_ERR_AUTH_TOKEN_INVALID',
    );
  });

  it('a forged token is "invalid" even when its claims are also wrong (claims are read only after the signature)', async () => {
    const forged = await sign({ sub: '42', exp: NOW_S - 100, nbf: NOW_S + 100 }, `${SECRET}-other`);
    await rejectsWith(verifier().verifyConnectionToken(forged), 'HERALD_ERR_AUTH_TOKEN_INVALID');
  });

  it('a changed payload under the original signature', async () => {
    const token = await sign(valid, SECRET);
    const [h, , s] = token.split('.');
    const tampered = `${h}.${b64({ ...valid, sub: 'admin' })}.${s}`;
    await rejectsWith(verifier().verifyConnectionToken(tampered), 'HERALD_ERR_AUTH_TOKEN_INVALID');
  });

  it('malformed: wrong number of parts, not base64url, header or claims not JSON objects', async () => {
    const v = verifier();
    const good = await sign(valid, SECRET);
    const [h, p, s] = good.split('.') as [string, string, string];
    const cases = [
      '',
      'abc',
      'a.b',
      `${h}.${p}`,
      `${h}.${p}.${s}.x`,
      `${h}.${p}+/=.${s}`,
      `${h}.${p}.${s} `,
      `é${h}.${p}.${s}`,
      `${b64('not json')}.${p}.${s}`,
      `${b64([1, 2])}.${p}.${s}`,
      `${Buffer.from([0xff, 0xfe, 0x7b]).toString('base64url')}.${p}.${s}`,
      `${h}.A.${s}`,
    ];
    for (const token of cases) await rejectsWith(v.verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_MALFORMED');
    for (const notString of [undefined, null, 42, {}, ['a.b.c']]) {
      await rejectsWith(v.verifyConnectionToken(notString), 'HERALD_ERR_AUTH_TOKEN_MALFORMED');
    }
    // Encrypted tokens get their own message.
    const jwe = await rejectsWith(v.verifyConnectionToken('a.b.c.d.e'), 'HERALD_ERR_AUTH_TOKEN_MALFORMED');
    expect(jwe.message).toContain('JWE');
    // Correctly signed, but the claims are not a JSON object.
    for (const payload of ['not json', [1, 2], 'null']) {
      const token = hmacToken({ alg: 'HS256' }, payload, SECRET);
      await rejectsWith(v.verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_MALFORMED');
    }
  });

  it('a huge token is refused by its length before anything is parsed', async () => {
    const v = verifier({ maxTokenLength: 8192 });
    // Not even a JWT: the length check comes first.
    await rejectsWith(v.verifyConnectionToken('x'.repeat(8193)), 'HERALD_ERR_AUTH_TOKEN_TOO_LARGE');
    const big = await sign({ ...valid, info: { pad: 'p'.repeat(9000) } }, SECRET);
    const e = await rejectsWith(v.verifyConnectionToken(big), 'HERALD_ERR_AUTH_TOKEN_TOO_LARGE');
    expect(e.message).toContain('8192');
    // The same token passes under a larger limit: it was only its length.
    expect((await verifier({ maxTokenLength: 20_000 }).verifyConnectionToken(big)).userId).toBe('42');
  });

  it('claims: sub missing, not a string, empty or too long; channels of the wrong shape; a subscription token', async () => {
    const v = verifier();
    const cases: Record<string, unknown>[] = [
      { exp: NOW_S + 60 },
      { sub: 42 },
      { sub: '' },
      { sub: 'u'.repeat(256) },
      { sub: '42', exp: 'tomorrow' },
      { sub: '42', channels: ['chat.room1'] }, // Centrifugo's server-side subscription list is not our claim
      { sub: '42', channels: { subscibe: ['chat.**'] } },
      { sub: '42', channels: { subscribe: 'chat.**' } },
      { sub: '42', channels: { subscribe: ['chat.*'] } },
      { sub: '42', channels: { subscribe: ['**'] } },
      { sub: '42', channels: { subscribe: ['chat.**.x'] } },
      { sub: '42', channels: { subscribe: [42] } },
      { sub: 'a.b', channels: { subscribe: ['user.$sub.**'] } },
      { sub: 'x.**', channels: { subscribe: ['user.$sub'] } },
      { sub: '42', channel: 'chat.room1' },
    ];
    for (const claims of cases) {
      await rejectsWith(v.verifyConnectionToken(await sign(claims, SECRET)), 'HERALD_ERR_AUTH_TOKEN_CLAIMS');
    }
  });

  it('with no key configured, every token is refused (never taken as anonymous)', async () => {
    const v = new TokenVerifier({ clock: new FakeClock(NOW) });
    expect(v.configured).toBe(false);
    await rejectsWith(v.verifyConnectionToken(await sign(valid, SECRET)), 'HERALD_ERR_AUTH_TOKEN_INVALID');
  });

  it('messages never quote the token', async () => {
    const v = verifier();
    const tokens = [
      await sign({ ...valid, exp: NOW_S - 10 }, SECRET),
      await sign(valid, `${SECRET}-other`),
      await sign({ sub: '' }, SECRET),
    ];
    for (const token of tokens) {
      const err = await v.verifyConnectionToken(token).catch((e: unknown) => e as HeraldError);
      expect(err).toBeInstanceOf(HeraldError);
      for (const part of token.split('.')) expect((err as HeraldError).message).not.toContain(part);
    }
  });
});

describe('subscription tokens', () => {
  const sub = { sub: '42', channel: 'secret.room1', exp: NOW_S + 600 };

  it('grant one channel to one user', async () => {
    const grant = await verifier().verifySubscriptionToken(
      await sign({ ...sub, info: { role: 'mod' } }, SECRET),
      'secret.room1',
      '42',
    );
    expect(grant).toEqual({
      userId: '42',
      channel: 'secret.room1',
      expiresAt: (NOW_S + 600) * 1000,
      info: { role: 'mod' },
    });
    // A subtree token is for that subtree exactly.
    const tree = await sign({ ...sub, channel: 'secret.**' }, SECRET);
    expect((await verifier().verifySubscriptionToken(tree, 'secret.**', '42')).channel).toBe('secret.**');
    await rejectsWith(
      verifier().verifySubscriptionToken(tree, 'secret.room1', '42'),
      'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH',
    );
    // An anonymous connection may use a token issued for sub "".
    const anon = await sign({ ...sub, sub: '' }, SECRET);
    expect((await verifier().verifySubscriptionToken(anon, 'secret.room1', '')).userId).toBe('');
  });

  it('for another channel or another user: refused', async () => {
    const token = await sign(sub, SECRET);
    const v = verifier();
    for (const channel of ['secret.room2', 'secret.room10', 'secret.room1.x', 'secret.**', 'Secret.room1']) {
      await rejectsWith(v.verifySubscriptionToken(token, channel, '42'), 'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH');
    }
    await rejectsWith(v.verifySubscriptionToken(token, 'secret.room1', '43'), 'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH');
    await rejectsWith(v.verifySubscriptionToken(token, 'secret.room1', ''), 'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH');
  });

  it('a connection token is not a subscription token; expiry and signature are checked the same way', async () => {
    const v = verifier();
    await rejectsWith(
      v.verifySubscriptionToken(
        await sign({ sub: '42', channels: { subscribe: ['secret.room1'] } }, SECRET),
        'secret.room1',
        '42',
      ),
      'HERALD_ERR_AUTH_TOKEN_CLAIMS',
    );
    await rejectsWith(
      v.verifySubscriptionToken(await sign({ ...sub, exp: NOW_S - 1 }, SECRET), 'secret.room1', '42'),
      'HERALD_ERR_AUTH_TOKEN_EXPIRED',
    );
    await rejectsWith(
      v.verifySubscriptionToken(await sign(sub, `${SECRET}-other`), 'secret.room1', '42'),
      'HERALD_ERR_AUTH_TOKEN_INVALID',
    );
    await rejectsWith(
      v.verifySubscriptionToken(await sign({ channel: 'secret.room1' }, SECRET), 'secret.room1', '42'),
      'HERALD_ERR_AUTH_TOKEN_CLAIMS',
    );
  });
});

describe('fuzz: no crash, no accepted forgery', () => {
  const v = verifier({ publicKeys: [{ pem: ec.publicPem }] });
  const isAuthError = (e: unknown): boolean => e instanceof HeraldError && e.code.startsWith('HERALD_ERR_AUTH_');

  it('any string is refused with an auth code', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          fc.array(fc.base64String(), { minLength: 1, maxLength: 6 }).map((parts) => parts.join('.')),
        ),
        async (token) => {
          const outcome = await v.verifyConnectionToken(token).then(
            () => 'accepted',
            (e: unknown) => (isAuthError(e) ? 'refused' : `crashed: ${String(e)}`),
          );
          expect(outcome).toBe('refused');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('any header and claims signed with a key Herald does not have are refused', async () => {
    const json = fc.jsonValue({ maxDepth: 2 });
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.constantFrom('alg', 'kid', 'jku', 'jwk', 'crit', 'typ', 'b64', 'x5u'), json),
        fc.dictionary(fc.constantFrom('sub', 'exp', 'nbf', 'channels', 'channel', 'info', 'iss'), json),
        fc.constantFrom('HS256', 'none', 'RS256', 'ES256', 'EdDSA', 'NONE'),
        async (header, claims, alg) => {
          const token = hmacToken({ ...header, alg }, claims, `${SECRET}-attacker`);
          const outcome = await v.verifyConnectionToken(token).then(
            () => 'accepted',
            (e: unknown) => (isAuthError(e) ? 'refused' : `crashed: ${String(e)}`),
          );
          expect(outcome).toBe('refused');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('changing one character of a valid token never yields different claims', async () => {
    const claims = { sub: '42', exp: NOW_S + 3600, channels: { subscribe: ['chat.**'] } };
    const token = await sign(claims, SECRET);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.';
    await fc.assert(
      fc.asyncProperty(fc.nat(token.length - 1), fc.constantFrom(...alphabet), async (at, ch) => {
        const mutated = token.slice(0, at) + ch + token.slice(at + 1);
        const result = await v.verifyConnectionToken(mutated).then(
          (id) => ({ ok: true as const, id }),
          (e: unknown) => ({ ok: false as const, auth: isAuthError(e) }),
        );
        if (result.ok) {
          // Only a change in the unused low bits of the last base64url character can pass.
          expect(result.id.userId).toBe('42');
          expect(result.id.permissions.toJSON().subscribe).toEqual(['chat.**']);
        } else {
          expect(result.auth).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
