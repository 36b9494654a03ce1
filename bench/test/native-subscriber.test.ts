/**
 * The native subscriber (`bench/native/subscriber.c`): its accounting against hand-made servers
 * (WebSocket, chunked SSE) that skip and repeat sequence numbers, and a run of the suite with it
 * against Herald and every WebSocket and SSE peer at a tiny N. Without a C compiler the tests skip, except under CI, where they fail.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConnectResult, DrainStats, SubProtocol, WindowStats } from '../src/gen/messages.js';
import { NativeSubscriber, nativeSubscriber } from '../src/native.js';

const built = nativeSubscriber();
const why = 'error' in built ? built.error : undefined;
if (why !== undefined && process.env.CI === 'true') throw new Error(`CI needs the native subscriber: ${why}`);
if (why !== undefined) console.warn(`skipping the native subscriber's tests: ${why}`);

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'herald-bench-native-'));
const servers: Server[] = [];
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  for (const s of servers) s.close();
});

/** A native subscriber with one client of `protocol` connected to `port`. */
async function connectOne(
  protocol: SubProtocol,
  port: number,
  path: string,
): Promise<{ sub: NativeSubscriber; connected: ConnectResult }> {
  const sub = new NativeSubscriber((built as { path: string }).path, undefined);
  const connected = await sub.request<ConnectResult>({
    type: 'connect',
    spec: { protocol, port, path },
    first: 0,
    n: 1,
    channels: 1,
    concurrency: 1,
  });
  return { sub, connected };
}

function payload(seq: number): string {
  return `{"seq":${seq},"t":"${process.hrtime.bigint()}"}`;
}

describe.skipIf(why !== undefined)('native subscriber', () => {
  it('counts deliveries, gaps and duplicates, and answers pings', async () => {
    const http: Server = createServer();
    const wss = new WebSocketServer({ server: http });
    const connected = new Promise<{ ws: WebSocket; pong: Promise<string> }>((resolve) => {
      wss.on('connection', (ws) => {
        const pong = new Promise<string>((ponged) => ws.once('pong', (data) => ponged(data.toString())));
        ws.ping('hello');
        resolve({ ws, pong });
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as { port: number }).port;
    const { sub, connected: c } = await connectOne('plain-ws', port, '/{ch}');
    try {
      expect(c).toMatchObject({ ok: 1, failed: 0, errors: [] });
      const { ws, pong } = await connected;
      expect(await pong).toBe('hello');
      await sub.request({ type: 'mark' });
      // 1, then 3 (2 is skipped), 3 again (a duplicate), then 4 split over two frames.
      ws.send(payload(1));
      ws.send(payload(3));
      ws.send(payload(3));
      const four = payload(4);
      ws.send(four.slice(0, 5), { fin: false });
      ws.send(four.slice(5), { fin: true });
      const drain = await sub.request<DrainStats>({ type: 'drain', final: [4], timeoutMs: 5_000 });
      const win = await sub.request<WindowStats>({ type: 'window' });
      expect({ lost: drain.lost, dup: drain.dup, complete: drain.complete, closed: drain.closed }).toEqual({
        lost: 1,
        dup: 1,
        complete: 1,
        closed: 0,
      });
      expect(win.deliveries).toBe(3);
      expect(win.latency.count).toBe(3);
      expect(win.latency.max).toBeGreaterThan(0);
      // A server that closes the connection: the drain reports it as ended.
      await sub.request({ type: 'mark' });
      ws.close(1001, 'going away');
      const ended = await sub.request<DrainStats>({ type: 'drain', final: [5], timeoutMs: 300 });
      expect({ lost: ended.lost, closed: ended.closed }).toEqual({ lost: 1, closed: 1 });
    } finally {
      await sub.stop({ type: 'close' });
      wss.close();
      http.close();
    }
  }, 30_000);

  it('decodes a chunked SSE stream whose lines span chunks, and sees its end', async () => {
    let res: ServerResponse | undefined;
    const opened = new Promise<ServerResponse>((resolve) => {
      const http = createServer((_req, r) => {
        r.writeHead(200, { 'Content-Type': 'text/event-stream' });
        r.flushHeaders();
        res = r;
        resolve(r);
      });
      servers.push(http);
    });
    const http = servers[servers.length - 1]!;
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as { port: number }).port;
    const { sub, connected: c } = await connectOne('plain-sse', port, '/sse?channel={ch}');
    try {
      expect(c).toMatchObject({ ok: 1, failed: 0 });
      const r = await opened;
      await sub.request({ type: 'mark' });
      // 1; then 2 split over two chunks (a line that spans them), 2 again, then 4 (3 is lost).
      r.write(`data: ${payload(1)}\n\n`);
      const two = `data: ${payload(2)}\n\n`;
      r.write(two.slice(0, 12));
      r.write(two.slice(12));
      r.write(`: a heartbeat\n\ndata: ${payload(2)}\n\ndata: ${payload(4)}\n\n`);
      const drain = await sub.request<DrainStats>({ type: 'drain', final: [4], timeoutMs: 5_000 });
      const win = await sub.request<WindowStats>({ type: 'window' });
      expect({ lost: drain.lost, dup: drain.dup, complete: drain.complete }).toEqual({ lost: 1, dup: 1, complete: 1 });
      expect(win.deliveries).toBe(3);
      await sub.request({ type: 'mark' });
      r.end(); // the terminating chunk
      const ended = await sub.request<DrainStats>({ type: 'drain', final: [5], timeoutMs: 300 });
      expect({ lost: ended.lost, closed: ended.closed }).toEqual({ lost: 1, closed: 1 });
    } finally {
      res?.destroy();
      await sub.stop({ type: 'close' });
    }
  }, 30_000);

  it('refuses what it does not speak, with a message', async () => {
    const sub = new NativeSubscriber((built as { path: string }).path, undefined);
    try {
      await expect(
        sub.request({
          type: 'connect',
          spec: { protocol: 'herald-poll', port: 1, path: '/poll' },
          first: 0,
          n: 1,
          channels: 1,
          concurrency: 1,
        }),
      ).rejects.toThrow(/does not speak herald-poll/);
    } finally {
      await sub.stop({ type: 'close' });
    }
  });

  it('reads Herald and every WebSocket and SSE peer in a run of the suite with nothing lost', async () => {
    const targets = 'herald-ws,herald-ws-msgpack,ws-naive,ws-prebuilt,socketio,faye,herald-sse,herald-stream,raw-sse';
    const args = ['s2', '--n', '8', '--rates', '50', '--targets', targets, '--retries', '0'];
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(dist, 'cli.js'), ...args, '--warmup', '0.3', '--measure', '0.5', '--generator', 'native', '--out', out],
        { timeout: 90_000 },
        (err, so, se) => resolve({ code: err === null ? 0 : 1, output: so + se }),
      );
    });
    expect(code, output).toBe(0);
    const json = readdirSync(out).find((f) => f.endsWith('.json'))!;
    const { results } = JSON.parse(readFileSync(join(out, json), 'utf8')) as {
      results: {
        spec: { subscriber?: string };
        steps: { target: string; deliveriesPerSec: number; lost: number; dup: number; closed: number }[];
      }[];
    };
    expect(results[0]!.spec.subscriber).toBe('native');
    const steps = results[0]!.steps;
    expect(steps.map((s) => s.target)).toEqual(targets.split(','));
    for (const s of steps) {
      expect(s.deliveriesPerSec, s.target).toBeGreaterThan(0);
      expect({ target: s.target, lost: s.lost, dup: s.dup, closed: s.closed }).toEqual({
        target: s.target,
        lost: 0,
        dup: 0,
        closed: 0,
      });
    }
    expect(readFileSync(join(out, json.replace(/\.json$/, '.md')), 'utf8')).toContain('native subscriber');
  }, 120_000);
});
