/** `herald token`: the tokens it prints pass the verifier configured the same way. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier } from '../src/auth/token-verifier.js';
import { TokenUsageError, buildToken } from '../src/cli/token.js';
import { FakeClock } from './support/fake-clock.js';
import { NOW, NOW_S, SECRET, keyPair } from './support/tokens.js';

const env = { HERALD_AUTH_HMAC_SECRET: SECRET };
const verifier = new TokenVerifier({ hmacSecret: SECRET, clock: new FakeClock(NOW) });
const ec = keyPair('ec-256');
const ed = keyPair('ed25519');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herald-token-'));
  await writeFile(path.join(dir, 'ec.key'), ec.privatePem);
  await writeFile(path.join(dir, 'ed.key'), ed.privatePem);
  await writeFile(
    path.join(dir, 'herald.yaml'),
    `auth:\n  hmacSecret: ${SECRET}\n  issuer: https://app.example.com\n  audience: herald\n`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('herald token', () => {
  it('signs a connection token with the configured HMAC secret', async () => {
    const token = await buildToken(
      [
        '--sub',
        '42',
        '--subscribe',
        'chat.**',
        '--subscribe',
        'user.$sub.**',
        '--publish',
        'chat.room1',
        '--ttl',
        '30m',
        '--info',
        '{"name":"Ann"}',
      ],
      env,
      NOW,
    );
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(decodeJwt(token)).toEqual({
      sub: '42',
      iat: NOW_S,
      exp: NOW_S + 1800,
      info: { name: 'Ann' },
      channels: { subscribe: ['chat.**', 'user.$sub.**'], publish: ['chat.room1'] },
    });
    const id = await verifier.verifyConnectionToken(token);
    expect(id.permissions.canSubscribe('user.42.inbox')).toBe(true);
    expect(id.expiresAt).toBe((NOW_S + 1800) * 1000);
  });

  it('a subscription token with --channel', async () => {
    const token = await buildToken(['--sub', '42', '--channel', 'secret.room1', '--ttl', '5m'], env, NOW);
    expect((await verifier.verifySubscriptionToken(token, 'secret.room1', '42')).expiresAt).toBe((NOW_S + 300) * 1000);
  });

  it('takes issuer and audience from the config file, so the server accepts the token', async () => {
    const token = await buildToken(['--sub', '7', '--config', path.join(dir, 'herald.yaml')], {}, NOW);
    const strict = new TokenVerifier({
      hmacSecret: SECRET,
      issuer: 'https://app.example.com',
      audience: 'herald',
      clock: new FakeClock(NOW),
    });
    expect((await strict.verifyConnectionToken(token)).userId).toBe('7');
    expect(decodeJwt(token).exp).toBe(NOW_S + 3600);
  });

  it('signs with a private key file: ES256, EdDSA, with a kid', async () => {
    const v = new TokenVerifier({
      publicKeys: [{ pem: ec.publicPem }, { kid: 'ed-1', pem: ed.publicPem }],
      clock: new FakeClock(NOW),
    });
    const esToken = await buildToken(['--sub', '1', '--private-key', path.join(dir, 'ec.key')], {}, NOW);
    expect(decodeProtectedHeader(esToken).alg).toBe('ES256');
    expect((await v.verifyConnectionToken(esToken)).userId).toBe('1');
    const edToken = await buildToken(
      ['--sub', '2', '--private-key', path.join(dir, 'ed.key'), '--kid', 'ed-1'],
      {},
      NOW,
    );
    expect(decodeProtectedHeader(edToken)).toMatchObject({ alg: 'EdDSA', kid: 'ed-1' });
    expect((await v.verifyConnectionToken(edToken)).userId).toBe('2');
  });

  it('explains what is wrong', async () => {
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [[], env, /--sub is required/],
      [['--sub', '1'], {}, /no HMAC secret is configured/],
      [['--sub', '1', '--ttl', 'soon'], env, /--ttl/],
      [['--sub', '1', '--info', '{nope'], env, /--info must be JSON/],
      [['--sub', '1', '--subscribe', 'chat.*'], env, /--subscribe chat\.\*/],
      [['--sub', '1', '--channel', 'a.b', '--subscribe', 'a.**'], env, /carries no/],
      [['--sub', '1', '--alg', 'RS256'], env, /--alg must be one of HS256, HS384, HS512/],
      [['--sub', '1', '--private-key', path.join(dir, 'nope.key')], {}, /--private-key/],
      [['--sub', '1', '--bogus'], env, /bogus/],
    ];
    for (const [argv, e, message] of cases) {
      const err = await buildToken(argv, e, NOW).catch((x: unknown) => x);
      expect(err, argv.join(' ')).toBeInstanceOf(TokenUsageError);
      expect((err as Error).message).toMatch(message);
    }
  });
});
