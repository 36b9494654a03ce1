/**
 * The metrics sink (core/metrics.ts): the tally the server keeps for `GET /api/info`, a sink given
 * in the server's options, and the no-op default.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MetricsTally, noMetrics, teeMetrics } from '../src/core/metrics.js';
import { API_KEY, api, startServer, WsClient, type TestServer } from '@herald/test-support/server';

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

  it('GET /metrics answers the Prometheus text format, with labels by transport, reason, method', async () => {
    srv = await startServer({});
    const c = await WsClient.subscribed(srv.wsUrl, 'news.b');
    expect((await api(srv.url, 'publish', { channel: 'news.b', data: 1 })).status).toBe(200);
    await c.waitFor((f) => f['push'] === 'pub', 'the publication');
    await c.close();
    const res = await fetch(`${srv.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('# TYPE herald_deliveries_total counter');
    expect(text).toMatch(/^herald_deliveries_total 1$/m);
    expect(text).toMatch(/^herald_connections\{transport="sse"\} 0$/m);
    expect(text).toMatch(/^herald_writes_total\{transport="websocket"\} [1-9]/m);
    expect(text).toMatch(/^herald_api_requests_total\{method="publish",status="200"\} 1$/m);
    expect(text).toMatch(/^herald_api_request_duration_seconds_bucket\{method="publish",le="\+Inf"\} 1$/m);
    expect(text).toMatch(/^herald_engine_operation_duration_seconds_count\{op="publish"\} 1$/m);
    expect(text).toMatch(/^herald_ready 1$/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
    // No label per channel or per client.
    expect(text).not.toContain('news.b');
  });

  it('asks for an API key when metrics.requireApiKey is on, and is gone when metrics are off', async () => {
    srv = await startServer({ metrics: { enabled: true, requireApiKey: true } });
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(401);
    const key = API_KEY;
    expect((await fetch(`${srv.url}/metrics`, { headers: { Authorization: `Bearer ${key}` } })).status).toBe(200);
    await srv.close();
    srv = await startServer({ metrics: { enabled: false, requireApiKey: false } });
    expect((await fetch(`${srv.url}/metrics`)).status).toBe(404);
  });
});
