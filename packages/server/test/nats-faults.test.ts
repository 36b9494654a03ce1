/**
 * The NATS engine against faults, with `nats-server` processes of the test's own: NATS restarted
 * with file storage (clients resume, `recovered: true`) and with memory storage (new epochs,
 * `recovered: false`, never `true` across the hole), a Herald node cut from NATS for 10 s (a gap
 * reported, then everything after it delivered), and a 3-server NATS cluster with replicas 3
 * losing a server (publishing goes on).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startTcpProxy, until } from '@herald/test-support';
import { api, WsClient } from '@herald/test-support/server';
import { NatsServerProcess, skipSpawnedNats, startNatsNode, testPrefix, type NatsNode } from './support/nats.js';

const disposables: Array<{ dispose?: () => Promise<void>; close?: () => Promise<void> }> = [];
afterAll(async () => {
  for (const d of disposables.reverse()) await (d.close?.() ?? d.dispose?.())?.catch(() => undefined);
});

/** Publishes through the server API, trying again while the engine is unavailable (NATS down). */
async function publishSoon(
  node: NatsNode,
  channel: string,
  data: unknown,
  ms = 20_000,
): Promise<{ epoch: string; offset: number }> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await api(node.url, 'publish', { channel, data, idempotencyKey: `k-${String(data)}` });
    if (r.status === 200) return r.body as { epoch: string; offset: number };
    if (Date.now() > deadline) throw new Error(`publish ${String(data)} failed: ${JSON.stringify(r.body)}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function resubscribe(url: string, channel: string, since: { epoch: string; offset: number }) {
  const c = await WsClient.connect(url);
  const r = await c.request({ cmd: 'subscribe', channel, since }, 10_000);
  await c.close();
  return r['result'] as {
    recovered: boolean;
    epoch: string;
    offset: number;
    publications: Array<{ offset: number; data: unknown }>;
  };
}

describe.skipIf(skipSpawnedNats)('nats engine faults', () => {
  it('resumes clients across a NATS restart with file storage (recovered: true)', async () => {
    const nats = await NatsServerProcess.start();
    disposables.push(nats);
    const node = await startNatsNode(testPrefix(), {}, { servers: [nats.url], storage: 'file' });
    disposables.push(node);
    const client = await WsClient.subscribed(node.wsUrl, 'f.x');
    const first = await publishSoon(node, 'f.x', 1);
    await publishSoon(node, 'f.x', 2);
    await nats.restart();
    await until(() => node.engine.ready(), 'the engine to reconnect', 15_000);
    await publishSoon(node, 'f.x', 3);
    await client.waitFor((f) => f['push'] === 'pub' && f['data'] === 3, 'publication 3');
    expect(client.pubs().map((p) => [p['epoch'], p['offset'], p['data']])).toEqual([
      [first.epoch, 1, 1],
      [first.epoch, 2, 2],
      [first.epoch, 3, 3],
    ]);
    const r = await resubscribe(node.wsUrl, 'f.x', { epoch: first.epoch, offset: 1 });
    expect(r.recovered).toBe(true);
    expect(r.publications.map((p) => p.data)).toEqual([2, 3]);
    await client.close();
  }, 60_000);

  it('starts new epochs when NATS comes back without its memory storage (recovered: false)', async () => {
    const nats = await NatsServerProcess.start();
    disposables.push(nats);
    const node = await startNatsNode(testPrefix(), {}, { servers: [nats.url], storage: 'memory' });
    disposables.push(node);
    const client = await WsClient.subscribed(node.wsUrl, 'm.x');
    const first = await publishSoon(node, 'm.x', 1);
    await publishSoon(node, 'm.x', 2);
    await publishSoon(node, 'm.x', 3);
    await nats.restart();
    await until(() => node.engine.ready(), 'the engine to reconnect', 15_000);
    const after = await publishSoon(node, 'm.x', 4);
    expect(after.epoch).not.toBe(first.epoch);
    expect(after.offset).toBe(1);
    // The live client is told its publications were lost (it reconnects and recovers from its cursor).
    const told = await client.waitFor((f) => f['push'] === 'disconnect', 'the disconnect', 15_000);
    expect(told).toMatchObject({ code: 3006, reconnect: true });
    expect(client.pubs().map((p) => p['data'])).toEqual([1, 2, 3]);
    const r = await resubscribe(node.wsUrl, 'm.x', { epoch: first.epoch, offset: 1 });
    expect(r.recovered).toBe(false);
    expect(r.epoch).toBe(after.epoch);
    await client.close();
    // Live delivery goes on in the new epoch.
    const again = await WsClient.subscribed(node.wsUrl, 'm.x');
    await publishSoon(node, 'm.x', 5);
    await again.waitFor((f) => f['push'] === 'pub' && f['data'] === 5, 'publication 5 live');
    expect(again.pubs().map((p) => [p['epoch'], p['offset']])).toEqual([[after.epoch, 2]]);
    await again.close();
  }, 60_000);

  it('reports a gap when a node loses NATS for 10 s, and delivers everything after it', async () => {
    const nats = await NatsServerProcess.start();
    disposables.push(nats);
    const proxy = await startTcpProxy(nats.port);
    disposables.push(proxy);
    const prefix = testPrefix();
    const config = { namespaces: { g: { historySize: 1000 } } };
    const cut = await startNatsNode(prefix, config, { servers: [`nats://127.0.0.1:${proxy.port}`] });
    disposables.push(cut);
    const other = await startNatsNode(prefix, config, { servers: [nats.url] });
    disposables.push(other);
    const client = await WsClient.subscribed(cut.wsUrl, 'g.x');
    await publishSoon(other, 'g.x', 0);
    await client.waitFor((f) => f['push'] === 'pub' && f['data'] === 0, 'publication 0');
    const gapsBefore = cut.engine.stats.gaps;
    proxy.switchTo(await freePort()); // nothing listens there: the link is down
    await until(() => !cut.engine.ready(), 'the node to notice the lost link', 15_000);
    const started = Date.now();
    let i = 1;
    while (Date.now() - started < 10_000 && i <= 200) {
      await publishSoon(other, 'g.x', i);
      i += 1;
      await new Promise((res) => setTimeout(res, 50));
    }
    const last = i - 1;
    proxy.switchTo(nats.port);
    await until(() => cut.engine.ready(), 'the node to reconnect', 20_000);
    await until(() => cut.engine.stats.gaps > gapsBefore, 'a gap reported');
    await publishSoon(other, 'g.x', 'sentinel');
    await client.waitFor((f) => f['push'] === 'pub' && f['data'] === 'sentinel', 'the sentinel', 15_000);
    expect(client.pubs().map((p) => p['offset'])).toEqual([...Array(last + 2).keys()].map((k) => k + 1));
    await client.close();
  }, 90_000);

  it('keeps publishing when one server of a 3-server NATS cluster (replicas 3) is lost', async () => {
    const clientPorts = await Promise.all([0, 1, 2].map(() => freePort()));
    const routePorts = await Promise.all([0, 1, 2].map(() => freePort()));
    const routes = routePorts.map((p) => `nats://127.0.0.1:${p}`);
    const servers = await Promise.all(
      [0, 1, 2].map((k) =>
        NatsServerProcess.start(
          { name: `n${k}`, cluster: { name: 'hc', port: routePorts[k] as number, routes } },
          clientPorts[k],
        ),
      ),
    );
    disposables.push(...servers);
    const node = await startNatsNode(
      testPrefix(),
      {},
      { servers: servers.map((s) => s.url), replicas: 3, connectTimeout: 30_000 },
    );
    disposables.push(node);
    // The cluster needs a JetStream meta leader before the first stream can be made.
    const firstDeadline = Date.now() + 30_000;
    let first: { epoch: string; offset: number } | undefined;
    while (first === undefined) {
      try {
        first = await publishSoon(node, 'c.x', 1, 2000);
      } catch (err) {
        if (Date.now() > firstDeadline) throw err;
      }
    }
    const client = await WsClient.subscribed(node.wsUrl, 'c.x');
    await servers[0]!.stop();
    for (let i = 2; i <= 20; i++) await publishSoon(node, 'c.x', i, 30_000);
    const h = await api(node.url, 'history', { channel: 'c.x', limit: 100 });
    expect(h.body.epoch).toBe(first.epoch);
    expect(h.body.publications.map((p: { data: number }) => p.data)).toEqual([...Array(20).keys()].map((k) => k + 1));
    // The subscriber gets everything live, or, if its node needed longer than its recovery to follow
    // the stream again, is told so (3006) and resumes from its cursor with nothing missing.
    const end = await client.waitFor(
      (f) => (f['push'] === 'pub' && f['data'] === 20) || f['push'] === 'disconnect',
      'publication 20 or a disconnect',
      20_000,
    );
    const live = client.pubs().map((p) => p['data'] as number);
    let got = live;
    if (end['push'] === 'disconnect') {
      expect(end).toMatchObject({ code: 3006, reconnect: true });
      const last = client.pubs().at(-1);
      const since = { epoch: first.epoch, offset: (last?.['offset'] as number | undefined) ?? 1 };
      const r = await resubscribe(node.wsUrl, 'c.x', since);
      expect(r.recovered).toBe(true);
      got = [...live, ...r.publications.map((p) => p.data as number)];
    }
    expect(got).toEqual([...Array(19).keys()].map((k) => k + 2));
    await client.close();
  }, 120_000);
});
