/**
 * The default path of `publish`: `GET /api/ws`, with the errors of HTTP, HTTP for good behind a proxy
 * that refuses upgrades, and no handle left that keeps an idle process alive. The client runs from
 * an esbuild bundle of the sources in a child process for the last.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import http, { type Server } from 'node:http';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, startServer, type TestServer } from '@herald/test-support/server';
import { HeraldApi, HeraldApiError } from '@herald/api';
import { countConnections, type ConnectionCounter } from './support/servers.js';

// Inside node_modules so that the child resolves undici, jose and ws like an installed package would.
const dir = fileURLToPath(new URL('../../../node_modules/.cache/herald-api-default-test/', import.meta.url));

const CHILD = `
import { HeraldApi } from './api.mjs';
const [url, apiKey, mode] = process.argv.slice(2);
setTimeout(() => {
  console.error('still running 4 s after the last call:', JSON.stringify(process.getActiveResourcesInfo()));
  process.exit(3);
}, 4000).unref();
const c = new HeraldApi({ url, apiKey, timeout: 300, retries: 0 });
if (mode === 'idle' || mode === 'close') {
  const r = await Promise.all(Array.from({ length: 100 }, (_, i) => c.publish('dflt.exit', i)));
  console.log('published ' + r.length);
  if (mode === 'close') await c.close();
} else {
  // 'unanswered': the server upgrades and never answers; the publish times out.
  console.log('failed ' + (await c.publish('dflt.exit', 1).catch((e) => e.code)));
}
`;

function runChild(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [dir + 'child.mjs', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, out, err });
    });
  });
}

/**
 * An HTTP proxy in front of `target` that forwards requests but not WebSocket: `refuse` answers
 * upgrades 403 in plain text (as a proxy would), `strip` forwards them as plain GETs (no `Upgrade`).
 */
async function noUpgradeProxy(
  target: string,
  mode: 'refuse' | 'strip',
): Promise<{ url: string; upgrades: () => number; close(): Promise<void> }> {
  let upgrades = 0;
  const sockets = new Set<Socket>();
  const forward = (req: http.IncomingMessage, answer: (res: http.IncomingMessage) => void): void => {
    const headers = { ...req.headers, host: new URL(target).host };
    delete headers.upgrade;
    delete headers.connection;
    const out = http.request(`${target}${req.url ?? '/'}`, { method: req.method, headers }, answer);
    out.on('error', () => req.socket.destroy());
    req.pipe(out);
  };
  const server: Server = http.createServer((req, res) =>
    forward(req, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    }),
  );
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
    upgrades++;
    if (mode === 'refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nForbidden');
      return;
    }
    forward(req, (up) => {
      let head = `HTTP/1.1 ${up.statusCode} ${up.statusMessage}\r\n`;
      for (const [k, v] of Object.entries(up.headers)) if (k !== 'connection') head += `${k}: ${String(v)}\r\n`;
      socket.write(`${head}connection: close\r\n\r\n`);
      up.pipe(socket);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    upgrades: () => upgrades,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

let ts: TestServer;
let conns: ConnectionCounter;
beforeAll(async () => {
  ts = await startServer({ namespaces: { dflt: { historySize: 1000 } } });
  conns = countConnections(ts.server.httpServer);
  mkdirSync(dir, { recursive: true });
  await build({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'node',
    conditions: ['herald-source'],
    external: ['undici', 'jose', 'ws'],
    outfile: dir + 'api.mjs',
    logLevel: 'silent',
  });
  writeFileSync(dir + 'child.mjs', CHILD);
});
afterAll(() => ts.close());

describe('publish by default', () => {
  it('goes over one /api/ws connection, with no HTTP request', async () => {
    const c = new HeraldApi({ url: ts.url, apiKey: API_KEY });
    const accepted = conns.accepted.length;
    const requests = conns.requests;
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => c.publish('dflt.ws', i)));
      expect(new Set(results.map((r) => r.offset)).size).toBe(50);
      expect(conns.accepted.length - accepted).toBe(1);
      expect(conns.requests - requests).toBe(0);
    } finally {
      await c.close();
    }
  });

  it('rejects a wrong API key with the same error as over HTTP, not retried', async () => {
    const errors: HeraldApiError[] = [];
    for (const publishOver of ['websocket', 'http'] as const) {
      const retries: unknown[] = [];
      const c = new HeraldApi({ url: ts.url, apiKey: 'not-the-key', publishOver, onRetry: (e) => retries.push(e) });
      const err = await c.publish('dflt.x', 1).catch((e: unknown) => e);
      await c.close();
      expect(err).toBeInstanceOf(HeraldApiError);
      expect(retries).toEqual([]);
      errors.push(err as HeraldApiError);
    }
    const [ws, overHttp] = errors as [HeraldApiError, HeraldApiError];
    expect(ws).toMatchObject({ code: 'HERALD_ERR_API_UNAUTHORIZED', status: 401, retriable: false, attempts: 1 });
    const { code, status, retriable, attempts, method } = overHttp;
    expect(ws).toMatchObject({ code, status, retriable, attempts, method });
    // The server's words (the upgrade also takes the key as a Bearer token).
    for (const e of errors) expect(e.message).toMatch(/^missing or wrong API key/);
  });

  for (const mode of ['refuse', 'strip'] as const) {
    it(`behind a proxy that ${mode === 'refuse' ? 'refuses upgrades (403)' : 'drops the Upgrade header (426)'}: over HTTP, the upgrade tried once`, async () => {
      const proxy = await noUpgradeProxy(ts.url, mode);
      const c = new HeraldApi({ url: proxy.url, apiKey: API_KEY, retries: 0 });
      try {
        // Made at once, while the first upgrade is on its way: all of them go over HTTP.
        const first = await Promise.all(Array.from({ length: 20 }, (_, i) => c.publish('dflt.proxy', i)));
        const later = await c.publish('dflt.proxy', 'later', { idempotencyKey: `proxy-${mode}` });
        const again = await c.publish('dflt.proxy', 'later', { idempotencyKey: `proxy-${mode}` });
        expect(first.every((r) => !r.duplicate)).toBe(true);
        expect(again).toEqual({ ...later, duplicate: true });
        expect(proxy.upgrades()).toBe(1);
        // A wrong key behind the proxy: the server's error, over HTTP.
        const wrong = new HeraldApi({ url: proxy.url, apiKey: 'not-the-key' });
        const err = await wrong.publish('dflt.proxy', 1).catch((e: unknown) => e);
        await wrong.close();
        expect(err).toMatchObject({ code: 'HERALD_ERR_API_UNAUTHORIZED', status: 401 });
      } finally {
        await c.close();
        await proxy.close();
      }
    });
  }
});

describe('the process exits by itself', () => {
  it('with an idle client that was never closed', async () => {
    const r = await runChild([ts.url, API_KEY, 'idle']);
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe('published 100');
    expect(r.code).toBe(0);
  });

  it('after close()', async () => {
    const r = await runChild([ts.url, API_KEY, 'close']);
    expect(r.err).toBe('');
    expect(r.out.trim()).toBe('published 100');
    expect(r.code).toBe(0);
  });

  it('after a publish that timed out on an open connection', async () => {
    // Upgrades every connection, then never answers a frame.
    const sockets = new Set<Socket>();
    const silent = http.createServer();
    silent.on('upgrade', (req, socket: Socket) => {
      sockets.add(socket);
      const accept = createHash('sha1')
        .update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      socket.write(
        `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`,
      );
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const r = await runChild([
        `http://127.0.0.1:${(silent.address() as { port: number }).port}`,
        API_KEY,
        'unanswered',
      ]);
      expect(r.err).toBe('');
      expect(r.out.trim()).toBe('failed HERALD_ERR_TIMEOUT');
      expect(r.code).toBe(0);
      expect(sockets.size).toBe(1);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
