/**
 * `close()` frees everything: a Node process that connects, subscribes, receives, and closes must
 * then exit on its own (no timer, socket or request left), whatever the transport and whatever the
 * client was doing (connected, connecting to a server that never answers, waiting to reconnect,
 * upgrading). The client runs from an esbuild bundle of the sources in a child process.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startServer, type TestServer } from '@herald/test-support/server';

// Inside node_modules so that the child resolves `ws` like an installed package would.
const dir = fileURLToPath(new URL('../../../node_modules/.cache/herald-client-close-test/', import.meta.url));

const CHILD = `
import { Herald } from './client.mjs';
const [url, mode, transport] = process.argv.slice(2);
setTimeout(() => {
  console.error('still running 4 s after close():', JSON.stringify(process.getActiveResourcesInfo()));
  process.exit(3);
}, 4000).unref();
// 'waiting': long-poll is the last transport tried; once its request has failed, the client schedules
// the reconnect in the promise jobs of that turn, which all run before a setImmediate callback.
let pollFailed;
const failed = new Promise((resolve) => (pollFailed = resolve));
const watched = (input, init) => {
  const p = fetch(input, init);
  if (String(input).includes('/poll')) p.catch(() => setImmediate(pollFailed));
  return p;
};
const h = new Herald(url, { transports: transport === 'default' ? undefined : [transport], upgrade: mode === 'upgrade', connectTimeout: 3000, minReconnectDelay: 10_000, ...(mode === 'waiting' ? { fetch: watched } : {}) });
const sub = h.subscribe('hd.' + mode);
if (mode === 'connected' || mode === 'upgrade') {
  const got = new Promise((resolve) => sub.on('publication', resolve));
  await sub.ready();
  console.log('subscribed ' + h.transport);
  await got;
  await h.ping();
  if (mode === 'upgrade' && h.transport !== 'websocket') await new Promise((resolve) => h.on('connected', resolve));
} else if (mode === 'waiting') {
  await failed;
} else {
  // 'hanging': the parent ends stdin once the server has the request (which it never answers).
  await new Promise((resolve) => process.stdin.once('end', resolve).resume());
}
const pending = h.ping({ timeout: 60_000 }).catch((e) => e.code);
h.close();
console.log('closed ' + (await pending));
`;

/** Runs the child; its stdin ends when `go` resolves (at once without one). */
function runChild(
  args: string[],
  go: Promise<void> = Promise.resolve(),
): Promise<{ code: number | null; out: string; err: string; ms: number }> {
  return new Promise((resolve) => {
    const start = Date.now();
    const child = spawn(process.execPath, [dir + 'child.mjs', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    void go.then(() => child.stdin.end());
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, out, err, ms: Date.now() - start });
    });
  });
}

/**
 * A TCP server that accepts connections and never answers (an upgrade or a request just hangs);
 * `requested` resolves once a request has come.
 */
async function silentServer(): Promise<{ url: string; requested: Promise<void>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let requested: () => void = () => undefined;
  const got = new Promise<void>((r) => (requested = r));
  const server = createServer((c) => {
    sockets.add(c);
    c.once('data', () => requested());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    requested: got,
    close: () => {
      for (const c of sockets) c.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

let srv: TestServer;
let publishing: ReturnType<typeof setInterval>;
beforeAll(async () => {
  srv = await startServer({ http: { heartbeatInterval: 500 } });
  mkdirSync(dir, { recursive: true });
  await build({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['herald-source'],
    external: ['ws', '@msgpack/msgpack'],
    outfile: dir + 'client.mjs',
    logLevel: 'silent',
  });
  writeFileSync(dir + 'child.mjs', CHILD);
  // Something to receive, whenever a child is subscribed.
  publishing = setInterval(() => {
    for (const mode of ['connected', 'upgrade'])
      void api(srv.url, 'publish', { channel: `hd.${mode}`, data: 1 }).catch(() => undefined);
  }, 50);
});
afterAll(async () => {
  clearInterval(publishing);
  await srv.close();
});

describe('close() leaves nothing behind: the process exits by itself', () => {
  it.each(['websocket', 'http-stream', 'sse', 'long-poll'])(
    'after subscribing and receiving over %s',
    async (transport) => {
      const r = await runChild([srv.url, 'connected', transport]);
      expect(r.err).toBe('');
      expect(r.out).toBe(`subscribed ${transport}\nclosed HERALD_ERR_CLIENT_CLOSED\n`);
      expect(r.code).toBe(0);
    },
  );

  it('after an upgrade from long-polling to WebSocket', async () => {
    const r = await runChild([srv.url, 'upgrade', 'default']);
    expect(r.err).toBe('');
    expect(r.out).toBe('subscribed long-poll\nclosed HERALD_ERR_CLIENT_CLOSED\n');
    expect(r.code).toBe(0);
  });

  it('while waiting to reconnect to a server that is down', async () => {
    const r = await runChild(['http://127.0.0.1:9', 'waiting', 'default']);
    expect(r.err).toBe('');
    expect(r.out).toBe('closed HERALD_ERR_CLIENT_CLOSED\n');
    expect(r.code).toBe(0);
  });

  it.each(['websocket', 'http-stream'])(
    'while connecting over %s to a server that never answers',
    async (transport) => {
      const silent = await silentServer();
      try {
        const r = await runChild([silent.url, 'hanging', transport], silent.requested);
        expect(r.err).toBe('');
        expect(r.out).toBe('closed HERALD_ERR_CLIENT_CLOSED\n');
        expect(r.code).toBe(0);
      } finally {
        await silent.close();
      }
    },
  );
});
