/**
 * Tokens minted by `mintToken`, checked by what checks them in production: a real server
 * (WebSocket connect and subscribe, permissions, presence info, subscription tokens, expiry) and the
 * server's own `TokenVerifier` (claims, issuer and audience, asymmetric keys). Claims the server
 * would refuse fail at minting, with the server's code.
 */
import { generateKeyPairSync } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, refusedUpgrade, startServer, WsClient, type TestServer } from '@herald/test-support/server';
import { TokenVerifier } from '@herald/server';
import { HeraldApi, HeraldApiError, mintToken, type TokenClaims } from '@herald/api';

const SECRET = 'api-test-hmac-secret-0123456789abcdef-0123';

let ts: TestServer;
let herald: HeraldApi;
beforeAll(async () => {
  ts = await startServer({
    auth: { hmacSecret: SECRET, anonymousConnect: false },
    namespaces: {
      members: { anonymousSubscribe: false, presence: true },
      user: { anonymousSubscribe: false },
      secret: { anonymousSubscribe: false, requireSubscriptionToken: true },
    },
  });
  herald = new HeraldApi({ url: ts.url, apiKey: API_KEY });
});
afterAll(async () => {
  await herald.close();
  await ts.close();
});

describe('tokens a real server accepts', () => {
  it('a connection token: connect, subscribe and publish as granted ($sub included), info in presence', async () => {
    const token = await mintToken(
      {
        sub: '42',
        channels: { subscribe: ['members.**', 'user.$sub.**'], publish: ['members.room1'] },
        info: { name: 'Ann' },
        ttl: '10m',
      },
      SECRET,
    );
    const ws = await WsClient.connect(`${ts.wsUrl}?token=${token}`);
    expect((await ws.request({ cmd: 'subscribe', channel: 'members.room1' }))['result']).toBeDefined();
    expect((await ws.request({ cmd: 'subscribe', channel: 'user.42.**' }))['result']).toBeDefined();
    expect((await ws.request({ cmd: 'subscribe', channel: 'user.43.**' }))['error']?.code).toBe(
      'HERALD_ERR_PERMISSION_DENIED',
    );
    expect((await ws.request({ cmd: 'publish', channel: 'members.room1', data: 'hi' }))['result']).toMatchObject({
      offset: 1,
    });
    expect((await ws.request({ cmd: 'publish', channel: 'members.room2', data: 'hi' }))['error']?.code).toBe(
      'HERALD_ERR_PERMISSION_DENIED',
    );
    const p = await herald.presence('members.room1');
    expect(p.presence).toEqual([{ client: ws.clientId, user: '42', info: { name: 'Ann' } }]);
    await herald.publish('user.42.inbox', 'for 42');
    await ws.waitFor((f) => f['push'] === 'pub' && f['data'] === 'for 42', 'the user channel publication');
    await ws.close();
  });

  it('a subscription token for one channel of a private namespace', async () => {
    const conn = await mintToken({ sub: '7' }, SECRET);
    const ws = await WsClient.connect(`${ts.wsUrl}?token=${conn}`);
    expect((await ws.request({ cmd: 'subscribe', channel: 'secret.room' }))['error']?.code).toBe(
      'HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED',
    );
    const other = await mintToken({ sub: '7', channel: 'secret.other', ttl: 300 }, SECRET);
    expect((await ws.request({ cmd: 'subscribe', channel: 'secret.room', token: other }))['error']?.code).toBe(
      'HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH',
    );
    const sub = await mintToken({ sub: '7', channel: 'secret.room', ttl: '5m' }, SECRET);
    expect((await ws.request({ cmd: 'subscribe', channel: 'secret.room', token: sub }))['result']).toBeDefined();
    // A subscription token is not a connection token.
    const refused = await refusedUpgrade(`${ts.wsUrl}?token=${sub}`);
    expect([refused.status, refused.body['error']?.code]).toEqual([401, 'HERALD_ERR_AUTH_TOKEN_CLAIMS']);
    await ws.close();
  });

  it('an expired token is refused (401 HERALD_ERR_AUTH_TOKEN_EXPIRED); one signed with another secret too', async () => {
    const expired = await mintToken({ sub: '42', ttl: '1h' }, SECRET, { now: Date.now() - 2 * 3600_000 });
    const r = await refusedUpgrade(`${ts.wsUrl}?token=${expired}`);
    expect([r.status, r.body['error']?.code]).toEqual([401, 'HERALD_ERR_AUTH_TOKEN_EXPIRED']);
    const forged = await mintToken({ sub: '42' }, 'another-secret-0123456789abcdef-0123456789');
    const f = await refusedUpgrade(`${ts.wsUrl}?token=${forged}`);
    expect([f.status, f.body['error']?.code]).toEqual([401, 'HERALD_ERR_AUTH_TOKEN_INVALID']);
  });
});

describe('the claims, as the server reads them', () => {
  it('sub, iat, exp (ttl in seconds or as a duration), info, channels; HS256 by default', async () => {
    const now = Date.UTC(2030, 0, 1);
    const token = await mintToken({ sub: '42', ttl: '2h', info: { n: 1 }, channels: { history: ['a.**'] } }, SECRET, {
      now: new Date(now),
    });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(decodeJwt(token)).toEqual({
      sub: '42',
      iat: now / 1000,
      exp: now / 1000 + 7200,
      info: { n: 1 },
      channels: { history: ['a.**'] },
    });
    const seconds = decodeJwt(await mintToken({ sub: '1', ttl: 90 }, SECRET, { now }));
    expect((seconds.exp ?? 0) - (seconds.iat ?? 0)).toBe(90);
    const byDefault = decodeJwt(await mintToken({ sub: '1' }, SECRET));
    expect((byDefault.exp ?? 0) - (byDefault.iat ?? 0)).toBe(3600);
  });

  it("verifies with the server's TokenVerifier: permissions, issuer and audience", async () => {
    const verifier = new TokenVerifier({ hmacSecret: SECRET, issuer: 'my-app', audience: 'herald' });
    const token = await mintToken(
      { sub: 'u1', channels: { subscribe: ['chat.$sub.**'] }, issuer: 'my-app', audience: ['herald', 'other'] },
      SECRET,
    );
    const id = await verifier.verifyConnectionToken(token);
    expect(id.userId).toBe('u1');
    expect(id.permissions.toJSON().subscribe).toEqual(['chat.u1.**']);
    expect(id.expiresAt).toBeGreaterThan(Date.now());
    const noIssuer = await mintToken({ sub: 'u1', audience: 'herald' }, SECRET);
    await expect(verifier.verifyConnectionToken(noIssuer)).rejects.toMatchObject({
      code: 'HERALD_ERR_AUTH_TOKEN_CLAIMS',
    });
  });

  it('signs with a private key (RS256, ES256, EdDSA from the key type), with a kid', async () => {
    for (const [type, alg] of [
      ['rsa', 'RS256'],
      ['ec', 'ES256'],
      ['ed25519', 'EdDSA'],
    ] as const) {
      const pair =
        type === 'rsa'
          ? generateKeyPairSync('rsa', { modulusLength: 2048 })
          : type === 'ec'
            ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
            : generateKeyPairSync('ed25519');
      const pem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const verifier = new TokenVerifier({ publicKeys: [{ kid: 'k1', pem }] });
      const token = await mintToken({ sub: 'u', channels: { subscribe: ['a.b'] } }, pair.privateKey, { kid: 'k1' });
      expect(decodeProtectedHeader(token)).toMatchObject({ alg, kid: 'k1' });
      expect((await verifier.verifyConnectionToken(token)).userId).toBe('u');
    }
  });
});

describe('claims the server would refuse fail at minting', () => {
  const cases: Array<[string, TokenClaims, string]> = [
    ['empty sub', { sub: '' }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['numeric sub', { sub: 42 as unknown as string }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['long sub', { sub: 'x'.repeat(256) }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['unknown grant', { sub: '1', channels: { subscibe: ['a'] } as never }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['bad pattern', { sub: '1', channels: { subscribe: ['a.*'] } }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['bare **', { sub: '1', channels: { subscribe: ['**'] } }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['$sub with a dot', { sub: 'a.b', channels: { subscribe: ['u.$sub'] } }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['grants in a subscription token', { sub: '1', channel: 'a.b', channels: {} }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['bad channel', { sub: '1', channel: 'a..b' }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['zero ttl', { sub: '1', ttl: 0 }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['bad ttl', { sub: '1', ttl: '1 week' }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
    ['info not JSON', { sub: '1', info: () => 1 }, 'HERALD_ERR_AUTH_TOKEN_CLAIMS'],
  ];
  for (const [what, claims, code] of cases) {
    it(what, async () => {
      const err = await mintToken(claims, SECRET).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HeraldApiError);
      expect(err).toMatchObject({ code, retriable: false });
    });
  }

  it('an empty sub is fine in a subscription token (for an anonymous connection)', async () => {
    expect(decodeJwt(await mintToken({ sub: '', channel: 'a.b' }, SECRET))).toMatchObject({ sub: '', channel: 'a.b' });
  });

  it('a secret shorter than 32 bytes, or an algorithm it cannot sign', async () => {
    await expect(mintToken({ sub: '1' }, 'short')).rejects.toMatchObject({ code: 'HERALD_ERR_AUTH_TOKEN_ALGORITHM' });
    await expect(mintToken({ sub: '1' }, SECRET, { alg: 'RS256' })).rejects.toMatchObject({
      code: 'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
    });
  });
});
