/**
 * `npm run bench -- slow`: what slow subscribers cost the others, per `slowConsumer` policy. A ticker
 * publishes 1,000/s round-robin over `channels` channels; N subscribers listen, 1 % of them
 * "dashboards" subscribed to every channel (gen/slow-dashboards.ts), the rest one channel each (the
 * usual subscriber process). One run with every dashboard reading at full speed, then one per
 * policy with the dashboards throttled to `slowBytesPerSec` (each resume of a paused socket reads up to
 * 64 KiB, so what they read is measured and reported too). Reported: the fast subscribers'
 * latency (p50, p99) and losses, the server's RSS (at the end of the measured window, and its peak
 * over the run), and whether the slow dashboards end up with the latest value of every channel.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DashboardReply, DashboardRequest, DashboardStats } from './gen/slow-dashboards.js';
import { IpcChild } from './ipc.js';
import { spawnPinned, type Pinning } from './launch.js';
import { rssBytes } from './proc.js';
import { Session, sleep, type StepResult } from './run.js';
import { target } from './targets.js';

const here = dirname(fileURLToPath(import.meta.url));

export const SLOW_VARIANTS = ['none', 'disconnect', 'drop-oldest', 'latest-only'] as const;
export type SlowVariant = (typeof SLOW_VARIANTS)[number];

export interface SlowOptions {
  readonly pin: Pinning;
  readonly n: number;
  /** Share of the subscribers that are slow dashboards, in % (at least one dashboard). */
  readonly slowPct: number;
  /** Publications per second over all channels. */
  readonly rate: number;
  readonly channels: number;
  /** What a slow dashboard reads at most, in bytes per second. */
  readonly slowBytesPerSec: number;
  /** `slowConsumer.keep` of the namespace. */
  readonly keep: number;
  /** `limits.maxQueueBytes` of the server (its default when undefined). */
  readonly maxQueueBytes?: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly payloadBytes: number;
  readonly variants: readonly SlowVariant[];
  /** Every variant this many times, round after round; judged by the median of each variant's rounds. */
  readonly rounds: number;
  readonly nativeSubscriber?: string;
}

export interface SlowRow {
  readonly variant: SlowVariant;
  /** 1-based. */
  readonly round: number;
  readonly fast: StepResult;
  readonly rssPeakMiB: number;
  readonly slow: DashboardStats;
}

export async function slowReport(o: SlowOptions, log: (line: string) => void): Promise<SlowRow[]> {
  const rows: SlowRow[] = [];
  const dashboards = Math.max(1, Math.round((o.n * o.slowPct) / 100));
  const fastN = o.n - dashboards;
  log(
    `  ${fastN} subscribers on ${o.channels} channels (${o.rate / o.channels}/s each) + ${dashboards} dashboards on all ` +
      `${o.channels} (${o.rate}/s each), slow ones throttled to ${Math.round(o.slowBytesPerSec / 1024)} KiB/s`,
  );
  const runs = Array.from({ length: o.rounds }, (_, i) =>
    o.variants.map((variant) => ({ variant, round: i + 1 })),
  ).flat();
  for (const { variant, round } of runs) {
    const policy = variant === 'none' ? 'disconnect' : variant;
    const env: Record<string, string> = {
      HERALD_NAMESPACES: JSON.stringify({ default: { slowConsumer: { policy, keep: o.keep } } }),
    };
    if (o.maxQueueBytes !== undefined) env['HERALD_LIMITS_MAX_QUEUE_BYTES'] = String(o.maxQueueBytes);
    const base = target('herald-ws');
    const label = `Herald WS, ${variant === 'none' ? 'no slow reader' : variant}${o.rounds > 1 ? `, round ${round}` : ''}`;
    const def = { ...base, label, heraldEnv: env };
    const session = await Session.open(def, {
      pin: o.pin,
      n: fastN,
      channels: o.channels,
      payloadBytes: o.payloadBytes,
      log,
      ...(o.nativeSubscriber !== undefined ? { nativeSubscriber: o.nativeSubscriber } : {}),
    });
    const dash = new IpcChild<DashboardRequest, DashboardReply>(
      'dashboards',
      spawnPinned(process.execPath, [join(here, 'gen', 'slow-dashboards.js')], { cpu: o.pin.generator, ipc: true }),
    );
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(session.serverPids()))), 250);
    try {
      const c = await session.connect();
      if (c.ok === 0) throw new Error(`no subscriber could subscribe: ${c.errors.join('; ')}`);
      await session.publishAndWait(1);
      const d = await dash.request<{ ok: number }>({
        type: 'connect',
        port: session.servers[0]!.port,
        n: dashboards,
        channels: o.channels,
        bytesPerSec: variant === 'none' ? 0 : o.slowBytesPerSec,
      });
      log(`  ${def.label}: ${c.ok} subscribers and ${d.ok} dashboards subscribed`);
      await sleep(500);
      const fast = await session.step(o.rate, o.warmupMs, o.measureMs);
      const { published } = await session.publishAndWait(1);
      const slow = await dash.request<DashboardStats>({ type: 'final', final: published.final, timeoutMs: 30_000 });
      const row: SlowRow = { variant, round, fast, rssPeakMiB: peak / 2 ** 20, slow };
      rows.push(row);
      log(
        `    fast p50 ${fast.p50} ms, p99 ${fast.p99} ms, ${Math.round(fast.deliveriesPerSec)} deliveries/s, lost ${fast.lost} dup ${fast.dup}; ` +
          `RSS ${fast.rssMiB.toFixed(0)} MiB (peak ${row.rssPeakMiB.toFixed(0)}); dashboards: ${slow.withLatest}/${slow.dashboards} ` +
          `with the latest values, each read ${Math.round(slow.readBytesPerSec / 1024)} KiB/s, ${slow.disconnects} disconnects, ${slow.skipped} skipped in ${slow.skipPushes} skip pushes` +
          (fast.notes.length > 0 ? ` [${fast.notes.join('; ')}]` : ''),
      );
    } finally {
      clearInterval(sampler);
      await dash.stop({ type: 'close' });
      await session.close();
    }
  }
  return rows;
}

/** Each variant's row of median fast p99 (the upper one of an even count), with every round's p99. */
function medians(rows: readonly SlowRow[]): { row: SlowRow; p99s: number[] }[] {
  const out: { row: SlowRow; p99s: number[] }[] = [];
  for (const variant of new Set(rows.map((r) => r.variant))) {
    const mine = rows.filter((r) => r.variant === variant);
    const sorted = [...mine].sort((a, b) => a.fast.p99 - b.fast.p99);
    out.push({ row: sorted[Math.floor(sorted.length / 2)]!, p99s: mine.map((r) => r.fast.p99) });
  }
  return out;
}

export function slowMarkdown(rows: readonly SlowRow[], o: SlowOptions): string {
  const table = medians(rows);
  const none = table.find((t) => t.row.variant === 'none')?.row;
  const vs = (r: SlowRow): string =>
    none === undefined || r === none || none.fast.p99 === 0
      ? ''
      : ` (${r.fast.p99 >= none.fast.p99 ? '+' : ''}${(((r.fast.p99 - none.fast.p99) / none.fast.p99) * 100).toFixed(0)} %)`;
  const each = (p99s: readonly number[]): string => (p99s.length > 1 ? `; rounds ${p99s.join(' / ')}` : '');
  const dashboards = rows[0]?.slow.dashboards ?? 0;
  const lines = [
    `## Slow consumers: ${o.rate.toLocaleString('en-US')} publications/s over ${o.channels} channels, N = ${o.n.toLocaleString('en-US')}, ` +
      `${dashboards} dashboards on every channel, throttled to ${Math.round(o.slowBytesPerSec / 1024)} KiB/s`,
    '',
    `Measured ${o.measureMs / 1000} s after ${o.warmupMs / 1000} s of warm-up; \`slowConsumer.keep\` ${o.keep}` +
      (o.maxQueueBytes !== undefined ? `, \`limits.maxQueueBytes\` ${o.maxQueueBytes}` : '') +
      '. "none": the same dashboards reading at full speed. A throttled dashboard pauses its socket once a tenth of a ' +
      "second's budget is read and resumes on its next tenth (staggered over the dashboards); one resume reads up to " +
      '64 KiB, so "slow read" is what each one did take.' +
      (o.rounds > 1
        ? ` ${o.rounds} rounds, the policies one after the other in each; a policy's row is its round with the median fast p99.`
        : ''),
    '',
    '| policy | fast p50 ms | fast p99 ms | fast deliveries/s | fast lost / dup | server CPU % | RSS MiB (peak) | dashboards with the latest values | slow read KiB/s | disconnects | skipped (pushes) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...table.map(
      ({ row: r, p99s }) =>
        `| ${r.variant} | ${r.fast.p50} | ${r.fast.p99}${vs(r)}${each(p99s)} | ${Math.round(r.fast.deliveriesPerSec).toLocaleString('en-US')} | ` +
        `${r.fast.lost} / ${r.fast.dup} | ${r.fast.serverCpuPct.toFixed(0)} | ${r.fast.rssMiB.toFixed(0)} (${r.rssPeakMiB.toFixed(0)}) | ` +
        `${r.slow.withLatest} / ${r.slow.dashboards} | ${r.variant === 'none' ? '—' : Math.round(r.slow.readBytesPerSec / 1024)} | ${r.slow.disconnects} | ${r.slow.skipped.toLocaleString('en-US')} (${r.slow.skipPushes.toLocaleString('en-US')}) |`,
    ),
  ];
  const notes = table.flatMap(({ row: r }) => r.fast.notes.map((n) => `- ${r.variant}: ${n}`));
  return `${[...lines, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n')}\n`;
}
