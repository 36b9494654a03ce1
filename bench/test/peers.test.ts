/**
 * The peers of the benchmark, checked once at a tiny N: each Node peer and its hand-rolled client in
 * the load generator agree (nothing lost or duplicated), and the Socket.IO peer also serves the
 * official `socket.io-client`, so the generator's raw Socket.IO framing is not the only witness.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { io } from 'socket.io-client';
import { freePort, withTimeout } from '@herald/test-support';
import { afterAll, describe, expect, it } from 'vitest';
import { waitPort } from '../src/launch.js';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'herald-bench-peers-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Starts the peer server `file` (in dist/peers) on a free port, once it listens. */
async function startPeer(file: string): Promise<{ port: number; peer: ChildProcess }> {
  const port = await freePort();
  const peer = spawn(process.execPath, [join(dist, 'peers', file), '--port', String(port)], { stdio: 'ignore' });
  await waitPort(port, 10_000, peer);
  return { port, peer };
}

function post(port: number, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The official Faye client (the package has no types of its own). */
const faye = createRequire(import.meta.url)('faye') as {
  Client: new (url: string) => {
    subscribe(channel: string, onMessage: (message: unknown) => void): PromiseLike<unknown>;
    disconnect(): void;
  };
};

describe('bench peers', () => {
  it('the Socket.IO peer serves the official client: subscribe with ack, then pub', async () => {
    const { port, peer } = await startPeer('socketio-server.js');
    const client = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
    try {
      await withTimeout(new Promise<void>((resolve) => client.on('connect', () => resolve())), 10_000, 'connect');
      await withTimeout(client.emitWithAck('subscribe', 'b0') as Promise<unknown>, 5_000, 'subscribe ack');
      const got = new Promise<unknown>((resolve) => client.on('pub', resolve));
      expect(await post(port, '/publish?channel=b0', '{"seq":1,"t":"1"}')).toBe(200);
      expect(await withTimeout(got, 5_000, 'pub')).toEqual({ seq: 1, t: '1' });
    } finally {
      client.close();
      peer.kill();
    }
  }, 30_000);

  it('the Faye peer serves the official client: subscribe, then a publication', async () => {
    const { port, peer } = await startPeer('faye-server.js');
    const client = new faye.Client(`http://127.0.0.1:${port}/faye`);
    try {
      let subscribed: PromiseLike<unknown> = Promise.resolve();
      const got = new Promise<unknown>((resolve) => {
        subscribed = client.subscribe('/b0/x', resolve);
      });
      await withTimeout(Promise.resolve(subscribed), 10_000, 'faye subscribe');
      expect(await post(port, '/publish?channel=b0.x', '{"seq":1,"t":"1"}')).toBe(200);
      expect(await withTimeout(got, 10_000, 'the publication')).toEqual({ seq: 1, t: '1' });
    } finally {
      client.disconnect();
      peer.kill();
    }
  }, 30_000);

  it('the generator measures every Node peer with nothing lost', async () => {
    const targets = 'ws-naive,ws-prebuilt,socketio,faye,raw-sse';
    const args = [
      's2',
      '--n',
      '8',
      '--rates',
      '50',
      '--targets',
      targets,
      '--retries',
      '0',
      '--warmup',
      '0.3',
      '--measure',
      '0.5',
    ];
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(process.execPath, [join(dist, 'cli.js'), ...args, '--out', out], { timeout: 90_000 }, (err, so, se) =>
        resolve({ code: err === null ? 0 : 1, output: so + se }),
      );
    });
    expect(code, output).toBe(0);
    const json = readdirSync(out).find((f) => f.endsWith('.json'))!;
    const { results } = JSON.parse(readFileSync(join(out, json), 'utf8')) as {
      results: { steps: { target: string; deliveriesPerSec: number; lost: number; dup: number }[] }[];
    };
    const steps = results[0]!.steps;
    expect(steps.map((s) => s.target)).toEqual(targets.split(','));
    for (const s of steps) {
      expect(s.deliveriesPerSec, s.target).toBeGreaterThan(0);
      expect({ target: s.target, lost: s.lost, dup: s.dup }).toEqual({ target: s.target, lost: 0, dup: 0 });
    }
  }, 120_000);
});
