/**
 * Presence through the SDK, on every transport: `sub.presence()` / `herald.presence()` list who is
 * subscribed (client id, user, the token's `info`), `presenceStats()` counts them, and `join` /
 * `leave` events reach the other subscribers of the channel. A namespace with presence off answers
 * HERALD_ERR_PRESENCE_DISABLED.
 */
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Herald, HeraldError, type TransportName } from '@herald/client';
import { startServer, type TestServer } from '@herald/test-support/server';
import { untilValue } from '@herald/test-support';
import { next } from './support/helpers.js';

const SECRET = 'presence-sdk-hmac-secret-0123456789';
const token = (sub: string, info: unknown): Promise<string> =>
  new SignJWT({ sub, info, exp: Math.floor(Date.now() / 1000) + 600 })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(SECRET));

let srv: TestServer;
const clients: Herald[] = [];
beforeAll(async () => {
  srv = await startServer({
    auth: { hmacSecret: SECRET },
    namespaces: { room: { presence: true, joinLeave: true }, plain: {} },
  });
});
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
afterAll(() => srv?.close());

async function client(transport: TransportName, sub: string, info: unknown): Promise<Herald> {
  const h = new Herald(srv.url, { transports: [transport], token: await token(sub, info), pollTimeout: 2000 });
  clients.push(h);
  return h;
}

describe.each(['websocket', 'http-stream', 'sse', 'long-poll'] as const)('presence over %s', (transport) => {
  it('lists, counts, and tells of joins and leaves', async () => {
    const channel = `room.${transport}`;
    const ann = await client(transport, 'ann', { name: 'Ann' });
    const bob = await client('websocket', 'bob', { name: 'Bob' });
    const a = ann.subscribe(channel);
    await a.ready();
    const joined = next(a, 'join');
    const b = bob.subscribe(channel);
    await b.ready();
    expect(await joined).toMatchObject({ user: 'bob', info: { name: 'Bob' }, client: bob.client });

    const list = await a.presence();
    expect(list.channel).toBe(channel);
    expect(list.presence.map((p) => p.user).sort()).toEqual(['ann', 'bob']);
    expect(list.presence.find((p) => p.user === 'ann')).toMatchObject({ client: ann.client, info: { name: 'Ann' } });
    expect(await ann.presenceStats(channel)).toEqual({ channel, clients: 2, users: 2 });

    const left = next(a, 'leave');
    b.unsubscribe();
    expect(await left).toMatchObject({ user: 'bob', client: bob.client });
    const after = await untilValue(async () => {
      const s = await a.presenceStats();
      return s.clients === 1 ? s : undefined;
    }, 'bob gone from the stats');
    expect(after).toEqual({ channel, clients: 1, users: 1 });
  });
});

it('refuses presence where the namespace has it off: HERALD_ERR_PRESENCE_DISABLED', async () => {
  const h = await client('websocket', 'cy', { name: 'Cy' });
  const err = await h.presence('plain.x').catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HeraldError);
  expect((err as HeraldError).code).toBe('HERALD_ERR_PRESENCE_DISABLED');
});
