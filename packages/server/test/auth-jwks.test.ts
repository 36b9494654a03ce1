/**
 * The JWKS URL, against real HTTP servers on ephemeral ports that count the requests they get: the
 * key set is fetched once and cached, fetched again for an unknown kid at most once per cooldown,
 * and a token's own `jku` / `x5u` / `jwk` headers never cause a request.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TokenVerifier, type TokenVerifierOptions } from '../src/auth/token-verifier.js';
import { FakeClock } from './support/fake-clock.js';
import { NOW, NOW_S, keyPair, rejectsWith, sign, type TestKeyPair } from './support/tokens.js';

interface CountingServer {
  url: string;
  requests: string[];
  respond: (req: IncomingMessage, res: ServerResponse) => void;
  close(): Promise<void>;
}

const servers: Server[] = [];

async function countingServer(respond: CountingServer['respond']): Promise<CountingServer> {
  const requests: string[] = [];
  const state: CountingServer = {
    url: '',
    requests,
    respond,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    state.respond(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

function jwk(pair: TestKeyPair, kid: string, alg: string): Record<string, unknown> {
  return { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function serveKeys(keys: () => Record<string, unknown>[]): CountingServer['respond'] {
  return (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ keys: keys() }));
  };
}

const a = keyPair('rsa');
const b = keyPair('ec-256');
const attacker = keyPair('rsa');
const claims = { sub: '42', exp: NOW_S + 3600 };

function verifier(jwksUrl: string, opts: Partial<TokenVerifierOptions> = {}): TokenVerifier {
  return new TokenVerifier({ jwksUrl, clock: new FakeClock(NOW), ...opts });
}

describe('JWKS URL', () => {
  it('fetches the key set once, even for many tokens verified at the same time, then uses the cache', async () => {
    const jwks = await countingServer(serveKeys(() => [jwk(a, 'a', 'RS256')]));
    const v = verifier(`${jwks.url}/.well-known/jwks.json`);
    const token = await sign(claims, a.privateKey, 'RS256', { kid: 'a' });
    const first = await Promise.all(Array.from({ length: 20 }, () => v.verifyConnectionToken(token)));
    expect(first.every((id) => id.userId === '42')).toBe(true);
    for (let i = 0; i < 50; i++) await v.verifyConnectionToken(token);
    expect(jwks.requests).toEqual(['GET /.well-known/jwks.json']);
  });

  it('a new kid (key rotation) is fetched again once the cooldown has passed', async () => {
    let keys = [jwk(a, 'a', 'RS256')];
    const jwks = await countingServer(serveKeys(() => keys));
    const v = verifier(jwks.url, { jwksCooldown: 0 });
    await v.verifyConnectionToken(await sign(claims, a.privateKey, 'RS256', { kid: 'a' }));
    expect(jwks.requests).toHaveLength(1);
    keys = [jwk(a, 'a', 'RS256'), jwk(b, 'b', 'ES256')];
    const rotated = await sign(claims, b.privateKey, 'ES256', { kid: 'b' });
    expect((await v.verifyConnectionToken(rotated)).userId).toBe('42');
    expect(jwks.requests).toHaveLength(2);
    // Now cached: no request for the known kid.
    await v.verifyConnectionToken(rotated);
    expect(jwks.requests).toHaveLength(2);
  });

  it('unknown kids do not make Herald hammer the JWKS URL: at most one fetch per cooldown', async () => {
    const jwks = await countingServer(serveKeys(() => [jwk(a, 'a', 'RS256')]));
    const v = verifier(jwks.url, { jwksCooldown: 60_000 });
    await v.verifyConnectionToken(await sign(claims, a.privateKey, 'RS256', { kid: 'a' }));
    const storm = await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const token = await sign(claims, attacker.privateKey, 'RS256', { kid: `unknown-${i}` });
        return v.verifyConnectionToken(token).then(
          () => 'accepted',
          (e: { code?: string }) => e.code,
        );
      }),
    );
    expect(new Set(storm)).toEqual(new Set(['HERALD_ERR_AUTH_TOKEN_INVALID']));
    expect(jwks.requests).toHaveLength(1);
  });

  it('a token whose jku / x5u point to a server Herald does not know: that server gets no request', async () => {
    const evil = await countingServer(serveKeys(() => [jwk(attacker, 'evil', 'RS256')]));
    const legit = await countingServer(serveKeys(() => [jwk(a, 'a', 'RS256')]));
    const header = {
      kid: 'evil',
      jku: `${evil.url}/jwks.json`,
      x5u: `${evil.url}/cert.pem`,
      jwk: jwk(attacker, 'evil', 'RS256'),
    };
    const token = await sign(claims, attacker.privateKey, 'RS256', header);
    // With static keys only.
    const staticKeys = new TokenVerifier({ publicKeys: [{ pem: a.publicPem }], clock: new FakeClock(NOW) });
    await rejectsWith(staticKeys.verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_INVALID');
    // With the operator's JWKS URL: only that URL is asked.
    const withJwks = verifier(legit.url, { jwksCooldown: 0 });
    await rejectsWith(withJwks.verifyConnectionToken(token), 'HERALD_ERR_AUTH_TOKEN_INVALID');
    // The same key pair signing with jku to the legit server's address changes nothing either.
    expect(evil.requests).toEqual([]);
    expect(legit.requests.length).toBeGreaterThan(0);
    expect(legit.requests.every((r) => r === 'GET /')).toBe(true);
  });

  it('redirects are not followed', async () => {
    const evil = await countingServer(serveKeys(() => [jwk(attacker, 'evil', 'RS256')]));
    const jwks = await countingServer((_req, res) => {
      res.writeHead(302, { Location: `${evil.url}/jwks.json` });
      res.end();
    });
    const v = verifier(jwks.url);
    await rejectsWith(
      v.verifyConnectionToken(await sign(claims, attacker.privateKey, 'RS256', { kid: 'evil' })),
      'HERALD_ERR_AUTH_KEYS_UNAVAILABLE',
    );
    expect(evil.requests).toEqual([]);
  });

  it('a JWKS URL that fails or serves garbage: KEYS_UNAVAILABLE (retryable), never accepted; it works again once fixed', async () => {
    let mode: 'error' | 'garbage' | 'ok' = 'error';
    const jwks = await countingServer((req, res) => {
      if (mode === 'error') {
        res.writeHead(500);
        res.end('oops');
      } else if (mode === 'garbage') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"keys": "nope"');
      } else serveKeys(() => [jwk(a, 'a', 'RS256')])(req, res);
    });
    const v = verifier(jwks.url, { jwksCooldown: 0 });
    const token = await sign(claims, a.privateKey, 'RS256', { kid: 'a' });
    await rejectsWith(v.verifyConnectionToken(token), 'HERALD_ERR_AUTH_KEYS_UNAVAILABLE');
    mode = 'garbage';
    await rejectsWith(v.verifyConnectionToken(token), 'HERALD_ERR_AUTH_KEYS_UNAVAILABLE');
    mode = 'ok';
    expect((await v.verifyConnectionToken(token)).userId).toBe('42');

    const closed = await countingServer(serveKeys(() => []));
    const url = closed.url;
    await closed.close();
    await rejectsWith(verifier(url).verifyConnectionToken(token), 'HERALD_ERR_AUTH_KEYS_UNAVAILABLE');
  });

  it('HS* tokens are never checked against the JWKS (which holds public keys)', async () => {
    const jwks = await countingServer(serveKeys(() => [jwk(a, 'a', 'RS256')]));
    const v = verifier(jwks.url);
    await rejectsWith(
      v.verifyConnectionToken(await sign(claims, 'x'.repeat(40), 'HS256')),
      'HERALD_ERR_AUTH_TOKEN_ALGORITHM',
    );
    expect(jwks.requests).toEqual([]);
  });
});
