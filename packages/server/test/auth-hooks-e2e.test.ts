/**
 * Backend hooks wired into connections: connect (deny by user), subscribe (per namespace), publish
 * (the backend rewrites the data) and rpc (the answer comes back to the client), over a real
 * backend on an ephemeral port.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, WsClient, type TestServer } from '@herald/test-support/server';

const SECRET = 'test-hmac-secret-0123456789abcdef-0123456789';
const token = (sub: string): Promise<string> =>
  new SignJWT({})
    .setSubject(sub)
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));

let backend: Server;
let srv: TestServer;
const calls: { event: string; body: Record<string, unknown> }[] = [];

beforeAll(async () => {
  backend = createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(raw) as Record<string, unknown>;
      const event = (req.url ?? '').slice(1);
      calls.push({ event, body });
      let answer: unknown = { allow: true };
      if (event === 'connect' && body['user'] === 'banned') answer = { allow: false, reason: 'banned' };
      if (event === 'subscribe' && body['channel'] === 'game.closed') answer = { allow: false, reason: 'closed' };
      if (event === 'publish')
        answer = { allow: true, data: { move: (body['data'] as { move: string }).move, checkedBy: 'backend' } };
      if (event === 'rpc')
        answer = { allow: true, data: { echo: body['data'], method: body['method'], user: body['user'] } };
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const port = (backend.address() as AddressInfo).port;
  srv = await startServer({
    auth: { hmacSecret: SECRET, hooks: { url: `http://127.0.0.1:${port}`, connect: true, rpc: true } },
    namespaces: { game: { clientPublish: true, hooks: ['subscribe', 'publish'] } },
  });
});
afterAll(async () => {
  await srv.close();
  await new Promise((r) => backend.close(r));
});

describe('backend hooks', () => {
  it('asks the backend on connect and refuses a denied user', async () => {
    const status = await new Promise<number>((resolve) => {
      void token('banned').then((t) => {
        const ws = new WebSocket(`${srv.wsUrl}?token=${t}`);
        ws.on('error', () => undefined);
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
      });
    });
    expect(status).toBe(403);
    const c = await WsClient.connect(`${srv.wsUrl}?token=${await token('alice')}`);
    expect(
      calls.some((x) => x.event === 'connect' && x.body['user'] === 'alice' && x.body['client'] === c.clientId),
    ).toBe(true);
    await c.close();
  });

  it('asks on subscribe and publish in hooked namespaces, and publishes the data the backend returns', async () => {
    const c = await WsClient.connect(`${srv.wsUrl}?token=${await token('bob')}`);
    expect((await c.request({ cmd: 'subscribe', channel: 'game.closed' }))['error'].code).toBe(
      'HERALD_ERR_HOOK_DENIED',
    );
    expect((await c.request({ cmd: 'subscribe', channel: 'game.t1' }))['result']).toBeDefined();
    await c.request({ cmd: 'publish', channel: 'game.t1', data: { move: 'e4', cheat: true } });
    const pub = await c.waitFor((f) => f['push'] === 'pub', 'publication');
    expect(pub['data']).toEqual({ move: 'e4', checkedBy: 'backend' });
    expect(
      calls.some((x) => x.event === 'publish' && x.body['user'] === 'bob' && x.body['channel'] === 'game.t1'),
    ).toBe(true);
    await c.close();
  });

  it('forwards rpc calls with the user and returns the answer', async () => {
    const c = await WsClient.connect(`${srv.wsUrl}?token=${await token('carol')}`);
    const r = await c.request({ cmd: 'rpc', method: 'board', data: { id: 3 } });
    expect(r['result']).toEqual({ data: { echo: { id: 3 }, method: 'board', user: 'carol' } });
    await c.close();
  });
});
