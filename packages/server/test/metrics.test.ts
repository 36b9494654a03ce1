/**
 * The metrics sink (core/metrics.ts): the tally the server keeps for `GET /api/info`, a sink given
 * in the server's options, and the no-op default.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsTally, noMetrics, teeMetrics } from '../src/core/metrics.js';
import { api, startServer, WsClient, type TestServer } from '@herald/test-support/server';

describe('MetricsTally', () => {
  it('counts per name and label set; the same series is shared by every instrument made for it', () => {
    const t = new MetricsTally();
    const a = t.counter('x_total', 'x', { kind: 'a' });
    const b = t.counter('x_total', 'x', { kind: 'b' });
    const a2 = t.counter('x_total', 'x', { kind: 'a' });
    a.inc();
    a2.inc(2);
    b.inc();
    expect(t.value('x_total', { kind: 'a' })).toBe(3);
    expect(t.value('x_total', { kind: 'b' })).toBe(1);
    expect(t.value('x_total')).toBe(0);
    expect(t.total('x_total')).toBe(4);
    expect(t.total('x')).toBe(0);
  });

  it('reads gauges when asked and buckets histogram observations', () => {
    const t = new MetricsTally();
    let open = 1;
    t.gauge('open', 'open', () => open);
    open = 7;
    expect(t.value('open')).toBe(7);
    const h = t.histogram('lat_seconds', 'latency', [0.1, 1]);
    for (const v of [0.05, 0.5, 2]) h.observe(v);
    expect(t.histogramValue('lat_seconds')).toEqual({ buckets: [0.1, 1], counts: [1, 2, 3], sum: 2.55 });
  });

  it('tees every instrument to every sink; the no-op sink keeps nothing', () => {
    const a = new MetricsTally();
    const b = new MetricsTally();
    const both = teeMetrics(a, noMetrics, b);
    both.counter('c_total', 'c').inc(5);
    both.histogram('h', 'h', [1]).observe(0.5);
    both.gauge('g', 'g', () => 3);
    for (const t of [a, b]) {
      expect(t.value('c_total')).toBe(5);
      expect(t.value('g')).toBe(3);
      expect(t.histogramValue('h')?.counts).toEqual([1, 1]);
    }
    expect(teeMetrics(a)).toBe(a);
  });
});

describe('a server reports to its tally and to the sink it was given', () => {
  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
  });

  it('publications, deliveries, connections and bad frames', async () => {
    const sink = new MetricsTally();
    srv = await startServer({}, { metrics: sink });
    const c = await WsClient.subscribed(srv.wsUrl, 'news.a');
    c.sendRaw('{not json');
    await c.waitFor((f) => f['error']?.code === 'HERALD_ERR_PROTOCOL_MALFORMED', 'the malformed-frame error');
    const pub = await api(srv.url, 'publish', { channel: 'news.a', data: { n: 1 } });
    expect(pub.status).toBe(200);
    await c.waitFor((f) => f['push'] === 'pub', 'the publication');
    for (const t of [srv.server.metrics, sink]) {
      expect(t.value('herald_publications_total')).toBe(1);
      expect(t.value('herald_deliveries_total')).toBe(1);
      expect(t.value('herald_connections_total')).toBe(1);
      expect(t.total('herald_connections')).toBe(1);
      expect(t.value('herald_streams')).toBe(1);
      expect(t.value('herald_bad_frames_total')).toBe(1);
    }
    const info = await api(srv.url, 'info', {});
    const node = info.body.nodes[0];
    expect(node).toMatchObject({ published: 1, deliveries: 1, connectionsTotal: 1, badFrames: 1 });
    expect(node.sockets.open).toBeGreaterThanOrEqual(1);
    await c.close();
  });
});
