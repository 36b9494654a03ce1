/**
 * Three Redis-engine nodes behind Debian's nginx, configured with the nginx block of
 * docs/scaling.md ("Behind nginx") with only its ports substituted, so the docs stay true: WebSocket
 * and SSE clients get publications made through nginx's API route, long-polls spread over the
 * nodes lose nothing, and `POST /send` works whichever node nginx picks (forwarded to the node
 * holding the session). nginx's access log records which upstream served each request. The same
 * block in front of nodes in their own processes, one killed with SIGKILL: redis-proxies.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docsNginxConfig } from './support/docs-proxies.js';
import { tempDir, until } from '@herald/test-support';
import { api, WsClient } from '@herald/test-support/server';
import { send } from './support/http-clients.js';
import { needNginx, startNginx, type RunningNginx } from './support/nginx.js';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';
import { SESSION_SECRET, openSse } from './support/send-forward.js';

const prefix = testPrefix();
const over = {
  http: { sessionSecret: SESSION_SECRET, pollTimeout: 5_000 },
  namespaces: { ngx: { clientPublish: true } },
};

interface PollAnswer {
  cursor: string;
  session: string;
  publications: Array<{ data: unknown }>;
}

describe.skipIf(needNginx.mode === 'skip' || skipRedis)(
  needNginx.title('three Redis nodes behind nginx, with the config of docs/scaling.md'),
  () => {
    let nodes: RedisNode[] = [];
    let nginx: RunningNginx;
    let base: string;
    const dir = tempDir('nginx-redis');

    beforeAll(async () => {
      if (needNginx.mode === 'fail') throw new Error(needNginx.missing);
      nodes = await Promise.all([0, 1, 2].map(() => startRedisNode(prefix, over)));
      const ports = nodes.map((n) => n.server.address?.port ?? 0);
      nginx = await startNginx(dir.path, (port) => docsNginxConfig(port, ports));
      base = `http://127.0.0.1:${nginx.port}`;
    });
    afterAll(async () => {
      await nginx?.stop();
      await Promise.all(nodes.map((n) => n.close()));
      await dropPrefix(prefix);
      dir.remove();
    });

    const addressOf = (n: RedisNode): string => `127.0.0.1:${n.server.address?.port}`;

    /** The upstreams (`127.0.0.1:<port>`) and statuses nginx logged for `path`, from log line `from` on. */
    function logged(path: string, from: number): { upstream: string; status: string }[] {
      return nginx
        .accessLog()
        .slice(from)
        .map((line) => line.split(' '))
        .filter(([, uri]) => uri === path)
        .map(([, , upstream, status]) => ({ upstream: upstream ?? '', status: status ?? '' }));
    }

    async function publish(channel: string, data: unknown): Promise<void> {
      const r = await api(base, 'publish', { channel, data });
      expect(r.status).toBe(200);
    }

    it('delivers a publication made through nginx to a WebSocket and an SSE client', async () => {
      const ws = await WsClient.connect(`ws://127.0.0.1:${nginx.port}/ws`);
      const { es } = await openSse(`${base}/sse?channel=ngx.live`);
      try {
        await ws.request({ cmd: 'subscribe', channel: 'ngx.live' });
        await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'the SSE subscribed event');
        await publish('ngx.live', 'hello');
        const pub = await ws.waitFor((f) => f['push'] === 'pub', 'the publication on the WebSocket');
        expect(pub).toMatchObject({ channel: 'ngx.live', offset: 1, data: 'hello' });
        await es.waitFor((e) => e.some((x) => x.event === 'message'), 'the publication on SSE');
        expect(es.pubs()).toEqual([expect.objectContaining({ channel: 'ngx.live', offset: 1, data: 'hello' })]);
      } finally {
        es.close();
        await ws.close();
      }
    });

    it('long-polls on whatever node nginx picks, losing nothing', async () => {
      const from = nginx.accessLog().length;
      const poll = async (a?: PollAnswer): Promise<PollAnswer> => {
        const q = new URLSearchParams({ channel: 'ngx.poll' });
        if (a !== undefined) q.set('cursor', a.cursor);
        if (a !== undefined) q.set('session', a.session);
        const r = await fetch(`${base}/poll?${q.toString()}`);
        expect(r.status).toBe(200);
        return (await r.json()) as PollAnswer;
      };
      let answer = await poll();
      const got: unknown[] = [];
      let sent = 0;
      for (let round = 0; round < 8; round++) {
        if (round % 2 === 0) {
          // Publications made between two polls come with the next poll, from history.
          for (let k = 0; k < 3; k++) await publish('ngx.poll', sent++);
          answer = await poll(answer);
        } else {
          // A held poll is answered by the next publication, whichever node it was made on.
          const held = poll(answer);
          await until(
            () => nodes.some((n) => n.server.connectionsByTransport()['long-poll'] === 1),
            'a node holds the poll',
          );
          await publish('ngx.poll', sent++);
          answer = await held;
        }
        got.push(...answer.publications.map((p) => p.data));
      }
      expect(got).toEqual([...Array(sent).keys()]);
      await until(() => logged('/poll', from).length === 9, 'nginx logs the polls');
      const polls = logged('/poll', from);
      expect(polls.every((p) => p.status === '200')).toBe(true);
      const served = new Set(polls.map((p) => p.upstream));
      expect(served.size).toBeGreaterThanOrEqual(2);
      for (const upstream of served) expect(nodes.map(addressOf)).toContain(upstream);
    });

    it('runs POST /send on the node holding the SSE session, whichever node nginx sends it to', async () => {
      const { es, client, session } = await openSse(`${base}/sse`);
      try {
        const holder = nodes.find((n) => n.server.hub.sessions.has(client));
        expect(holder).toBeDefined();
        const from = nginx.accessLog().length;
        const forwarded = (): number =>
          nodes.reduce((sum, n) => sum + n.server.metrics.value('herald_send_forwarded_total'), 0);
        const before = forwarded();

        const r = await send(base, session, '{"id":1,"cmd":"subscribe","channel":"ngx.send"}');
        expect(r.status).toBe(200);
        expect(r.lines).toEqual([{ id: 1, result: expect.objectContaining({ stream: 'ngx.send', offset: 0 }) }]);
        await es.waitFor((e) => e.some((x) => x.event === 'subscribed'), 'the subscribed event');
        for (let i = 0; i < 5; i++) {
          const p = await send(
            base,
            session,
            JSON.stringify({ id: 10 + i, cmd: 'publish', channel: 'ngx.send', data: i }),
          );
          expect(p.status).toBe(200);
          expect(p.lines).toEqual([{ id: 10 + i, result: expect.objectContaining({ offset: i + 1 }) }]);
        }
        await es.waitFor((e) => e.filter((x) => x.event === 'message').length === 5, 'five publications on SSE');
        expect(es.pubs().map((p) => p['data'])).toEqual([0, 1, 2, 3, 4]);

        await until(() => logged('/send', from).length === 6, 'nginx logs the sends');
        const sends = logged('/send', from);
        expect(sends.every((s) => s.status === '200')).toBe(true);
        const elsewhere = sends.filter((s) => s.upstream !== addressOf(holder as RedisNode));
        // nginx sent /send to nodes that do not hold the session, and those forwarded every one.
        expect(elsewhere.length).toBeGreaterThan(0);
        expect(forwarded() - before).toBe(elsewhere.length);
      } finally {
        es.close();
      }
    });
  },
);
