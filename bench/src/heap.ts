/**
 * `npm run bench -- heap [--targets herald-ws|herald-sse|herald-stream|herald-poll] [--n N]`: where an
 * idle subscribed connection's JS heap goes. Starts Herald with `--heapsnapshot-signal`, takes a heap
 * snapshot, subscribes N clients with the load generator (and publishes 3 messages so that every
 * connection has carried traffic), takes another, and prints the growth per connection by
 * constructor and by owner (`Type <- Owner.property`, the first strong retainer). The tool behind
 * the per-connection figures in docs/performance.md; it measures heap only (RSS is S4's job).
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Pinning } from './launch.js';
import { workDir } from './launch.js';
import { Session, sleep } from './run.js';
import type { RunningServer } from './targets.js';
import { startServer, target } from './targets.js';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export interface HeapRow {
  readonly name: string;
  readonly bytesPerConnection: number;
  readonly countPerConnection: number;
}

export interface HeapReport {
  readonly target: string;
  readonly n: number;
  readonly totalBytesPerConnection: number;
  readonly byConstructor: readonly HeapRow[];
  readonly byOwner: readonly HeapRow[];
}

/** Self size and count per key, for two keyings: the node's name, and name + first strong retainer. */
function aggregate(file: string): { byName: Map<string, [number, number]>; byOwner: Map<string, [number, number]> } {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const meta = s.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const [typeI, nameI, sizeI, edgesI] = ['type', 'name', 'self_size', 'edge_count'].map((f) =>
    meta.node_fields.indexOf(f),
  ) as [number, number, number, number];
  const types = meta.node_types[0];
  const edgeTypes = meta.edge_types[0];
  const count = s.nodes.length / nf;
  const label = (i: number): string => {
    const t = types[s.nodes[i * nf + typeI]!]!;
    return t === 'object' || t === 'closure' || t === 'native'
      ? s.strings[s.nodes[i * nf + nameI]!]!.slice(0, 48)
      : `(${t})`;
  };
  const owner = new Int32Array(count).fill(-1);
  const ownerEdge: string[] = new Array<string>(count);
  let e = 0;
  for (let i = 0; i < count; i++) {
    const edges = s.nodes[i * nf + edgesI]!;
    for (let j = 0; j < edges; j++, e += ef) {
      const et = edgeTypes[s.edges[e]!]!;
      const to = s.edges[e + 2]! / nf;
      if (et === 'weak' || owner[to] !== -1) continue;
      owner[to] = i;
      const nameOrIndex = s.edges[e + 1]!;
      ownerEdge[to] =
        et === 'element' || et === 'hidden' ? `[${nameOrIndex}]` : String(s.strings[nameOrIndex]).slice(0, 32);
    }
  }
  const byName = new Map<string, [number, number]>();
  const byOwner = new Map<string, [number, number]>();
  const add = (m: Map<string, [number, number]>, key: string, size: number): void => {
    const v = m.get(key);
    if (v === undefined) m.set(key, [size, 1]);
    else {
      v[0] += size;
      v[1] += 1;
    }
  };
  for (let i = 0; i < count; i++) {
    const name = label(i);
    const size = s.nodes[i * nf + sizeI]!;
    add(byName, name, size);
    const o = owner[i]!;
    add(byOwner, o === -1 ? name : `${name} <- ${label(o)}.${ownerEdge[i]}`, size);
  }
  return { byName, byOwner };
}

function delta(a: Map<string, [number, number]>, b: Map<string, [number, number]>, n: number, top: number): HeapRow[] {
  const rows: HeapRow[] = [];
  for (const [name, [size, count]] of b) {
    const [sa, ca] = a.get(name) ?? [0, 0];
    rows.push({ name, bytesPerConnection: (size - sa) / n, countPerConnection: (count - ca) / n });
  }
  return rows.sort((x, y) => y.bytesPerConnection - x.bytesPerConnection).slice(0, top);
}

async function snapshot(server: RunningServer, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(server.child.pid!, 'SIGUSR2');
  const t0 = performance.now();
  for (;;) {
    await sleep(250);
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (file !== undefined) {
      // The server writes the file synchronously; it is complete once its size stops changing.
      const path = join(dir, file);
      const size = statSync(path).size;
      await sleep(500);
      if (size > 0 && statSync(path).size === size) return path;
    }
    if (performance.now() - t0 > 120_000) throw new Error('no heap snapshot after 120 s');
  }
}

export async function heapReport(
  targetId: string,
  n: number,
  pin: Pinning,
  log: (line: string) => void,
): Promise<HeapReport> {
  const def = target(targetId);
  if (def.server !== 'herald') throw new Error('heap: only Herald targets (herald-ws, herald-sse, ...)');
  const dir = join(workDir(), `heap-${targetId}`);
  mkdirSync(dir, { recursive: true });
  const server = await startServer('herald', {
    cpu: pin.server,
    nodeFlags: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`],
  });
  const session = await Session.open(def, { pin, n, channels: 1, log }, [server]);
  try {
    await session.publishAndWait(1);
    await sleep(1000);
    const a = await snapshot(server, dir);
    const c = await session.connect();
    if (c.ok === 0) throw new Error(`no subscriber could subscribe: ${c.errors.join('; ')}`);
    await session.publishAndWait(3);
    await sleep(1000);
    const b = await snapshot(server, dir);
    log(`  ${def.label}: ${c.ok} subscribed; snapshots ${a} and ${b}`);
    const sa = aggregate(a);
    const sb = aggregate(b);
    let total = 0;
    for (const [name, [size]] of sb.byName) total += size - (sa.byName.get(name)?.[0] ?? 0);
    return {
      target: def.label,
      n: c.ok,
      totalBytesPerConnection: total / c.ok,
      byConstructor: delta(sa.byName, sb.byName, c.ok, 25),
      byOwner: delta(sa.byOwner, sb.byOwner, c.ok, 30),
    };
  } finally {
    await session.close();
  }
}

export function heapMarkdown(r: HeapReport): string {
  const table = (title: string, rows: readonly HeapRow[]): string =>
    [
      `| bytes / connection | objects / connection | ${title} |`,
      '|---:|---:|---|',
      ...rows.map(
        (row) =>
          `| ${row.bytesPerConnection.toFixed(1)} | ${row.countPerConnection.toFixed(2)} | \`${row.name.replaceAll('|', '\\|')}\` |`,
      ),
    ].join('\n');
  return [
    `## Heap per idle subscribed connection: ${r.target} (N = ${r.n})`,
    '',
    `JS heap growth (live and not yet collected objects, self sizes): **${r.totalBytesPerConnection.toFixed(0)} B per connection**. ` +
      'Figures below about 0.1 object per connection are one-time costs spread over N (code, lazily loaded modules).',
    '',
    table('constructor / type', r.byConstructor),
    '',
    table('type <- first retainer.property', r.byOwner),
    '',
  ].join('\n');
}
