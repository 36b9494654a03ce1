/**
 * HTTP/1.1 persistent connections with clients nobody here wrote: Python's standard
 * `http.client.HTTPConnection` (100 polls and 100 publishes on one connection; HTTP/1.0 gets
 * keep-alive only with a Content-Length) and undici's `Pool` (many polls over a bounded number of
 * connections). The server counts the TCP connections it accepts.
 */
import type { Server as NetServer, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Child, findProgram, needProgram, until } from '@herald/test-support';
import { api, API_KEY, startServer, type TestServer } from '@herald/test-support/server';

const python = findProgram('python3');
const needPython = needProgram(python, 'python3', 'apt-get install -y python3');
const SCRIPT = fileURLToPath(new URL('./fixtures/http_client.py', import.meta.url));

/** Counts the TCP connections a server accepts, and how many are open now. */
function countConnections(server: NetServer | undefined) {
  const c = { accepted: 0, open: 0 };
  server?.on('connection', (socket: Socket) => {
    c.accepted++;
    c.open++;
    socket.once('close', () => c.open--);
  });
  return c;
}

interface PollAnswer {
  cursor: string;
  publications: Array<{ offset: number; data: unknown }>;
}

describe('keep-alive with real clients', () => {
  let ts: TestServer;
  let conns: { accepted: number; open: number };

  beforeAll(async () => {
    ts = await startServer({ http: { keepAliveTimeout: 5000 } });
    conns = countConnections(ts.server.httpServer);
  });
  afterAll(() => ts.close());

  async function runPython(mode: string, channel: string): Promise<Record<string, any>> {
    const before = conns.accepted;
    const port = String(ts.server.address?.port);
    const child = new Child(python as string, [SCRIPT, mode, '127.0.0.1', port, channel, API_KEY]);
    const exit = await child.finished(20_000, `python ${mode}`);
    if (exit.code !== 0) throw new Error(`python ${mode} exited ${exit.code}: ${child.stderr}`);
    // The server has closed its side too (or keeps it idle): either way it was counted.
    return { ...(JSON.parse(child.stdout) as Record<string, any>), connections: conns.accepted - before };
  }

  describe.skipIf(needPython.mode === 'skip')(needPython.title('Python http.client'), () => {
    beforeAll(() => {
      if (needPython.mode === 'fail') throw new Error(needPython.missing);
    });

    it('makes 100 publishes and 104 polls on ONE connection', async () => {
      const r = await runPython('polls', 'py.polls');
      expect(r['received']).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect([r['publishes'], r['polls']]).toEqual([100, 104]);
      expect(r['empty']).toEqual([[], [], []]);
      expect(r['connections']).toBe(1);
    }, 30_000);

    it('keeps an HTTP/1.0 connection alive when asked, with a correct Content-Length', async () => {
      const r = await runPython('http10-keepalive', 'py.h10');
      for (const a of r['answers'] as Array<Record<string, unknown>>) {
        expect(a).toMatchObject({ status: 200, willClose: false });
        expect(String(a['connection']).toLowerCase()).toBe('keep-alive');
        expect(Number(a['contentLength'])).toBe(a['bodyLength']);
      }
      expect(r['connections']).toBe(1);
    });

    it('closes an HTTP/1.0 connection that did not ask for keep-alive', async () => {
      const r = await runPython('http10-close', 'py.h10c');
      expect(r).toMatchObject({ status: 200, willClose: true, connections: 1 });
      expect(String(r['connection']).toLowerCase()).toBe('close');
      expect(Number(r['contentLength'])).toBe(r['bodyLength']);
      await until(() => conns.open === 0, 'the server closed the HTTP/1.0 connection');
    });

    it('answers an HTTP/1.0 stream (no length possible) with Connection: close, not keep-alive', async () => {
      const r = await runPython('http10-sse', 'py.h10s');
      expect(r).toMatchObject({ status: 200, willClose: true, contentLength: null, transferEncoding: null });
      expect(String(r['connection']).toLowerCase()).toBe('close');
      expect(r['lines']).toContain('event: connected');
      await until(() => ts.server.hub.sessions.size === 0, 'the SSE session is freed');
    });
  });

  describe('undici Pool', () => {
    it('runs 200 polls and 4 held polls over at most 4 connections', async () => {
      const channel = 'undici.many';
      for (let i = 1; i <= 50; i++) expect((await api(ts.url, 'publish', { channel, data: i })).status).toBe(200);
      const before = conns.accepted;
      const pool = new Pool(ts.url, { connections: 4 });
      const poll = async (query: string): Promise<PollAnswer> => {
        const res = await pool.request({ path: `/poll?channel=${channel}${query}`, method: 'GET' });
        expect(res.statusCode).toBe(200);
        return (await res.body.json()) as PollAnswer;
      };
      try {
        const first = await poll('');
        const epoch = first.cursor.split(';')[1] as string;
        expect(first.cursor).toBe(`${channel};${epoch};50`);
        // 200 polls at once, from cursors 0..49: each answers at once with what follows its cursor.
        const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => poll(`&cursor=${epoch}:${i % 50}`)));
        answers.forEach((a, i) => {
          const k = i % 50;
          expect(a.publications.map((p) => p.offset)).toEqual(Array.from({ length: 50 - k }, (_, j) => k + 1 + j));
          expect(a.cursor).toBe(`${channel};${epoch};50`);
        });
        // Four held polls take every connection of the pool; one publish answers them all.
        const held = Array.from({ length: 4 }, () => poll(`&cursor=${epoch}:50`));
        await until(() => ts.server.connectionsByTransport()['long-poll'] === 4, 'four polls are held');
        await api(ts.url, 'publish', { channel, data: 51 });
        for (const a of await Promise.all(held)) expect(a.publications.map((p) => p.data)).toEqual([51]);
        expect(conns.accepted - before).toBeGreaterThan(0);
        expect(conns.accepted - before).toBeLessThanOrEqual(4);
      } finally {
        await pool.close();
      }
    });
  });
});
