/**
 * The scenarios (S1–S7 and `quick`): which targets, how many subscribers on how many channels,
 * which publish rates, and what is read.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Pinning } from './launch.js';
import { freePort, spawnPinned, stopChild, waitPort, workDir } from './launch.js';
import { cpuSeconds, rssBytes, waitQuiet } from './proc.js';
import { NATIVE_PROTOCOLS } from './native.js';
import { Session, sleep, type StepResult } from './run.js';
import { API_KEY, RunningServer, startServer, target, unavailable, type TargetDef } from './targets.js';

export type ScenarioKind = 'rates' | 'memory' | 'storm' | 'nodes';

export interface ScenarioSpec {
  readonly id: string;
  readonly title: string;
  readonly kind: ScenarioKind;
  readonly targets: readonly string[];
  readonly n: number;
  /** 1 = fan-out (every subscriber on one channel); n = one channel per subscriber. */
  readonly channels: number;
  /** Publications per second, over all channels, one step each. */
  readonly rates: readonly number[];
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Stop raising the rate for a target once a step is saturated. */
  readonly stopWhenSaturated: boolean;
  /**
   * Memory scenarios: wait at least `minMs` (at most `maxMs`) for the server's RSS to settle before
   * each reading (see `settledRss`). Without it, readings are taken `measureMs` after connecting
   * (quick runs).
   */
  readonly settle?: { readonly minMs: number; readonly maxMs: number };
  /** Extra flags for the Node servers (Herald and the Node peers alike). */
  readonly nodeFlags?: readonly string[];
  /**
   * Rate scenarios: run every target this many times, round after round (each round every target
   * in turn), and keep per target and rate the median (see `medianSteps`). Default 1.
   */
  readonly rounds?: number;
  /** Memory scenarios: run a full GC in the Node servers before each RSS reading (needs FULL_GC_ON_SIGNAL). */
  readonly collectGarbage?: boolean;
  /** Which subscriber process the run used (set by `runScenario`; see `chooseSubscriber`). */
  readonly subscriber?: 'native' | 'node';
}

/**
 * S4 runs every Node server (Herald, raw ws, Socket.IO, raw SSE) with a young generation capped at
 * 1 MiB per semi-space. By default V8 grows it to 2 × 16 MiB during a burst of connections and gives
 * it back only when its memory reducer happens to run (after a full GC, 20-30 s later, or never):
 * at N = 10,000 that garbage space alone reads as up to 3 KiB "per connection", differently from one
 * run to the next. nginx (Nchan) is not affected.
 */
const here = dirname(fileURLToPath(import.meta.url));

const SMALL_YOUNG_GENERATION = '--max-semi-space-size=1';

/**
 * S4 also runs a full garbage collection in every Node server before each RSS reading (a SIGUSR2
 * handled by `peers/gc-on-signal.ts`). Otherwise the old generation's garbage (the startup's, the
 * connection burst's) is freed whenever V8's memory reducer happens to run: in one run the fresh
 * reading was inflated by startup garbage that was gone at N, and the figure per connection read
 * 3.1 KiB in one run and 5.2 in the next for the same code. nginx (Nchan) has no collector to wait for.
 */
const FULL_GC_ON_SIGNAL = ['--expose-gc', '--import', pathToFileURL(join(here, 'peers', 'gc-on-signal.js')).href];

export interface MemoryResult {
  readonly target: string;
  readonly label: string;
  readonly n: number;
  readonly connected: number;
  readonly connectMs: number;
  /** The fresh server, before any client. */
  readonly rssBeforeMiB: number;
  /** With the first half of the clients connected (settled when the spec settles). */
  readonly rssHalfMiB: number;
  /** With every client connected (settled when the spec settles). */
  readonly rssAfterMiB: number;
  /** The figure the target is checked against: RSS growth from the fresh server to all clients, / N. */
  readonly kibPerConnection: number;
  /**
   * RSS growth from half to all of the clients, per connection added: fixed costs (code compiled,
   * modules loaded on first use, buffers sized once) are in both readings and cancel out.
   */
  readonly kibPerConnectionAdded: number;
  /** The same, read `measureMs` after the last client connected, without waiting to settle. */
  readonly kibPerConnectionEarly: number;
  /** How long the last reading waited for RSS to settle; undefined when the spec does not settle. */
  readonly settledAfterMs?: number;
  /** Herald only: growth of the V8 heap in use per connection added (from `/api/info`), the rest being native. */
  readonly heapKibPerConnection?: number;
  readonly notes: readonly string[];
}

export interface StormResult {
  readonly target: string;
  readonly label: string;
  readonly n: number;
  readonly missed: number;
  readonly recovered: number;
  readonly failed: number;
  readonly lost: number;
  readonly dup: number;
  readonly ms: number;
  readonly serverCpuSeconds: number;
  readonly serverCpuPct: number;
  readonly notes: readonly string[];
}

/** One target at one rate over several rounds (`ScenarioSpec.rounds`), in round order. */
export interface RoundsResult {
  readonly target: string;
  readonly label: string;
  readonly offered: number;
  readonly usPerDelivery: number[];
  readonly p99: number[];
}

export interface ScenarioResult {
  readonly spec: ScenarioSpec;
  /** With several rounds: the median step of each target and rate (see `medianSteps`). */
  readonly steps: StepResult[];
  /** With several rounds: every round's figures. */
  readonly rounds: RoundsResult[];
  readonly memory: MemoryResult[];
  readonly storms: StormResult[];
  readonly skipped: { target: string; reason: string }[];
}

const WS_TARGETS = ['herald-ws', 'nchan-ws', 'ws-prebuilt', 'ws-naive', 'socketio', 'faye'];
const SSE_TARGETS = ['herald-ws', 'herald-sse', 'herald-stream', 'nchan-sse', 'raw-sse'];
const MEMORY_TARGETS = [
  'herald-ws',
  'herald-sse',
  'herald-poll',
  'nchan-ws',
  'nchan-sse',
  'ws-prebuilt',
  'ws-naive',
  'socketio',
  'faye',
  'raw-sse',
];

export const SCENARIO_IDS = ['s1', 's2', 's3', 's4', 's5', 's6', 's7'] as const;

/** The scenario `id` at `n` subscribers. */
export function scenario(id: string, n: number, targetsOverride?: readonly string[]): ScenarioSpec {
  const base = { n, warmupMs: 2000, measureMs: 6000, stopWhenSaturated: true };
  const t = (list: readonly string[]): readonly string[] => targetsOverride ?? list;
  // Rates are per second over the one channel: 10/s to 10,000 subscribers = 100,000 deliveries/s.
  const fanOutRates = [1, 2, 5, 10, 20, 40].map((r) => (r * 10_000) / n);
  switch (id) {
    case 's1':
      return {
        ...base,
        id,
        title: 'S1 fan-out over WebSocket, rising rates',
        kind: 'rates',
        targets: t(WS_TARGETS),
        channels: 1,
        rates: fanOutRates,
      };
    case 's2':
      return {
        ...base,
        id,
        title: 'S2 fixed load over WebSocket (100,000 deliveries/s at N = 10,000)',
        kind: 'rates',
        targets: t(WS_TARGETS),
        channels: 1,
        rates: [100_000 / n],
        warmupMs: 2000,
        measureMs: 8000,
        stopWhenSaturated: false,
      };
    case 's3':
      return {
        ...base,
        id,
        title: 'S3 fan-out over SSE (and NDJSON), rising rates',
        kind: 'rates',
        targets: t(SSE_TARGETS),
        channels: 1,
        rates: fanOutRates,
      };
    case 's4':
      return {
        ...base,
        id,
        title: 'S4 idle memory per connection',
        kind: 'memory',
        targets: t(MEMORY_TARGETS),
        channels: 1,
        rates: [],
        measureMs: 3000, // idle time before the early RSS reading
        settle: { minMs: 5_000, maxMs: 30_000 },
        nodeFlags: [SMALL_YOUNG_GENERATION, ...FULL_GC_ON_SIGNAL],
        collectGarbage: true,
      };
    case 's5':
      return {
        ...base,
        id,
        title: 'S5 many channels: one channel per subscriber, rising publishes/s',
        kind: 'rates',
        // Herald three times: one request per publication, publications batched by POST /api/batch,
        // and one frame per publication on one GET /api/ws WebSocket.
        targets: t(['herald-ws', 'herald-ws-batch', 'herald-ws-apiws', 'nchan-ws', 'ws-naive', 'socketio']),
        channels: n,
        rates: [1000, 2000, 5000, 10_000, 20_000, 30_000, 40_000, 80_000],
        warmupMs: 1500,
        measureMs: 5000,
      };
    case 's6':
      return {
        ...base,
        id,
        title: 'S6 reconnect storm: drop everyone, recover 100 missed messages',
        kind: 'storm',
        targets: t(['herald-ws', 'herald-sse']),
        channels: 1,
        rates: [],
      };
    case 's7':
      return {
        ...base,
        id,
        title: 'S7 three Herald nodes on Redis and on NATS vs one node',
        kind: 'nodes',
        targets: ['herald-ws'],
        channels: 1,
        rates: [100_000 / n],
        warmupMs: 2000,
        measureMs: 8000,
        stopWhenSaturated: false,
      };
    default:
      throw new Error(`unknown scenario "${id}" (known: ${SCENARIO_IDS.join(', ')}, quick)`);
  }
}

export interface RunContext {
  readonly pin: Pinning;
  readonly log: (line: string) => void;
  /** Folder for Herald's CPU profiles (`--profile`). */
  readonly profileDir?: string;
  readonly payloadBytes: number;
  /** Measure a step again (up to this many times) when other processes used the cores during it. */
  readonly retries: number;
  /** `auto`: the native subscriber wherever it can serve every target of a scenario; `node`: never. */
  readonly generator: 'auto' | 'native' | 'node';
  /** The native subscriber's binary, when it could be built. */
  readonly nativeSubscriber?: string;
}

/**
 * The native subscriber (`bench/native/subscriber.c`) serves a rate scenario when it speaks every
 * target's protocol; otherwise, and for the memory and storm scenarios, the Node one does. A
 * scenario never mixes the two: its targets are compared with one subscriber.
 */
function chooseSubscriber(spec: ScenarioSpec, ctx: RunContext): 'native' | 'node' {
  if (ctx.generator === 'node') return 'node';
  const why = whyNotNative(spec, ctx);
  if (why === undefined) return 'native';
  // Said when it was asked for, or could not be built; `auto` leaves S4 and S6 to Node silently.
  if (ctx.generator === 'native' || ctx.nativeSubscriber === undefined)
    ctx.log(`  the Node subscriber reads ${spec.id}: the native one cannot (${why})`);
  return 'node';
}

function whyNotNative(spec: ScenarioSpec, ctx: RunContext): string | undefined {
  if (ctx.nativeSubscriber === undefined) return 'it could not be built';
  if (spec.kind !== 'rates' && spec.kind !== 'nodes') return `${spec.id} is not a rate scenario`;
  const other = spec.targets.map(target).find((t) => !NATIVE_PROTOCOLS.includes(t.sub(0).protocol));
  return other === undefined ? undefined : `it does not speak ${other.label}'s protocol`;
}

/** Other work above this on a core during a step makes the step noisy. */
const NOISE_PCT = 15;

function noisy(s: StepResult): boolean {
  return s.serverCoreOtherPct > NOISE_PCT || s.genCoreOtherPct > NOISE_PCT;
}

/** A step is saturated when it delivered < 95 % of the offered rate, lost something, or p99 > 1 s. */
export function saturated(s: StepResult): boolean {
  return s.deliveriesPerSec < s.offered * 0.95 || s.lost > 0 || s.p99 > 1000 || s.closed > 0;
}

export async function runScenario(asked: ScenarioSpec, ctx: RunContext): Promise<ScenarioResult> {
  const spec: ScenarioSpec = { ...asked, subscriber: chooseSubscriber(asked, ctx) };
  ctx.log(`  subscribers read by the ${spec.subscriber} subscriber`);
  const result: ScenarioResult = { spec, steps: [], rounds: [], memory: [], storms: [], skipped: [] };
  if (spec.kind === 'nodes') {
    await runNodes(spec, ctx, result);
    return result;
  }
  const rounds = spec.kind === 'rates' ? Math.max(1, spec.rounds ?? 1) : 1;
  const roundSteps: StepResult[] = [];
  const skip = new Set<string>();
  for (let round = 1; round <= rounds; round++) {
    if (rounds > 1) ctx.log(`  round ${round} of ${rounds}`);
    await runTargets(spec, ctx, result, roundSteps, skip);
  }
  if (rounds === 1) result.steps.push(...roundSteps);
  else {
    const median = medianSteps(roundSteps, rounds);
    result.steps.push(...median.steps);
    result.rounds.push(...median.rounds);
  }
  return result;
}

async function runTargets(
  spec: ScenarioSpec,
  ctx: RunContext,
  result: ScenarioResult,
  steps: StepResult[],
  skip: Set<string>,
): Promise<void> {
  for (const id of spec.targets) {
    if (skip.has(id)) continue;
    const def = target(id);
    const why = unavailable(def.server, ctx.log);
    if (why !== undefined) {
      ctx.log(`  ${def.label}: skipped (${why})`);
      result.skipped.push({ target: id, reason: why });
      skip.add(id);
      continue;
    }
    try {
      switch (spec.kind) {
        case 'rates':
          steps.push(...(await runRates(spec, def, ctx)));
          break;
        case 'memory':
          result.memory.push(await runMemory(spec, def, ctx));
          break;
        case 'storm':
          result.storms.push(await runStorm(spec, def, ctx));
          break;
        case 'nodes':
          throw new Error('S7 runs through runNodes');
      }
    } catch (err) {
      const reason = `failed: ${(err as Error).message}`;
      ctx.log(`  ${def.label}: ${reason}`);
      result.skipped.push({ target: id, reason });
      skip.add(id);
    }
  }
}

/** The median of `values` (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Several rounds → one step per target and rate: the round whose µs/delivery is the median (the
 * lower middle one for an even count), with p50/p95/p99 replaced by the medians over the rounds, and
 * a note saying so. A rate that not every round reached (a target saturated earlier in one round) is
 * kept only from the rounds that reached it.
 */
export function medianSteps(
  steps: readonly StepResult[],
  rounds: number,
): { steps: StepResult[]; rounds: RoundsResult[] } {
  const groups = new Map<string, StepResult[]>();
  for (const s of steps) {
    const key = `${s.target}\u0000${s.offered}`;
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [s]);
    else g.push(s);
  }
  const out: StepResult[] = [];
  const perRound: RoundsResult[] = [];
  for (const g of groups.values()) {
    const byCost = [...g].sort((a, b) => a.usPerDelivery - b.usPerDelivery);
    const mid = byCost[(byCost.length - 1) >> 1]!;
    const note =
      `median of ${g.length} round${g.length === 1 ? '' : 's'}` + (g.length < rounds ? ` (of ${rounds})` : '');
    out.push({
      ...mid,
      p50: median(g.map((s) => s.p50)),
      p95: median(g.map((s) => s.p95)),
      p99: median(g.map((s) => s.p99)),
      notes: [...mid.notes, note],
    });
    perRound.push({
      target: mid.target,
      label: mid.label,
      offered: mid.offered,
      usPerDelivery: g.map((s) => s.usPerDelivery),
      p99: g.map((s) => s.p99),
    });
  }
  return { steps: out, rounds: perRound };
}

function sessionOptions(spec: ScenarioSpec, def: TargetDef, ctx: RunContext) {
  return {
    pin: ctx.pin,
    n: spec.n,
    channels: spec.channels,
    payloadBytes: ctx.payloadBytes,
    log: ctx.log,
    ...(spec.subscriber === 'native' && ctx.nativeSubscriber !== undefined
      ? { nativeSubscriber: ctx.nativeSubscriber }
      : {}),
    server: {
      ...(def.server === 'herald' && ctx.profileDir !== undefined ? { profileDir: ctx.profileDir } : {}),
      ...(spec.nodeFlags !== undefined ? { nodeFlags: spec.nodeFlags } : {}),
    },
  };
}

async function connectOrThrow(session: Session, ctx: RunContext): Promise<number> {
  const c = await session.connect();
  ctx.log(
    `  ${session.target.label}: ${c.ok} subscribed in ${(c.ms / 1000).toFixed(1)} s` +
      (c.failed > 0 ? `, ${c.failed} failed (${c.errors.join('; ')})` : ''),
  );
  if (c.ok === 0) throw new Error(`no subscriber could subscribe: ${c.errors.join('; ')}`);
  return c.ok;
}

async function runRates(spec: ScenarioSpec, def: TargetDef, ctx: RunContext): Promise<StepResult[]> {
  const session = await Session.open(def, sessionOptions(spec, def, ctx));
  const steps: StepResult[] = [];
  try {
    await connectOrThrow(session, ctx);
    await session.publishAndWait(1); // every subscriber live before the first step
    await sleep(Math.min(1000, spec.warmupMs));
    for (const [i, rate] of spec.rates.entries()) {
      let s = await session.step(rate, spec.warmupMs, spec.measureMs);
      for (let attempt = 0; attempt < ctx.retries && noisy(s); attempt++) {
        ctx.log(
          `    ${+rate.toFixed(1)}/s: other processes used the cores (server core +${s.serverCoreOtherPct.toFixed(0)}%, ` +
            `generator core +${s.genCoreOtherPct.toFixed(0)}%): waiting for quiet and measuring again`,
        );
        await waitQuiet(0.1, 60_000);
        const again = await session.step(rate, spec.warmupMs, spec.measureMs);
        if (again.serverCoreOtherPct + again.genCoreOtherPct < s.serverCoreOtherPct + s.genCoreOtherPct) s = again;
      }
      steps.push(s);
      ctx.log(
        `    ${+rate.toFixed(1)}/s → ${Math.round(s.deliveriesPerSec)} deliveries/s, p99 ${s.p99} ms, ` +
          `server ${s.serverCpuPct.toFixed(0)}% = ${s.usPerDelivery.toFixed(2)} µs/delivery, generator core ${s.genCoreBusyPct.toFixed(0)}%` +
          (s.lost + s.dup > 0 ? `, lost ${s.lost} dup ${s.dup}` : '') +
          (s.notes.length > 0 ? ` [${s.notes.join('; ')}]` : ''),
      );
      if (spec.stopWhenSaturated && saturated(s)) {
        ctx.log(`    saturated: stopping ${def.label} here`);
        break;
      }
      if (i < spec.rates.length - 1) await sleep(500);
    }
  } finally {
    await session.close();
  }
  return steps;
}

/** Herald's V8 heap in use (`/api/info`), or undefined for the peers. */
async function heraldHeap(def: TargetDef, session: Session): Promise<number | undefined> {
  if (def.server !== 'herald') return undefined;
  try {
    const res = await fetch(`http://127.0.0.1:${session.servers[0]!.port}/api/info`, {
      method: 'POST',
      headers: { Authorization: `apikey ${API_KEY}`, 'Content-Type': 'application/json' },
      body: '{}',
    });
    const info = (await res.json()) as { nodes?: { heapUsedBytes?: number }[] };
    return info.nodes?.[0]?.heapUsedBytes;
  } catch {
    return undefined;
  }
}

/**
 * S4: reads the fresh server's RSS, connects half of the clients, reads RSS once it settled, connects
 * the other half, reads again. The figure per connection is RSS growth from fresh to N over N; the
 * growth from N/2 to N over the clients added is shown beside it.
 */
async function runMemory(spec: ScenarioSpec, def: TargetDef, ctx: RunContext): Promise<MemoryResult> {
  const session = await Session.open(def, sessionOptions(spec, def, ctx));
  try {
    const fresh = await settledRss(session, spec, 1000);
    const before = fresh.rss;
    const half = Math.floor(spec.n / 2);
    const first = await session.connect(0, half);
    const notes: string[] = [];
    // Publications so that every connection has carried traffic (buffers allocated, history kept).
    const warm1 = await session.publishAndWait(3);
    const atHalf = await settledRss(session, spec);
    const heapHalf = await heraldHeap(def, session);
    const second = await session.connect(half, spec.n - half, warm1.published.final);
    const connectMs = first.ms + second.ms;
    const ok = first.ok + second.ok;
    ctx.log(`  ${def.label}: ${ok} subscribed in ${(connectMs / 1000).toFixed(1)} s`);
    if (first.ok === 0 || second.ok === 0) {
      throw new Error(`subscribers could not subscribe: ${[...first.errors, ...second.errors].join('; ')}`);
    }
    if (first.failed + second.failed > 0) notes.push(`${first.failed + second.failed} failed to subscribe`);
    const warm2 = await session.publishAndWait(3);
    // Quick runs (no settling) read it at once: their next reading is only `measureMs` away.
    if (spec.settle !== undefined) await sleep(spec.measureMs);
    const early = rssBytes(session.serverPids());
    const atFull = await settledRss(session, spec);
    const heapFull = await heraldHeap(def, session);
    const lost = warm1.drain.lost + warm2.drain.lost;
    if (lost > 0) notes.push(`${lost} of the warm-up messages did not arrive`);
    if (atFull.settled === false || atHalf.settled === false || fresh.settled === false)
      notes.push('RSS did not settle within the time allowed');
    const r: MemoryResult = {
      target: def.id,
      label: def.label,
      n: spec.n,
      connected: ok,
      connectMs,
      rssBeforeMiB: before / 2 ** 20,
      rssHalfMiB: atHalf.rss / 2 ** 20,
      rssAfterMiB: atFull.rss / 2 ** 20,
      kibPerConnection: (atFull.rss - before) / 1024 / ok,
      kibPerConnectionAdded: (atFull.rss - atHalf.rss) / 1024 / second.ok,
      kibPerConnectionEarly: (early - before) / 1024 / ok,
      ...(atFull.ms !== undefined ? { settledAfterMs: atFull.ms } : {}),
      ...(heapHalf !== undefined && heapFull !== undefined
        ? { heapKibPerConnection: (heapFull - heapHalf) / 1024 / second.ok }
        : {}),
      notes,
    };
    ctx.log(
      `    RSS ${r.rssBeforeMiB.toFixed(1)} → ${r.rssHalfMiB.toFixed(1)} (N/2) → ${r.rssAfterMiB.toFixed(1)} MiB (N): ` +
        `${r.kibPerConnection.toFixed(2)} KiB per connection (${r.kibPerConnectionAdded.toFixed(2)} per connection added)` +
        (r.settledAfterMs !== undefined ? ` (settled after ${(r.settledAfterMs / 1000).toFixed(0)} s)` : ''),
    );
    return r;
  } finally {
    await session.close();
  }
}

/**
 * The servers' RSS once it stopped moving: read every second, at least `settle.minMs`, until five
 * readings in a row lie within 0.5 % (or 256 KiB); at most `settle.maxMs`. Without `settle`, one
 * reading after `unsettledWaitMs` (`measureMs` unless given).
 */
async function settledRss(
  session: Session,
  spec: ScenarioSpec,
  unsettledWaitMs = spec.measureMs,
): Promise<{ rss: number; ms?: number; settled?: boolean }> {
  const settle = spec.settle;
  if (spec.collectGarbage === true) session.collectGarbage();
  if (settle === undefined) {
    await sleep(unsettledWaitMs);
    return { rss: rssBytes(session.serverPids()) };
  }
  const t0 = performance.now();
  const last: number[] = [];
  for (;;) {
    await sleep(1000);
    const rss = rssBytes(session.serverPids());
    last.push(rss);
    if (last.length > 5) last.shift();
    const ms = performance.now() - t0;
    const stable = last.length === 5 && Math.max(...last) - Math.min(...last) <= Math.max(256 * 1024, rss * 0.005);
    if (ms >= settle.minMs && stable) return { rss, ms, settled: true };
    if (ms >= settle.maxMs) return { rss, ms, settled: false };
  }
}

const MISSED = 100;

async function runStorm(spec: ScenarioSpec, def: TargetDef, ctx: RunContext): Promise<StormResult> {
  const session = await Session.open(def, { ...sessionOptions(spec, def, ctx), connectConcurrency: 256 });
  try {
    const ok = await connectOrThrow(session, ctx);
    await session.publishAndWait(1); // each subscriber now holds a cursor
    await session.drop();
    await sleep(2000); // the server sees every connection go
    const missed = await session.burst(MISSED);
    const pids = session.serverPids();
    const cpu0 = cpuSeconds(pids);
    const r = await session.recover(missed.final, 500, 120_000);
    const cpu = cpuSeconds(pids) - cpu0;
    const notes: string[] = [];
    if (r.errors.length > 0) notes.push(r.errors.join('; '));
    const storm: StormResult = {
      target: def.id,
      label: def.label,
      n: ok,
      missed: MISSED,
      recovered: r.recovered,
      failed: r.failed,
      lost: r.lost,
      dup: r.dup,
      ms: r.ms,
      serverCpuSeconds: cpu,
      serverCpuPct: (cpu / (r.ms / 1000)) * 100,
      notes,
    };
    ctx.log(
      `    ${storm.recovered}/${ok} recovered ${MISSED} messages in ${(r.ms / 1000).toFixed(2)} s, ` +
        `server CPU ${cpu.toFixed(2)} s (${storm.serverCpuPct.toFixed(0)}%)` +
        (r.failed + r.lost + r.dup > 0 ? `, failed ${r.failed} lost ${r.lost} dup ${r.dup}` : ''),
    );
    return storm;
  } finally {
    await session.close();
  }
}

// -- S7: several Herald nodes on Redis and on NATS ----------------------------------------------------------------

/** Starts a store S7's nodes share (`kind`: its name, whose first installed binary runs) on the server core. */
async function startStore(
  ctx: RunContext,
  kind: 'redis' | 'nats',
  bins: readonly string[],
  args: (port: number) => string[],
): Promise<RunningServer | string> {
  const name = `${kind}-server`;
  const bin = bins.find((p) => existsSync(p));
  if (bin === undefined) return `${name} is not installed`;
  const port = await freePort();
  const child = spawnPinned(bin, args(port), { cpu: ctx.pin.server, log: `${kind}-${port}.log` });
  try {
    await waitPort(port, 10_000, child);
  } catch (err) {
    await stopChild(child, 2000, 'SIGKILL');
    return `${name} did not start: ${(err as Error).message}`;
  }
  return new RunningServer(kind, port, child);
}

function startRedis(ctx: RunContext): Promise<RunningServer | string> {
  return startStore(ctx, 'redis', ['/usr/bin/redis-server', '/usr/local/bin/redis-server'], (port) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
}

/** A nats-server with JetStream on file storage (a fresh folder in the run's folder). */
function startNats(ctx: RunContext): Promise<RunningServer | string> {
  const bins = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];
  return startStore(ctx, 'nats', bins, (port) => [
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-js',
    '-sd',
    mkdtempSync(join(workDir(), 'nats-')),
  ]);
}

/** The stores S7 runs Herald nodes on, and each one's environment for a node. */
const NODE_ENGINES = [
  {
    name: 'Redis',
    engine: 'redis',
    start: startRedis,
    env: (port: number) => ({ HERALD_ENGINE: 'redis', HERALD_REDIS_URLS: `redis://127.0.0.1:${port}` }),
  },
  {
    name: 'NATS',
    engine: 'nats',
    start: startNats,
    env: (port: number) => ({ HERALD_ENGINE: 'nats', HERALD_NATS_SERVERS: `nats://127.0.0.1:${port}` }),
  },
] as const;

async function runNodes(spec: ScenarioSpec, ctx: RunContext, result: ScenarioResult): Promise<void> {
  const def = target('herald-ws');
  for (const store of NODE_ENGINES) {
    const skip = (reason: string): void => {
      ctx.log(`  S7 on ${store.name} skipped: ${reason}`);
      result.skipped.push({ target: `herald-${store.engine}`, reason });
    };
    for (const nodes of [1, 3]) {
      const backend = await store.start(ctx);
      if (typeof backend === 'string') {
        skip(backend);
        break;
      }
      const servers: RunningServer[] = [];
      try {
        for (let i = 0; i < nodes; i++)
          servers.push(await startServer('herald', { cpu: ctx.pin.server, heraldEnv: store.env(backend.port) }));
        const session = await Session.open(def, { ...sessionOptions(spec, def, ctx), server: {} }, servers, [backend]);
        try {
          await connectOrThrow(session, ctx);
          await session.publishAndWait(1);
          await sleep(1000);
          for (const rate of spec.rates) {
            const s = await session.step(rate, spec.warmupMs, spec.measureMs);
            const id = `herald-${nodes}-${store.engine}`;
            result.steps.push({ ...s, target: id, label: `Herald ×${nodes} ${store.name}` });
            ctx.log(
              `    ${nodes} node(s) on ${store.name}: ${Math.round(s.deliveriesPerSec)} deliveries/s, p99 ${s.p99} ms, ${s.usPerDelivery.toFixed(2)} µs/delivery (nodes + ${store.name})`,
            );
          }
        } finally {
          await session.close(false);
        }
      } catch (err) {
        skip(`${nodes} node(s) on ${store.name} failed: ${(err as Error).message}`);
        break;
      } finally {
        for (const srv of servers) await srv.stop();
        await backend.stop();
      }
    }
  }
  // One node on the memory engine, for reference.
  const memory = await runRates(spec, def, ctx);
  result.steps.unshift(...memory.map((s) => ({ ...s, target: 'herald-1-memory', label: 'Herald ×1 memory' })));
}
