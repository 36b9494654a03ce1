import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuth } from '../src/auth/index.js';
import {
  ConfigError,
  DEFAULT_CONFIG,
  ENV_VARIABLES,
  JWT_ALGORITHMS,
  loadConfig,
  namespaceOptions,
  resolveConfig,
  type ConfigInput,
} from '../src/config/index.js';
import { FakeClock } from './support/fake-clock.js';
import { NOW, NOW_S, SECRET, keyPair, rejectsWith, sign } from './support/tokens.js';

const rsa = keyPair('rsa');
const ed = keyPair('ed25519');
let dir: string;
let rsaFile: string;
let edFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'herald-auth-config-'));
  rsaFile = path.join(dir, 'rsa.pem');
  edFile = path.join(dir, 'ed.pem');
  await writeFile(rsaFile, rsa.publicPem);
  await writeFile(edFile, ed.publicPem);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function issues(input: ConfigInput): string[] {
  try {
    resolveConfig(input, 'test.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('auth configuration', () => {
  it('defaults: no key, anonymous connections allowed, every algorithm, 8kb tokens, no hooks', () => {
    expect(DEFAULT_CONFIG.auth).toEqual({
      hmacSecret: '',
      publicKeys: [],
      jwksUrl: '',
      jwksCacheTtl: 600_000,
      jwksCooldown: 30_000,
      algorithms: [...JWT_ALGORITHMS],
      issuer: '',
      audience: '',
      clockTolerance: 0,
      maxTokenLength: 8192,
      anonymousConnect: true,
      maxFailuresPerMinute: 30,
      hooks: { url: '', apiKey: '', timeout: 5_000, maxConnections: 32, connect: false, rpc: false },
    });
    expect(DEFAULT_CONFIG.namespaces['default']).toMatchObject({ requireSubscriptionToken: false, hooks: [] });
    expect(JWT_ALGORITHMS).not.toContain('none');
  });

  it('reads every auth option from a file-shaped object', () => {
    const { config } = resolveConfig({
      auth: {
        hmacSecret: SECRET,
        publicKeys: [rsa.publicPem, edFile, { kid: 'k1', key: edFile }],
        jwksUrl: 'https://idp.example.com/.well-known/jwks.json',
        jwksCacheTtl: '1h',
        jwksCooldown: '10s',
        algorithms: ['hs256', 'RS256', 'eddsa'],
        issuer: 'https://app.example.com',
        audience: 'herald',
        clockTolerance: '30s',
        maxTokenLength: '16kb',
        anonymousConnect: false,
        maxFailuresPerMinute: 5,
        hooks: {
          url: 'http://backend:3000/herald',
          apiKey: 'hook-key-0123456789abcdef',
          timeout: '2s',
          maxConnections: 8,
          connect: true,
          rpc: 'yes',
        },
      },
      namespaces: {
        game: { hooks: ['subscribe', 'publish'], requireSubscriptionToken: true },
        chat: { hooks: 'publish' },
      },
    });
    expect(config.auth.publicKeys).toEqual([
      { kid: '', pem: rsa.publicPem.trim() },
      { kid: '', pem: ed.publicPem.trim() },
      { kid: 'k1', pem: ed.publicPem.trim() },
    ]);
    expect(config.auth).toMatchObject({
      hmacSecret: SECRET,
      jwksUrl: 'https://idp.example.com/.well-known/jwks.json',
      jwksCacheTtl: 3_600_000,
      jwksCooldown: 10_000,
      algorithms: ['HS256', 'RS256', 'EdDSA'],
      issuer: 'https://app.example.com',
      audience: 'herald',
      clockTolerance: 30_000,
      maxTokenLength: 16_384,
      anonymousConnect: false,
      maxFailuresPerMinute: 5,
      hooks: { url: 'http://backend:3000/herald', timeout: 2_000, maxConnections: 8, connect: true, rpc: true },
    });
    expect(namespaceOptions(config, 'game')).toMatchObject({
      hooks: ['subscribe', 'publish'],
      requireSubscriptionToken: true,
    });
    expect(namespaceOptions(config, 'chat').hooks).toEqual(['publish']);
    expect(namespaceOptions(config, 'news').hooks).toEqual([]);
  });

  it('reads the environment: HERALD_AUTH_* variables, keys as comma-separated paths', async () => {
    expect(ENV_VARIABLES.get('HERALD_AUTH_HMAC_SECRET')).toBe('auth.hmacSecret');
    expect(ENV_VARIABLES.get('HERALD_AUTH_HOOKS_URL')).toBe('auth.hooks.url');
    const { config } = await loadConfig({
      env: {
        HERALD_AUTH_HMAC_SECRET: SECRET,
        HERALD_AUTH_PUBLIC_KEYS: `${rsaFile},${edFile}`,
        HERALD_AUTH_ALGORITHMS: 'HS256,RS256',
        HERALD_AUTH_ISSUER: 'app',
        HERALD_AUTH_CLOCK_TOLERANCE: '5s',
        HERALD_AUTH_ANONYMOUS_CONNECT: 'false',
        HERALD_AUTH_HOOKS_URL: 'http://127.0.0.1:9/hooks',
        HERALD_AUTH_HOOKS_TIMEOUT: '750ms',
        HERALD_AUTH_HOOKS_RPC: '1',
        HERALD_NAMESPACES: '{"game":{"hooks":"subscribe,publish","requireSubscriptionToken":"yes"}}',
      },
    });
    expect(config.auth.publicKeys.map((k) => k.pem)).toEqual([rsa.publicPem.trim(), ed.publicPem.trim()]);
    expect(config.auth).toMatchObject({
      hmacSecret: SECRET,
      algorithms: ['HS256', 'RS256'],
      issuer: 'app',
      clockTolerance: 5_000,
      anonymousConnect: false,
      hooks: { url: 'http://127.0.0.1:9/hooks', timeout: 750, rpc: true },
    });
    expect(namespaceOptions(config, 'game')).toMatchObject({
      hooks: ['subscribe', 'publish'],
      requireSubscriptionToken: true,
    });
  });

  it('refuses weak or wrong settings, with a message that never quotes a secret', () => {
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    const found = issues({
      auth: {
        hmacSecret: 'short-secret',
        publicKeys: [
          rsa.privatePem,
          rsa1024.toString(),
          pss.toString(),
          path.join(dir, 'missing.pem'),
          { kid: 'a', key: rsa.publicPem },
          { kid: 'a', key: ed.publicPem },
          { kid: 'b', pem: rsa.publicPem } as unknown as { key: string },
          '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----',
        ],
        jwksUrl: 'ftp://idp.example.com/jwks',
        algorithms: ['HS256', 'none'],
        clockTolerance: '2h',
        maxTokenLength: '10',
        hooks: { url: 'http://user:pass@backend/x', apiKey: 'short', timeout: 0 },
      },
    });
    const text = found.join('\n');
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^auth\.hmacSecret: is too short: an HMAC secret needs at least 32 bytes/),
        expect.stringMatching(/^auth\.publicKeys\[0\]: is a private key/),
        expect.stringMatching(/^auth\.publicKeys\[1\]: is a 1024-bit RSA key/),
        expect.stringMatching(/^auth\.publicKeys\[2\]: is an RSA-PSS-only key/),
        expect.stringMatching(
          /^auth\.publicKeys\[3\]: is not PEM text, and reading it as a file failed: the file does not exist/,
        ),
        expect.stringMatching(/^auth\.publicKeys: kid "a" is used by two keys/),
        expect.stringMatching(/^auth\.publicKeys\[6\]: has unknown key "pem"/),
        expect.stringMatching(/^auth\.publicKeys\[7\]: is not a readable PEM public key/),
        expect.stringMatching(/^auth\.jwksUrl: must be an http\(s\) URL/),
        expect.stringMatching(/^auth\.algorithms\[1\]: "none" \(unsigned tokens\) can never be accepted/),
        expect.stringMatching(/^auth\.clockTolerance: must be a duration from 0 to 1h/),
        expect.stringMatching(/^auth\.maxTokenLength: must be a size from 256b to 1mb/),
        expect.stringMatching(/^auth\.hooks\.url: must not hold a user name or password/),
        expect.stringMatching(/^auth\.hooks\.apiKey: is too short/),
        expect.stringMatching(/^auth\.hooks\.timeout: must be a duration from 1ms to 5m/),
      ]),
    );
    expect(text).not.toContain('short-secret');
    expect(text).not.toContain('pass@');
    expect(text).not.toContain('PRIVATE KEY');
    expect(issues({ auth: { algorithms: [] } })).toEqual([
      expect.stringMatching(/^auth\.algorithms: must name at least one algorithm/),
    ]);
    expect(issues({ auth: { algorithms: 'HS257' } })).toEqual([
      expect.stringMatching(/^auth\.algorithms\[0\]: must be one of HS256/),
    ]);
  });

  it('hooks switched on need a URL; a namespace hook must be subscribe or publish', () => {
    expect(
      issues({
        auth: { hooks: { connect: true, rpc: true } },
        namespaces: { default: { hooks: ['subscribe'] }, game: { hooks: ['publish'] }, chat: {} },
      }),
    ).toEqual([
      'auth.hooks.connect: needs auth.hooks.url (the backend to ask)',
      'auth.hooks.rpc: needs auth.hooks.url (the backend to ask)',
      'namespaces.default.hooks: needs auth.hooks.url (the backend to ask)',
      'namespaces.game.hooks: needs auth.hooks.url (the backend to ask)',
    ]);
    expect(issues({ auth: { hooks: { url: 'http://b/x' } }, namespaces: { game: { hooks: ['connect'] } } })).toEqual([
      expect.stringMatching(/^namespaces\.game\.hooks\[0\]: must be one of subscribe, publish/),
    ]);
  });
});

describe('createAuth', () => {
  it('builds a verifier, authenticator, access rules and hooks from the configuration', async () => {
    const { config } = resolveConfig({
      auth: {
        hmacSecret: SECRET,
        publicKeys: [rsaFile],
        anonymousConnect: false,
        hooks: { url: 'http://127.0.0.1:9/h' },
      },
      namespaces: { game: { hooks: ['publish'] } },
    });
    const auth = createAuth(config, { clock: new FakeClock(NOW) });
    try {
      expect(auth.verifier.algorithms).toEqual([
        'HS256',
        'HS384',
        'HS512',
        'RS256',
        'RS384',
        'RS512',
        'PS256',
        'PS384',
        'PS512',
      ]);
      const id = await auth.authenticator.authenticate(
        await sign({ sub: '7', exp: NOW_S + 60 }, rsa.privateKey, 'RS256'),
      );
      expect(id).toMatchObject({ userId: '7', anonymous: false, expiresAt: (NOW_S + 60) * 1000 });
      await rejectsWith(auth.authenticator.authenticate(undefined), 'HERALD_ERR_AUTH_TOKEN_REQUIRED');
      expect(auth.hooks).toBeDefined();
      expect(auth.hookEnabled('publish', 'game')).toBe(true);
      expect(auth.hookEnabled('subscribe', 'game')).toBe(false);
      expect(auth.hookEnabled('publish', 'chat')).toBe(false);
      expect(auth.hookEnabled('connect')).toBe(false);
    } finally {
      await auth.close();
    }
    const none = createAuth(resolveConfig({}).config);
    expect(none.hooks).toBeUndefined();
    expect(none.hookEnabled('rpc')).toBe(false);
    expect(none.verifier.configured).toBe(false);
    await none.close();
  });
});
