/** Tables (terminal and Markdown), ratios against Herald, and Herald's performance targets met or not. */
import type { Machine } from './machine.js';
import { generatorPaced, generatorUsPerDelivery, type StepResult } from './run.js';
import { median, type ScenarioResult } from './scenarios.js';

type Table = { header: string[]; rows: string[][] };

const f1 = (v: number): string => v.toFixed(1);
const f2 = (v: number): string => v.toFixed(2);
const int = (v: number): string => Math.round(v).toLocaleString('en');

function stepTable(steps: readonly StepResult[]): Table {
  return {
    header: [
      'target',
      'pub/s',
      'offered/s',
      'delivered/s',
      'lost',
      'dup',
      'p50 ms',
      'p95 ms',
      'p99 ms',
      'max ms',
      'server CPU %',
      'of which kernel %',
      'µs/delivery',
      'writes/delivery',
      'bytes/delivery',
      'RSS MiB',
      'gen CPU %',
      'gen core %',
      'other % srv/gen core',
      'notes',
    ],
    rows: steps.map((s) => [
      s.label,
      s.rate < 10 ? String(s.rate) : int(s.rate),
      int(s.offered),
      int(s.deliveriesPerSec),
      int(s.lost),
      int(s.dup),
      f2(s.p50),
      f2(s.p95),
      f2(s.p99),
      f1(s.max),
      f1(s.serverCpuPct),
      f1(s.serverSysPct),
      f2(s.usPerDelivery),
      f2(s.writesPerDelivery),
      s.bytesPerDelivery === undefined ? '' : f1(s.bytesPerDelivery),
      f1(s.rssMiB),
      f1(s.genCpuPct),
      f1(s.genCoreBusyPct),
      `${s.serverCoreOtherPct.toFixed(0)} / ${s.genCoreOtherPct.toFixed(0)}`,
      s.notes.join('; '),
    ]),
  };
}

/** The Herald row a peer's step is compared with: same transport if Herald has it, else WebSocket. */
function heraldFor(steps: readonly StepResult[], s: StepResult): StepResult | undefined {
  const sse = s.target.endsWith('-sse');
  const candidates = sse ? ['herald-sse', 'herald-ws'] : ['herald-ws'];
  for (const id of candidates) {
    const h = steps.find((x) => x.target === id && x.rate === s.rate);
    if (h !== undefined) return h;
  }
  return undefined;
}

function ratioTable(steps: readonly StepResult[]): Table {
  const rows: string[][] = [];
  for (const s of steps) {
    if (s.target.startsWith('herald')) continue;
    const h = heraldFor(steps, s);
    if (h === undefined) continue;
    rows.push([
      s.label,
      h.label,
      int(s.offered),
      `${f2(h.usPerDelivery)} / ${f2(s.usPerDelivery)} = ${f2(h.usPerDelivery / s.usPerDelivery)}`,
      `${f2(h.p99)} / ${f2(s.p99)} = ${f2(h.p99 / Math.max(s.p99, 0.001))}`,
      `${f2(h.deliveriesPerSec / Math.max(1, s.deliveriesPerSec))}`,
    ]);
  }
  return {
    header: [
      'peer',
      'compared with',
      'offered/s',
      'µs/delivery Herald / peer',
      'p99 Herald / peer',
      'delivered/s Herald / peer',
    ],
    rows,
  };
}

function memoryTable(r: ScenarioResult): Table {
  return {
    header: [
      'target',
      'connections',
      'connect s',
      'RSS fresh MiB',
      'RSS at N/2 MiB',
      'RSS at N MiB',
      'KiB / connection (fresh → N)',
      'KiB / connection added (N/2 → N)',
      'KiB / connection, early reading',
      'of which JS heap KiB',
      'settled after s',
      'notes',
    ],
    rows: r.memory.map((m) => [
      m.label,
      int(m.connected),
      f1(m.connectMs / 1000),
      f1(m.rssBeforeMiB),
      f1(m.rssHalfMiB),
      f1(m.rssAfterMiB),
      f2(m.kibPerConnection),
      f2(m.kibPerConnectionAdded),
      f2(m.kibPerConnectionEarly),
      m.heapKibPerConnection === undefined ? '' : f2(m.heapKibPerConnection),
      m.settledAfterMs === undefined ? '' : f1(m.settledAfterMs / 1000),
      m.notes.join('; '),
    ]),
  };
}

function stormTable(r: ScenarioResult): Table {
  return {
    header: [
      'target',
      'clients',
      'missed each',
      'recovered',
      'failed',
      'lost',
      'dup',
      'time s',
      'server CPU s',
      'server CPU %',
      'notes',
    ],
    rows: r.storms.map((s) => [
      s.label,
      int(s.n),
      int(s.missed),
      int(s.recovered),
      int(s.failed),
      int(s.lost),
      int(s.dup),
      f2(s.ms / 1000),
      f2(s.serverCpuSeconds),
      f1(s.serverCpuPct),
      s.notes.join('; '),
    ]),
  };
}

/**
 * Highest delivered/s of a target over the steps where it lost nothing, closed nothing and kept p99
 * under 1 s, even if below the offered rate: the throughput it sustains (S5's publishes/s).
 */
function maxThroughput(steps: readonly StepResult[], id: string): number | undefined {
  const ok = steps.filter((s) => s.target === id && s.lost === 0 && s.closed === 0 && s.p99 <= 1000);
  if (ok.length === 0) return undefined;
  return Math.max(...ok.map((s) => s.deliveriesPerSec));
}

export interface Verdict {
  readonly goal: string;
  readonly met: boolean;
  readonly detail: string;
}

function pct(a: number, b: number): string {
  const d = ((a - b) / b) * 100;
  return `${d >= 0 ? '+' : ''}${d.toFixed(0)} %`;
}

/** The performance targets (docs/performance.md#targets) that this result can judge. */
export function verdicts(r: ScenarioResult): Verdict[] {
  const out: Verdict[] = [];
  const id = r.spec.id;
  const fixedRate = 100_000 / r.spec.n;
  const at = (target: string, rate = fixedRate): StepResult | undefined =>
    r.steps.find((s) => s.target === target && s.rate === rate);
  if (id === 's2' || id === 's1') {
    const h = at('herald-ws');
    const nchan = at('nchan-ws');
    const sio = at('socketio');
    if (h !== undefined && nchan !== undefined) {
      out.push({
        goal: 'Herald µs/delivery below Nchan’s (WS, fixed load)',
        met: h.usPerDelivery < nchan.usPerDelivery,
        detail: `Herald ${f2(h.usPerDelivery)} µs, Nchan ${f2(nchan.usPerDelivery)} µs (${pct(h.usPerDelivery, nchan.usPerDelivery)})`,
      });
    }
    if (h !== undefined && sio !== undefined) {
      out.push({
        goal: 'Herald µs/delivery at most half of Socket.IO’s',
        met: h.usPerDelivery <= sio.usPerDelivery / 2,
        detail: `Herald ${f2(h.usPerDelivery)} µs, Socket.IO ${f2(sio.usPerDelivery)} µs (ratio ${f2(h.usPerDelivery / sio.usPerDelivery)})`,
      });
    }
    if (h !== undefined) {
      const peers = r.steps.filter(
        (s) => !s.target.startsWith('herald') && s.rate === fixedRate && s.deliveriesPerSec > 0,
      );
      if (peers.length > 0) {
        const best = peers.reduce((a, b) => (a.p99 < b.p99 ? a : b));
        const paced = generatorPaced(h) && generatorPaced(best);
        out.push({
          goal: 'Herald p99 below every peer’s at the fixed load',
          met: peers.every((p) => h.p99 < p.p99),
          detail:
            `Herald ${f2(h.p99)} ms; lowest peer ${best.label} ${f2(best.p99)} ms` +
            (paced
              ? ` (the generator read at ${f2(generatorUsPerDelivery(h))} and ${f2(generatorUsPerDelivery(best))} µs per delivery, the servers wrote at ${f2(h.usPerDelivery)} and ${f2(best.usPerDelivery)}: both tails are paced by the generator)`
              : ''),
        });
      }
    }
  }
  if (id === 's3') {
    const ws = at('herald-ws');
    const sse = at('herald-sse');
    if (ws !== undefined && sse !== undefined) {
      out.push({
        goal: 'Herald SSE fan-out cost within 10 % of its WebSocket cost',
        met: sse.usPerDelivery <= ws.usPerDelivery * 1.1,
        detail: `SSE ${f2(sse.usPerDelivery)} µs, WS ${f2(ws.usPerDelivery)} µs (${pct(sse.usPerDelivery, ws.usPerDelivery)})`,
      });
    }
    const nchan = at('nchan-sse');
    if (sse !== undefined && nchan !== undefined) {
      out.push({
        goal: 'Herald SSE µs/delivery below Nchan SSE’s',
        met: sse.usPerDelivery < nchan.usPerDelivery,
        detail: `Herald ${f2(sse.usPerDelivery)} µs, Nchan ${f2(nchan.usPerDelivery)} µs (${pct(sse.usPerDelivery, nchan.usPerDelivery)})`,
      });
    }
  }
  if (id === 's4') {
    for (const m of r.memory.filter((x) => x.target === 'herald-ws' || x.target === 'herald-sse')) {
      out.push({
        goal: `${m.label}: idle memory ≤ 6 KiB per connection`,
        met: m.kibPerConnection <= 6,
        detail: `${f2(m.kibPerConnection)} KiB (${pct(m.kibPerConnection, 6)} of the target)`,
      });
    }
  }
  if (id === 's5') {
    const sio = maxThroughput(r.steps, 'socketio');
    for (const [hid, how] of [
      ['herald-ws', 'one POST /api/publish per publication'],
      ['herald-ws-batch', 'POST /api/batch'],
    ] as const) {
      const h = maxThroughput(r.steps, hid);
      if (h === undefined || sio === undefined) continue;
      out.push({
        goal: `S5 publishes/s at least 2× Socket.IO’s (Herald with ${how})`,
        met: h >= 2 * sio,
        detail: `Herald ${int(h)}/s, Socket.IO ${int(sio)}/s (ratio ${f2(h / sio)}; highest delivered/s with nothing lost and p99 under 1 s)`,
      });
    }
  }
  return out;
}

function plain(t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(t.header), line(widths.map((w) => '-'.repeat(w))), ...t.rows.map(line)].join('\n');
}

function md(t: Table): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|');
  return [
    `| ${t.header.map(esc).join(' | ')} |`,
    `| ${t.header.map((_, i) => (i === 0 || i === t.header.length - 1 ? '---' : '---:')).join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Every round's µs/delivery and p99 beside their medians (`--rounds`). */
function roundsTable(r: ScenarioResult): Table {
  const n = Math.max(...r.rounds.map((x) => x.usPerDelivery.length));
  const each = (v: readonly number[], fmt: (x: number) => string): string => v.map(fmt).join(', ');
  return {
    header: ['target', 'offered/s', `µs/delivery, rounds 1-${n}`, 'median', 'spread %', 'p99 ms, rounds', 'median'],
    rows: r.rounds.map((x) => [
      x.label,
      int(x.offered),
      each(x.usPerDelivery, f2),
      f2(median(x.usPerDelivery)),
      f1(((Math.max(...x.usPerDelivery) - Math.min(...x.usPerDelivery)) / median(x.usPerDelivery)) * 100),
      each(x.p99, f1),
      f1(median(x.p99)),
    ]),
  };
}

function tables(r: ScenarioResult): { title: string; table: Table }[] {
  const out: { title: string; table: Table }[] = [];
  if (r.steps.length > 0)
    out.push({ title: r.rounds.length > 0 ? 'Steps (median of the rounds)' : 'Steps', table: stepTable(r.steps) });
  if (r.rounds.length > 0) out.push({ title: 'Rounds', table: roundsTable(r) });
  const ratios = ratioTable(r.steps);
  if (ratios.rows.length > 0) out.push({ title: 'Herald against each peer (same step)', table: ratios });
  if (r.memory.length > 0) out.push({ title: 'Idle memory', table: memoryTable(r) });
  if (r.storms.length > 0) out.push({ title: 'Reconnect storm', table: stormTable(r) });
  return out;
}

export function terminalReport(r: ScenarioResult): string {
  const parts = [`\n== ${r.spec.title} (N = ${r.spec.n.toLocaleString('en')}) ==`];
  for (const { title, table } of tables(r)) parts.push(`\n${title}:\n${plain(table)}`);
  const v = verdicts(r);
  if (v.length > 0) {
    const caveat = r.spec.n !== 10_000 ? ` (set for N = 10,000; indicative at N = ${r.spec.n})` : '';
    parts.push(
      `\nTargets${caveat}:\n${v.map((x) => `  [${x.met ? 'met' : 'NOT met'}] ${x.goal}: ${x.detail}`).join('\n')}`,
    );
  }
  for (const s of r.skipped) parts.push(`skipped ${s.target}: ${s.reason}`);
  return parts.join('\n');
}

export function markdownReport(
  results: readonly ScenarioResult[],
  m: Machine,
  command: string,
  charts: ReadonlyMap<string, string>,
  profile: string | undefined,
): string {
  const lines: string[] = [];
  lines.push(`# Benchmark results: ${results.map((r) => r.spec.id.toUpperCase()).join(' + ')}`, '');
  lines.push(
    'Produced by the benchmark suite (`bench/`); the method is in [docs/performance.md](../../docs/performance.md).',
    '',
  );
  lines.push('| | |', '|---|---|');
  lines.push(`| date | ${m.date} |`);
  lines.push(`| command | \`${command}\` |`);
  lines.push(`| machine | ${m.nproc} cores (\`nproc\`), ${m.cpu}, ${m.memGiB.toFixed(0)} GiB |`);
  lines.push(`| Node | ${m.node} |`);
  lines.push(`| commit | ${m.commit} |`);
  lines.push(`| load average (1 min) | ${m.loadBefore.toFixed(2)} before, ${m.loadAfter.toFixed(2)} after |`);
  lines.push('');
  for (const r of results) {
    lines.push(`## ${r.spec.title}`, '');
    lines.push(
      `N = ${r.spec.n.toLocaleString('en')} subscribers on ${r.spec.channels.toLocaleString('en')} channel(s)` +
        (r.spec.kind === 'rates'
          ? `; each step ${r.spec.warmupMs / 1000} s warm-up + ${r.spec.measureMs / 1000} s measured.`
          : '.') +
        (r.spec.subscriber === 'native'
          ? ' Subscribers read by the native subscriber (`bench/native/subscriber.c`).'
          : ' Subscribers read by the Node subscriber (`bench/src/gen/subscriber.ts`).'),
      '',
    );
    const chart = charts.get(r.spec.id);
    if (chart !== undefined) lines.push(`![${r.spec.title}](${chart})`, '');
    for (const { title, table } of tables(r)) lines.push(`### ${title}`, '', md(table), '');
    const v = verdicts(r);
    if (v.length > 0) {
      lines.push('### Targets', '');
      if (r.spec.n !== 10_000)
        lines.push(
          `The targets are set for N = 10,000; at N = ${r.spec.n.toLocaleString('en')} this is indicative only.`,
          '',
        );
      for (const x of v) lines.push(`- **${x.met ? 'met' : 'not met'}** — ${x.goal}: ${x.detail}`);
      if (v.some((x) => !x.met))
        lines.push(
          '',
          profile !== undefined
            ? 'Where Herald’s time went in this run: the CPU profile at the end of this file.'
            : 'Where Herald’s time goes: [docs/performance.md](../../docs/performance.md#where-heralds-time-goes) ' +
                '(`--profile` adds this run’s CPU profile to the file).',
        );
      lines.push('');
    }
    if (r.skipped.length > 0) {
      lines.push('### Skipped', '');
      for (const s of r.skipped) lines.push(`- ${s.target}: ${s.reason}`);
      lines.push('');
    }
  }
  if (profile !== undefined) lines.push('## Where Herald’s time goes (CPU profile)', '', profile, '');
  return lines.join('\n');
}
