/**
 * docs/grafana-dashboard.json: every series a panel queries is one a real node exposes at /metrics
 * (a Redis-engine node, so the Redis panels are checked too), every query is valid PromQL (Prometheus'
 * own `promtool` checks them as recording rules), and the panels are laid out without overlapping.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, WsClient } from '@herald/test-support/server';
import { dropPrefix, skipRedis, testPrefix } from './support/redis.js';
import { SECRET } from './support/tokens.js';
import { startRedisNode, type RedisNode } from './support/redis-nodes.js';

interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string }[];
}

const dashboard = JSON.parse(
  readFileSync(new URL('../../../docs/grafana-dashboard.json', import.meta.url), 'utf8'),
) as { panels: Panel[]; templating: { list: { name: string; definition?: string }[] } };

const IN_CI = process.env['CI'] === 'true';
const promtool = spawnSync('promtool', ['--version']).status === 0;
if (!promtool && !IN_CI)
  console.warn('[herald] Grafana dashboard PromQL check skipped: promtool not found (apt-get install prometheus).');

function expressions(): string[] {
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  exprs.push(...dashboard.templating.list.flatMap((v) => (v.definition !== undefined ? [v.definition] : [])));
  return exprs;
}

/** The metric names in a PromQL expression (functions and labels are not metric names). */
function metricNames(expr: string): string[] {
  const withoutLabels = expr.replace(/\{[^}]*\}/g, '').replace(/\b(by|without)\s*\([^)]*\)/g, '');
  return [...withoutLabels.matchAll(/\b((?:herald|nodejs|process)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
}

describe.skipIf(skipRedis)('Grafana dashboard', () => {
  const prefix = testPrefix();
  let node: RedisNode;
  let scrape = '';

  beforeAll(async () => {
    node = await startRedisNode(prefix, { auth: { hmacSecret: SECRET } });
    // Traffic, so that every histogram has observed something, and a refused token.
    const refused = await fetch(`${node.url}/sse?channel=grafana.a&token=not-a-token`);
    expect(refused.status).toBe(401);
    await refused.body?.cancel();
    const c = await WsClient.connect(node.wsUrl);
    await c.request({ cmd: 'subscribe', channel: 'grafana.a' });
    const r = await api(node.url, 'publish', { channel: 'grafana.a', data: 1 });
    expect(r.status).toBe(200);
    await c.waitFor((f) => f['push'] === 'pub', 'publication');
    await c.close();
    const res = await fetch(`${node.url}/metrics`);
    expect(res.status).toBe(200);
    scrape = await res.text();
  });
  afterAll(async () => {
    await node?.close();
    await dropPrefix(prefix);
  });

  it('queries only series a node exposes', () => {
    const exposed = new Set(
      scrape
        .split('\n')
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => /^[a-z0-9_]+/.exec(l)![0]),
    );
    const exprs = expressions();
    expect(exprs.length).toBeGreaterThan(20);
    const missing = new Set<string>();
    for (const expr of exprs) for (const name of metricNames(expr)) if (!exposed.has(name)) missing.add(name);
    expect([...missing]).toEqual([]);
  });

  it('lays the panels out on the 24-column grid without overlaps', () => {
    const taken = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++)
        for (let j = y; j < y + h; j++) {
          expect(taken.has(`${i},${j}`), `${p.title} overlaps at ${i},${j}`).toBe(false);
          taken.add(`${i},${j}`);
        }
    }
  });
});

describe.skipIf(!promtool && !IN_CI)('Grafana dashboard queries', () => {
  it('are valid PromQL', () => {
    // Grafana's variables as Grafana would fill them in; a template query is not PromQL.
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const rules = exprs.map((e, i) => ({
      record: `herald:dashboard_check_${i}`,
      expr: e.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*'),
    }));
    const dir = mkdtempSync(join(tmpdir(), 'herald-grafana-'));
    try {
      const file = join(dir, 'rules.yml');
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'herald-dashboard', rules }] }));
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`${rules.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
