/**
 * Graceful shutdown of the real `herald serve` process: on SIGTERM every client is told to
 * reconnect (disconnect push 3001 with a retryAfterMs hint, then close code 3001) before the
 * process exits with 0.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { withTimeout } from '@herald/test-support';
import { WsClient } from '@herald/test-support/server';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

function startCli(env: Record<string, string>) {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does)`);
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1'], {
    env: { ...process.env, HERALD_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const port = withTimeout(
    new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /ws:\/\/[^:]+:(\d+)\/ws/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', (code) => reject(new Error(`herald exited early (${code}): ${err}`)));
    }),
    15_000,
    'herald serve to print its port',
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, port, exited, output: () => out, errors: () => err };
}

describe('herald serve', () => {
  it('prints the URLs, a generated API key and copy-paste examples', async () => {
    const p = startCli({});
    await p.port;
    const out = p.output();
    expect(out).toMatch(/API key: +[A-Za-z0-9_-]{20,}/);
    expect(out).toContain('curl -s -X POST http://');
    expect(out).toContain('herald subscribe');
    p.child.kill('SIGTERM');
    expect(await withTimeout(p.exited, 15_000, 'exit')).toBe(0);
  });

  it('tells clients to reconnect on SIGTERM, then exits 0', async () => {
    const p = startCli({ HERALD_API_KEYS: 'shutdown-test-key-0123456789', HERALD_SHUTDOWN_RECONNECT_JITTER: '2s' });
    const port = await p.port;
    const clients = await Promise.all([1, 2, 3].map(() => WsClient.connect(`ws://127.0.0.1:${port}/ws`)));
    for (const c of clients) await c.request({ cmd: 'subscribe', channel: 'chat.x' });
    p.child.kill('SIGTERM');
    for (const c of clients) {
      const d = await c.waitFor((f) => f['push'] === 'disconnect', 'disconnect push', 10_000);
      expect(d).toMatchObject({ code: 3001, reconnect: true });
      expect(d['retryAfterMs']).toBeGreaterThanOrEqual(0);
      expect(d['retryAfterMs']).toBeLessThanOrEqual(2000);
      expect((await withTimeout(c.closed, 10_000, 'close')).code).toBe(3001);
    }
    expect(await withTimeout(p.exited, 15_000, 'process exit')).toBe(0);
  });

  it('refuses an invalid configuration with a clear message and a non-zero exit', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', '--port', 'abc'], {
      env: { ...process.env, HERALD_LIMITS_MAX_CONNECTIONS: '-5' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await withTimeout(new Promise<number | null>((r) => child.on('exit', r)), 15_000, 'exit');
    expect(code).not.toBe(0);
    expect(err).toMatch(/port/);
    expect(err).toMatch(/limits\.maxConnections/);
  });
});
