/**
 * The Python client (clients/python/herald_api.py, standard library only) against a real Herald:
 * real `python3` processes run test/support/python/herald_driver.py, and the test reads what they
 * print line by line.
 *
 * - Keep-alive: 1000 publishes, then publish_many of 1500 small and 40 large items (split into
 *   batches by count and by size), from one process over ONE TCP connection (the server counts the
 *   connections it accepts); a connection the server closed while idle is opened again without an
 *   error.
 * - Exactly once: a 503 after the publish was applied, and a node restart on the Redis engine in the
 *   middle of a run (the node dies right after applying a publish, before answering it; a new node
 *   comes up on the same port): every publication is in the history once, with no gap.
 * - Tokens minted by `mint_token` (hmac/hashlib only) are accepted for WebSocket subscribes and
 *   subscription tokens, and refused with the right HERALD_ERR_AUTH_* code when expired, not yet
 *   valid, signed with another secret or carrying a malformed grant.
 * - Errors carry Herald's codes (wrong API key, invalid channel, ...), and 4xx answers are never
 *   retried.
 *
 * Without python3 the tests are skipped with a note on the console; with CI=true they fail.
 */
import type { Server as NetServer, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Child, findProgram, needProgram } from '@herald/test-support';
import {
  api,
  API_KEY,
  refusedUpgrade,
  startServer,
  WsClient,
  type Frame,
  type TestServer,
} from '@herald/test-support/server';
import { HeraldError } from '@herald/protocol';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

const python = findProgram('python3');
const needPython = needProgram(python, 'python3', 'apt-get install -y python3');
if (needPython.mode === 'skip') {
  console.warn('[herald] Python client tests skipped: python3 is not on PATH (with CI=true they fail instead).');
}
const CLIENT_DIR = fileURLToPath(new URL('../../../clients/python/', import.meta.url));
const DRIVER = fileURLToPath(new URL('./support/python/herald_driver.py', import.meta.url));
const SECRET = 'python-client-test-secret-0123456789abcdef';

/** Counts the TCP connections a server accepts, and keeps the open ones. */
function countConnections(server: NetServer | undefined): { accepted: number; open: Set<Socket> } {
  const c = { accepted: 0, open: new Set<Socket>() };
  if (server === undefined) throw new Error('the server is not listening');
  server.on('connection', (socket: Socket) => {
    c.accepted++;
    c.open.add(socket);
    socket.once('close', () => c.open.delete(socket));
  });
  return c;
}

/** Starts the driver in `mode` against `url`. */
function driver(mode: string, url: string, ...args: string[]): Child {
  return new Child(python as string, [DRIVER, CLIENT_DIR, mode, url, API_KEY, ...args]);
}

/** Waits for the driver's `result <json>` line and its exit with status 0. */
async function resultOf(child: Child, what: string, ms = 20_000): Promise<Record<string, any>> {
  const line = await child.line((l) => l.startsWith('result '), `${what}: the result line`, ms);
  const exit = await child.finished(10_000, `${what}: python to exit`);
  if (exit.code !== 0) throw new Error(`${what}: python exited ${exit.code}\n${child.stderr}`);
  return JSON.parse(line.slice('result '.length)) as Record<string, any>;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe.skipIf(needPython.mode === 'skip')(needPython.title('Python client (clients/python/herald_api.py)'), () => {
  beforeAll(() => {
    if (needPython.mode === 'fail') throw new Error(needPython.missing);
  });

  describe('on the memory engine', () => {
    let ts: TestServer;
    let conns: ReturnType<typeof countConnections>;

    beforeAll(async () => {
      ts = await startServer({
        http: { keepAliveTimeout: 5000 },
        namespaces: { py: { historySize: 1000 }, pyb: { historySize: 1500 } },
      });
      conns = countConnections(ts.server.httpServer);
    });
    afterAll(() => ts.close());

    it('publishes 1000 times and 1540 items in batches over ONE TCP connection', async () => {
      const before = conns.accepted;
      const r = await resultOf(driver('many', ts.url, 'py.many', '1000', 'pyb.many', '1500'), 'many', 60_000);
      expect(r['connections']).toBe(1);
      expect(conns.accepted - before).toBe(1);
      expect(new Set(r['offsets']).size).toBe(1000);
      expect(r['offsets']).toEqual(range(1, 1000));
      expect(r['batchErrors']).toEqual([]);
      expect(r['batchOffsets']).toEqual(range(1, 1500));
      expect(r['bigOffsets']).toEqual(range(1, 40));
      const h = await api(ts.url, 'history', { channel: 'py.many', limit: 1000 });
      expect(h.body.publications.map((p: Frame) => p['data']['i'])).toEqual(range(0, 999));
    });

    it('opens a new connection by itself when the server closed the idle one', async () => {
      const idle = await startServer({ http: { keepAliveTimeout: 200 } });
      try {
        const c = countConnections(idle.server.httpServer);
        const r = await resultOf(driver('idle', idle.url, 'py.idle'), 'idle');
        expect(r['first']['offset']).toBe(1);
        expect(r['second']['offset']).toBe(2);
        expect(r['connections']).toBe(2);
        expect(c.accepted).toBe(2);
      } finally {
        await idle.close();
      }
    });

    it('retries a publish answered 503 after it was applied, with the same key: applied once', async () => {
      const hub = ts.server.hub;
      const original = hub.publish.bind(hub);
      let failed = false;
      hub.publish = async (...args: Parameters<typeof original>) => {
        const result = await original(...args);
        if (!failed && args[0] === 'py.retry') {
          failed = true;
          throw new HeraldError('HERALD_ERR_ENGINE_UNAVAILABLE', 'the test fails this publish after applying it');
        }
        return result;
      };
      try {
        const r = await resultOf(driver('retry5xx', ts.url, 'py.retry'), 'retry5xx');
        expect(r['retries']).toEqual([['HERALD_ERR_ENGINE_UNAVAILABLE', 503]]);
        expect(r['publish']).toMatchObject({ channel: 'py.retry', offset: 1, duplicate: true });
        expect(r['connections']).toBe(1);
        const h = await api(ts.url, 'history', { channel: 'py.retry', limit: 10 });
        expect(h.body.publications).toEqual([{ channel: 'py.retry', offset: 1, data: { once: true } }]);
      } finally {
        hub.publish = original;
      }
    });

    it('raises HeraldError with Herald codes, and never retries a 4xx', async () => {
      const r = await resultOf(driver('errors', ts.url, 'pyerr.one'), 'errors');
      expect(r['wrongKey']).toMatchObject({ code: 'HERALD_ERR_API_UNAUTHORIZED', status: 401 });
      expect(r['badChannel']).toMatchObject({ code: 'HERALD_ERR_CHANNEL_INVALID', status: 400 });
      expect(r['patternChannel']).toMatchObject({ code: 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED', status: 400 });
      expect(r['badKey']).toMatchObject({ code: 'HERALD_ERR_API_BAD_REQUEST', status: 400 });
      expect(r['badCursor']).toMatchObject({ code: 'HERALD_ERR_CURSOR_INVALID', status: 400 });
      expect(r['noTarget']).toMatchObject({ code: 'HERALD_ERR_API_BAD_REQUEST', status: 400 });
      expect(r['unknownMethod']).toMatchObject({ code: 'HERALD_ERR_API_NOT_FOUND', status: 404 });
      expect(r['retriedBeforeRefused']).toEqual([]);
      // Nothing listens on port 1: no answer, retried twice, then raised with status 0.
      expect(r['refused']).toMatchObject({ code: 'HERALD_ERR_CLIENT_DISCONNECTED', status: 0 });
      expect(r['retried']).toEqual(['HERALD_ERR_CLIENT_DISCONNECTED', 'HERALD_ERR_CLIENT_DISCONNECTED']);
      expect(r['many']).toEqual([{ offset: 1 }, { code: 'HERALD_ERR_CHANNEL_INVALID', status: 400 }, { offset: 2 }]);
      expect(r['broadcast']).toMatchObject([
        { channel: 'pyerr.one', offset: 3, duplicate: false },
        { channel: 'bad..y', error: { code: 'HERALD_ERR_CHANNEL_INVALID' } },
      ]);
      expect(r['info']['nodes'][0]).toMatchObject({ engine: 'memory' });
      expect(r['history']['publications'].map((p: Frame) => p['data'])).toEqual([1, 3, { b: 1 }]);
      expect(r['channels']).toEqual([]);
    });
  });

  describe('tokens from mint_token', () => {
    let ts: TestServer;
    let tokens: Record<string, string>;

    beforeAll(async () => {
      ts = await startServer({
        auth: { hmacSecret: SECRET, anonymousConnect: false },
        namespaces: {
          priv: { anonymousSubscribe: false },
          room: { anonymousSubscribe: false, presence: true },
          secret: { anonymousSubscribe: false, requireSubscriptionToken: true },
        },
      });
      tokens = (await resultOf(driver('tokens', ts.url, SECRET), 'tokens')) as Record<string, string>;
    });
    afterAll(() => ts.close());

    it('are HS256 JWTs with the claims Herald reads, verified by jose', async () => {
      const good = tokens['good'] as string;
      expect(decodeProtectedHeader(good)).toEqual({ alg: 'HS256', typ: 'JWT' });
      const { payload } = await jwtVerify(good, new TextEncoder().encode(SECRET), { algorithms: ['HS256'] });
      expect(payload).toMatchObject({
        sub: '42',
        info: { name: 'Ann' },
        channels: { subscribe: ['priv.$sub.**', 'room.1'], presence: ['room.**'] },
      });
      expect((payload.exp as number) - (payload.iat as number)).toBe(3600);
      expect(Math.abs((payload.iat as number) - Date.now() / 1000)).toBeLessThan(60);
      expect(decodeJwt(tokens['subscription'] as string)).toMatchObject({ sub: '42', channel: 'secret.42-57' });
      expect(decodeProtectedHeader(tokens['hs512'] as string).alg).toBe('HS512');
    });

    it('connect and subscribe over WebSocket within their grants', async () => {
      const c = await WsClient.connect(ts.wsUrl, { headers: { Authorization: `Bearer ${tokens['good']}` } });
      try {
        expect((await c.request({ cmd: 'subscribe', channel: 'priv.42.inbox' }))['result']).toBeDefined();
        expect((await c.request({ cmd: 'subscribe', channel: 'room.1' }))['result']).toBeDefined();
        const denied = await c.request({ cmd: 'subscribe', channel: 'priv.7.inbox' });
        expect(denied['error']['code']).toBe('HERALD_ERR_PERMISSION_DENIED');
        const sub = await c.request({ cmd: 'subscribe', channel: 'secret.42-57', token: tokens['subscription'] });
        expect(sub['result']).toBeDefined();
        // The token's sub and info, as presence shows them through the Python client.
        const p = await resultOf(driver('presence', ts.url, 'room.1'), 'presence');
        expect(p['presence']['presence']).toEqual([{ client: c.clientId, user: '42', info: { name: 'Ann' } }]);
        expect(p['stats']).toEqual({ channel: 'room.1', clients: 1, users: 1 });
      } finally {
        await c.close();
      }
      const hs512 = await WsClient.connect(ts.wsUrl, { headers: { Authorization: `Bearer ${tokens['hs512']}` } });
      try {
        expect((await hs512.request({ cmd: 'subscribe', channel: 'room.1' }))['result']).toBeDefined();
        const mismatch = await hs512.request({
          cmd: 'subscribe',
          channel: 'secret.42-57',
          token: tokens['otherUserSubscription'],
        });
        expect(mismatch['error']['code']).toBe('HERALD_ERR_AUTH_SUBSCRIPTION_MISMATCH');
      } finally {
        await hs512.close();
      }
    });

    it('are refused with HERALD_ERR_AUTH_* codes when they must be', async () => {
      const refusal = async (name: string): Promise<string> => {
        const r = await refusedUpgrade(ts.wsUrl, { headers: { Authorization: `Bearer ${tokens[name]}` } });
        expect(r.status, name).toBe(401);
        return r.body['error']['code'] as string;
      };
      expect(await refusal('expired')).toBe('HERALD_ERR_AUTH_TOKEN_EXPIRED');
      expect(await refusal('notYet')).toBe('HERALD_ERR_AUTH_TOKEN_NOT_YET_VALID');
      expect(await refusal('wrongSecret')).toBe('HERALD_ERR_AUTH_TOKEN_INVALID');
      expect(await refusal('badGrant')).toBe('HERALD_ERR_AUTH_TOKEN_CLAIMS');
    });
  });

  describe.skipIf(skipRedis)('a node restart on the Redis engine', () => {
    const prefix = testPrefix();
    const N = 400;
    const config = { namespaces: { pyr: { historySize: 1000 } }, shutdown: { timeout: 1000, reconnectJitter: 0 } };
    const nodes: RedisNode[] = [];

    afterAll(async () => {
      for (const n of nodes) await n.close();
      await dropPrefix(prefix);
    });

    it('applies every publication exactly once while the node dies mid-request and comes back', async () => {
      const node1 = await startRedisNode(prefix, config);
      nodes.push(node1);
      const port = node1.server.address?.port as number;
      const conns1 = countConnections(node1.server.httpServer);

      // The trap: once armed, the next publish is applied, then the node stops listening and drops
      // its connections before it answers: the Python client sees a reset, not a reply.
      let armed = false;
      let applied: { offset: number; epoch: string } | undefined;
      let closing: Promise<void> | undefined;
      const hub = node1.server.hub;
      const original = hub.publish.bind(hub);
      const trapped = new Promise<void>((resolve) => {
        hub.publish = async (...args: Parameters<typeof original>) => {
          const result = await original(...args);
          if (armed) {
            armed = false;
            applied = { offset: result.offset, epoch: result.epoch };
            closing = node1.close();
            for (const socket of conns1.open) socket.destroy();
            resolve();
          }
          return result;
        };
      });

      const child = driver('restart', node1.url, 'pyr.run', String(N));
      // Coordinated by what Python prints: arm the trap once it is well into its run.
      await child.line((l) => l === 'published 100 101 false', 'the 101st publish', 20_000);
      armed = true;
      await trapped;
      await closing;
      const node2 = await startRedisNode(prefix, { ...config, port });
      nodes.push(node2);

      const r = await resultOf(child, 'restart', 60_000);
      expect(applied).toBeDefined();
      const at = (applied as { offset: number }).offset;
      // Every publish got its own offset, 1..N, the one whose answer was lost as a duplicate.
      expect(r['offsets']).toEqual(range(1, N));
      expect(r['duplicates']).toEqual([at - 1]);
      expect(r['connections']).toBeGreaterThanOrEqual(2);
      expect(child.out.items.some((l) => l.startsWith('retry '))).toBe(true);
      // Node 2 took the rest of the run: the two nodes applied N publications between them.
      const published1 = node1.server.metrics.value('herald_publications_total');
      const info = await api(node2.url, 'info', {});
      const published2 = info.body.nodes[0].published as number;
      expect(published2).toBeGreaterThan(0);
      expect(published1 + published2).toBe(N);
      // The history (in Redis, so it survived the restart): each publication once, no gap.
      const h = await api(node2.url, 'history', { channel: 'pyr.run', limit: N });
      expect(h.body.offset).toBe(N);
      expect(h.body.publications.map((p: Frame) => p['offset'])).toEqual(range(1, N));
      expect(h.body.publications.map((p: Frame) => p['data']['i'])).toEqual(range(0, N - 1));
    });
  });
});
