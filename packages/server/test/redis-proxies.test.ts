/**
 * Three Redis-engine nodes (child processes, so that one can be killed with SIGKILL) behind the real
 * HAProxy and nginx (Debian's packages), each configured with its block of docs/scaling.md with only
 * the addresses substituted — and the proxy timeouts scaled down (2 s) against heartbeats of 400 ms,
 * so that the relation the docs state (proxy timeouts longer than Herald's heartbeats) is what keeps
 * idle streams open here. Through each proxy:
 *
 * - WebSocket, SSE and NDJSON subscribers get publications made through the proxy, each within a few
 *   milliseconds (HAProxy without `option http-no-delay` held each streamed event ~200 ms);
 * - idle streams and a held long-poll outlive the proxy timeouts;
 * - a node killed with SIGKILL: its clients reconnect through the proxy and resume from their
 *   cursors with no gap and no duplicate, and requests made meanwhile keep succeeding (HAProxy
 *   without `option redispatch` and `retries` answered 503 for ~3 s).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, until } from '@herald/test-support';
import { api, API_KEY, startChildNode, WsClient, type ChildNode } from '@herald/test-support/server';
import { startRedisServer, type SpawnedRedis } from '@herald/test-support/redis';
import { docsHaproxyConfig, docsNginxConfig } from './support/docs-proxies.js';
import { needHaproxy, startHaproxy } from './support/haproxy.js';
import { needNginx, startNginx } from './support/nginx.js';
import { skipSpawnedRedis } from './support/redis.js';
import { ResumingClient, nodeOf, type ResumingTransport } from './support/resuming-client.js';

/** Herald's heartbeats (SSE/NDJSON, WebSocket pings) and the proxies' timeouts, scaled down. */
const HEARTBEAT_MS = 400;
const PROXY_TIMEOUT = '2s';
const POLL_TIMEOUT_MS = 1500;
/** A generous bound on the median time from publish to delivery through the proxy. */
const MEDIAN_LATENCY_BOUND_MS = 100;
const TRANSPORTS: ResumingTransport[] = ['ws', 'sse', 'stream'];

interface Proxy {
  readonly name: string;
  readonly need: typeof needNginx;
  start(dir: string, upstreams: number[]): Promise<{ port: number; stop(): Promise<void> }>;
}

const proxies: Proxy[] = [
  {
    name: 'HAProxy',
    need: needHaproxy,
    start: (dir, ups) => startHaproxy(dir, (port) => docsHaproxyConfig(port, ups, { timeout: PROXY_TIMEOUT })),
  },
  {
    name: 'nginx',
    need: needNginx,
    start: (dir, ups) => startNginx(dir, (port) => docsNginxConfig(port, ups, { readTimeout: PROXY_TIMEOUT })),
  },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

for (const proxy of proxies) {
  describe.skipIf(proxy.need.mode === 'skip' || skipSpawnedRedis)(
    proxy.need.title(`three Redis nodes behind ${proxy.name}, with the config of docs/scaling.md`),
    () => {
      let redis: SpawnedRedis | undefined;
      const nodes: ChildNode[] = [];
      let px: { port: number; stop(): Promise<void> } | undefined;
      let base: string;
      const clients: ResumingClient[] = [];
      const dir = tempDir(`proxy-${proxy.name.toLowerCase()}`);

      beforeAll(async () => {
        if (proxy.need.mode === 'fail') throw new Error(proxy.need.missing);
        redis = await startRedisServer();
        const env = {
          HERALD_HTTP_HEARTBEAT_INTERVAL: String(HEARTBEAT_MS),
          HERALD_HEARTBEAT_PING_INTERVAL: String(HEARTBEAT_MS),
          HERALD_HTTP_POLL_TIMEOUT: String(POLL_TIMEOUT_MS),
          HERALD_HTTP_SESSION_SECRET: 'proxy-test-secret-0123456789abcdef',
          HERALD_NAMESPACES: JSON.stringify({ px: { historySize: 2000, historyTtl: '10m' } }),
        };
        const url = redis.url;
        await Promise.all(
          [0, 1, 2].map(async () => {
            nodes.push(await startChildNode(['--engine', 'redis', '--redis', url], env));
          }),
        );
        px = await proxy.start(
          dir.path,
          nodes.map((n) => Number(new URL(n.url).port)),
        );
        base = `http://127.0.0.1:${px.port}`;
      }, 30_000);

      afterAll(async () => {
        await Promise.all(clients.map((c) => c.stop()));
        await px?.stop();
        await Promise.all(nodes.map((n) => n.kill()));
        await redis?.stop();
        dir.remove();
      });

      async function subscribers(channel: string, copies = 1): Promise<ResumingClient[]> {
        const out: ResumingClient[] = [];
        for (let i = 0; i < copies; i++) {
          for (const t of TRANSPORTS) {
            const c = new ResumingClient(base, t, channel);
            clients.push(c);
            out.push(c);
            await c.start();
          }
        }
        return out;
      }

      it('delivers publications made through the proxy over WebSocket, SSE and NDJSON, within milliseconds', async () => {
        const subs = await subscribers('px.latency');
        const sent: number[] = [];
        const publishMs: number[] = [];
        for (let i = 0; i < 25; i++) {
          const t0 = performance.now();
          const r = await api(base, 'publish', { channel: 'px.latency', data: i });
          expect(r.status).toBe(200);
          publishMs.push(performance.now() - t0);
          sent.push(t0);
          await Promise.all(subs.map((c) => c.reach(i + 1, 5000)));
        }
        const figures: Record<string, number> = { publish: median(publishMs) };
        for (const c of subs) {
          expect(c.errors).toEqual([]);
          expect(c.got.map((g) => g.data)).toEqual([...sent.keys()]);
          figures[c.transport] = median(c.got.map((g, i) => g.at - (sent[i] as number)));
        }
        const text = Object.entries(figures)
          .map(([k, v]) => `${k} ${v.toFixed(1)} ms`)
          .join(', ');
        console.log(`[${proxy.name}] median publish → delivery through the proxy: ${text}`);
        for (const t of TRANSPORTS) expect(figures[t], t).toBeLessThan(MEDIAN_LATENCY_BOUND_MS);
      });

      // Without heartbeats (or with timeouts shorter than their interval), these proxies cut an idle
      // stream at their timeout: HAProxy with `timeout client/server 2s` ends a quiet /sse after 2 s.
      it(`keeps idle streams open past the proxy's ${PROXY_TIMEOUT} timeouts (heartbeats every ${HEARTBEAT_MS} ms), and a poll held for http.pollTimeout`, async () => {
        const subs = await subscribers('px.idle');
        // A long-poll held for the whole http.pollTimeout, answered by Herald, not cut by the proxy.
        const first = (await (await fetch(`${base}/poll?channel=px.idle`)).json()) as { cursor: string };
        const t0 = performance.now();
        let heldMs = 0;
        const held = fetch(`${base}/poll?channel=px.idle&cursor=${encodeURIComponent(first.cursor)}`).then((r) => {
          heldMs = performance.now() - t0;
          return r;
        });
        // The window in which the proxy would have cut them (nothing to await: that is what must not happen).
        await sleep(5000); // 2.5 times the proxy's timeouts
        const poll = await held;
        expect(poll.status).toBe(200);
        expect(heldMs).toBeGreaterThanOrEqual(POLL_TIMEOUT_MS - 100);
        expect(((await poll.json()) as { publications: unknown[] }).publications).toEqual([]);
        const r = await api(base, 'publish', { channel: 'px.idle', data: 'after a quiet while' });
        expect(r.status).toBe(200);
        await Promise.all(subs.map((c) => c.reach(1)));
        for (const c of subs) {
          expect(c.errors).toEqual([]);
          // Still the first connection: the proxy did not cut it.
          expect({ transport: c.transport, subscribes: c.subscribes, sessions: c.nodes.length }).toEqual({
            transport: c.transport,
            subscribes: 1,
            sessions: 1,
          });
        }
      }, 15_000);

      it('a node killed with SIGKILL: its clients resume through the proxy from their cursors, requests keep succeeding', async () => {
        const ids = await Promise.all(
          nodes.map(async (n) => {
            const ws = await WsClient.connect(n.wsUrl);
            const id = nodeOf(ws.clientId);
            await ws.close();
            return id;
          }),
        );
        const subs = await subscribers('px.kill', 3);
        const count = (id: string): number => subs.filter((c) => c.nodes[0] === id).length;
        const victimIndex = ids.reduce((best, id, i) => (count(id) > count(ids[best] as string) ? i : best), 0);
        const victim = ids[victimIndex] as string;
        const onVictim = subs.filter((c) => c.nodes[0] === victim);
        expect(onVictim.length).toBeGreaterThan(0);

        // Publications through the proxy, one at a time; long-polls (GET) beside them.
        const failures: string[] = [];
        let slowest = 0;
        let published = 0;
        let polls = 0;
        let stop = false;
        const timed = async (what: string, f: () => Promise<Response>): Promise<boolean> => {
          const t0 = performance.now();
          try {
            const r = await f();
            await r.arrayBuffer();
            if (r.status !== 200) failures.push(`${what}: ${r.status}`);
            return r.status === 200;
          } catch (err) {
            failures.push(`${what}: ${(err as Error).message}`);
            return false;
          } finally {
            slowest = Math.max(slowest, performance.now() - t0);
          }
        };
        const publisher = (async () => {
          for (let i = 0; !stop; i++) {
            const body = JSON.stringify({ channel: 'px.kill', data: i });
            const publish = (): Promise<Response> =>
              fetch(`${base}/api/publish`, {
                method: 'POST',
                headers: { 'Content-Type': 'application/json', Authorization: `apikey ${API_KEY}` },
                body,
              });
            if (await timed(`publish ${i}`, publish)) published++;
            await sleep(10);
          }
        })();
        const poller = (async () => {
          while (!stop) {
            await timed('poll', () => fetch(`${base}/poll?channel=px.kill`));
            polls++;
            await sleep(10);
          }
        })();
        await until(() => published >= 10 && polls >= 10, 'traffic through the proxy before the kill');
        const node = nodes[victimIndex] as ChildNode;
        await node.kill();
        const killedAt = performance.now();
        // Long enough for the health checks to take the node out (HAProxy: inter 2s, fall 2).
        await sleep(6000);
        stop = true;
        await Promise.all([publisher, poller]);

        const survivor = nodes.find((_, i) => i !== victimIndex) as ChildNode;
        const h = await api(survivor.url, 'history', { channel: 'px.kill', limit: 2000 });
        expect(h.status).toBe(200);
        const top = h.body.offset as number;
        const data = (h.body.publications as { offset: number; data: unknown }[]).map((p) => p.data);
        expect(data).toHaveLength(top);
        await Promise.all(subs.map((c) => c.reach(top, 10_000)));
        const resumedMs = onVictim.map((c) => (c.subscribedAt[1] ?? NaN) - killedAt);
        const rejected = subs.flatMap((c) => c.rejected);
        console.log(
          `[${proxy.name}] SIGKILL of 1 node of 3 (${onVictim.length} of ${subs.length} subscribers on it): ` +
            `${published} publishes and ${polls} polls through the proxy, ${failures.length} failed` +
            `${failures.length > 0 ? ` (${failures.slice(0, 5).join('; ')})` : ''}, slowest ${slowest.toFixed(0)} ms; ` +
            `its subscribers resumed after ${resumedMs.map((ms) => ms.toFixed(0)).join(', ')} ms, ` +
            `${rejected.length} reconnects refused${rejected.length > 0 ? ` (${rejected.slice(0, 5).join('; ')})` : ''}`,
        );
        for (const c of subs) {
          expect(c.errors, c.describe()).toEqual([]);
          expect(c.got.map((g) => g.data)).toEqual(data);
        }
        for (const c of onVictim) {
          expect(c.subscribes, c.describe()).toBeGreaterThanOrEqual(2);
          expect(c.nodes.at(-1)).not.toBe(victim);
        }
        // Sent to another node rather than answered with an error or held: only requests in flight
        // when the node died may fail (one per loop; a few, in case the proxy reuses a connection
        // to the dead node before it sees it close).
        expect(failures.length, failures.join('\n')).toBeLessThanOrEqual(4);
        expect(rejected.length, rejected.join('\n')).toBeLessThanOrEqual(2);
        // Without retries/redispatch, HAProxy held such requests ~3 s, then answered 503.
        expect(slowest).toBeLessThan(2000);
        for (const ms of resumedMs) expect(ms).toBeLessThan(2000);
      }, 30_000);
    },
  );
}
