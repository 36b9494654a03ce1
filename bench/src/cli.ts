/**
 * `npm run bench -- <scenario> [options]`: runs a scenario against Herald and its peers, prints the
 * tables, and writes `bench/results/<date>-<scenario>.md` with an SVG chart.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pinOrchestrator, pinning, workDir } from './launch.js';
import { machine } from './machine.js';
import { loadAverage, waitQuiet } from './proc.js';
import { profileMarkdown, summarize } from './profile.js';
import { heapMarkdown, heapReport } from './heap.js';
import { backendMarkdown, backendReport } from './backend.js';
import { SLOW_VARIANTS, slowMarkdown, slowReport, type SlowOptions, type SlowVariant } from './slow-consumer.js';
import { nativeSubscriber } from './native.js';
import { markdownReport, terminalReport } from './report.js';
import { SCENARIO_IDS, runScenario, scenario, type ScenarioResult, type ScenarioSpec } from './scenarios.js';
import { rateChart } from './svg.js';
import { REPO_ROOT, TARGETS } from './targets.js';

const USAGE = `usage: npm run bench -- <scenario...> [options]
scenarios: ${SCENARIO_IDS.join(', ')}, quick (S2 + S4 at N=2,000, no Faye), all (S1-S7)
           profile <file.cpuprofile>   summarise a CPU profile
           heap [--targets herald-ws,herald-sse] [--n 2000]
                                       heap per idle connection, by constructor and owner
           backend [--measure 8]       publishes/s from one backend process: @herald/api's
                                       keep-alive pool and its /api/ws WebSocket against a new
                                       connection per publish
           slow [--n 5000] [--rates 1000] [--slow-pct 1] [--slow-read KIB] [--channels 100]
                [--keep 100] [--max-queue BYTES] [--policies none,disconnect,drop-oldest,latest-only]
                                       fast subscribers' latency and server memory while 1 % of
                                       the subscribers read slowly, per slowConsumer policy
options:
  --n N              subscribers (default 10000; quick: 2000)
  --targets a,b      only these targets (${TARGETS.map((t) => t.id).join(', ')})
  --measure S        seconds measured per step (default: per scenario)
  --rates a,b,...    publications per second of each step (default: per scenario)
  --warmup S         seconds of warm-up before each measured window (default: per scenario)
  --settle S         S4: wait at least S seconds for RSS to settle before each reading (default 5,
                     then until it holds still for 5 s; quick and 0: read after --measure seconds)
  --profile          run Herald with --cpu-prof and summarise where its time goes
  --retries K        measure a step again up to K times when other processes used the cores (default 2)
  --rounds K         rate scenarios and slow: run every target (policy) K times, round after round,
                     and judge by the median of each one's rounds (default 1; 3 or 5 for a verdict
                     within the noise)
  --wait-quiet MIN   first wait up to MIN minutes for the machine to be quiet (< 10 % busy)
  --generator G      auto (default): the native subscriber (bench/native/subscriber.c, built with cc)
                     for the rate scenarios, the Node one for S4, S6 and long-polling; node: always Node
  --payload BYTES    payload size (default: ~40 bytes: sequence number and timestamp)
  --no-save          print only; write nothing to bench/results/
  --out DIR          results folder (default bench/results)`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      n: { type: 'string' },
      targets: { type: 'string' },
      measure: { type: 'string' },
      warmup: { type: 'string' },
      rates: { type: 'string' },
      profile: { type: 'boolean', default: false },
      payload: { type: 'string' },
      retries: { type: 'string' },
      rounds: { type: 'string' },
      'wait-quiet': { type: 'string' },
      settle: { type: 'string' },
      generator: { type: 'string', default: 'auto' },
      'slow-pct': { type: 'string' },
      'slow-read': { type: 'string' },
      channels: { type: 'string' },
      keep: { type: 'string' },
      'max-queue': { type: 'string' },
      policies: { type: 'string' },
      'no-save': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help || positionals.length === 0) {
    console.log(USAGE);
    return positionals.length === 0 && !values.help ? 2 : 0;
  }
  if (positionals[0] === 'heap') {
    const n = values.n !== undefined ? Number(values.n) : 2000;
    if (!Number.isInteger(n) || n < 1 || n > 15_000) throw new Error('--n must be an integer from 1 to 15000');
    for (const id of values.targets?.split(',') ?? ['herald-ws', 'herald-sse']) {
      console.log(heapMarkdown(await heapReport(id.trim(), n, pinning(), (line) => console.log(line))));
    }
    return 0;
  }
  if (positionals[0] === 'backend') {
    const seconds = values.measure !== undefined ? Number(values.measure) : 8;
    const m = machine(REPO_ROOT);
    console.log(`backend publishing, ${seconds} s per client (Herald on core ${pinning().server ?? 'any'})`);
    const rows = await backendReport(pinning(), seconds, (line) => console.log(line));
    m.loadAfter = loadAverage();
    const md = backendMarkdown(rows, seconds);
    console.log(`\n${md}`);
    if (!values['no-save']) {
      const dir = values.out ?? join(REPO_ROOT, 'bench', 'results');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${m.date.slice(0, 10)}-backend.md`);
      const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`;
      writeFileSync(
        file,
        `# Benchmark results: backend publishing\n\n| | |\n|---|---|\n| date | ${m.date} |\n| command | \`${command}\` |\n| machine | ${m.nproc} cores, ${m.cpu}, ${Math.round(m.memGiB)} GiB |\n| Node | ${m.node} |\n| commit | ${m.commit} |\n\n${md}`,
      );
      console.log(`results: ${file}`);
    }
    return 0;
  }
  if (positionals[0] === 'slow') return slowMain(values);
  if (positionals[0] === 'profile') {
    const file = positionals[1];
    if (file === undefined) throw new Error('usage: npm run bench -- profile <file.cpuprofile>');
    console.log(profileMarkdown(summarize(file), file));
    return 0;
  }
  const quick = positionals.includes('quick');
  const ids = positionals.flatMap((p) => (p === 'all' ? [...SCENARIO_IDS] : p === 'quick' ? ['s2', 's4'] : [p]));
  const n = values.n !== undefined ? Number(values.n) : quick ? 2000 : 10_000;
  if (!Number.isInteger(n) || n < 1 || n > 15_000)
    throw new Error('--n must be an integer from 1 to 15000 (file descriptors)');
  const targets = values.targets?.split(',').map((s) => s.trim());
  const seconds = (v: string | undefined, fallback: number): number => (v === undefined ? fallback : Number(v) * 1000);
  const specs: ScenarioSpec[] = ids.map((id) => {
    let spec = scenario(id, n, targets);
    if (quick) {
      // Faye's slow handshakes alone would take the quick run past two minutes; it is in the full scenarios.
      const quickTargets = targets === undefined ? spec.targets.filter((t) => t !== 'faye') : spec.targets;
      spec = {
        ...spec,
        targets: quickTargets,
        warmupMs: 1000,
        measureMs: spec.kind === 'rates' ? 4000 : 2000,
        settle: undefined,
      };
    }
    if (values.settle !== undefined) {
      const min = Number(values.settle) * 1000;
      if (!(min >= 0)) throw new Error('--settle must be a number of seconds >= 0');
      spec = { ...spec, settle: min === 0 ? undefined : { minMs: min, maxMs: Math.max(30_000, 2 * min) } };
    }
    const rates = values.rates?.split(',').map(Number) ?? spec.rates;
    if (rates.some((r) => !(r > 0))) throw new Error('--rates must be positive numbers');
    const rounds = values.rounds !== undefined ? Number(values.rounds) : 1;
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 9)
      throw new Error('--rounds must be an integer from 1 to 9');
    return {
      ...spec,
      rounds,
      rates: spec.kind === 'rates' || spec.kind === 'nodes' ? rates : spec.rates,
      warmupMs: seconds(values.warmup, spec.warmupMs),
      measureMs: seconds(values.measure, spec.measureMs),
    };
  });

  const pin = pinning();
  const log = (line: string): void => console.log(line);
  if (pin.generator !== undefined) {
    // The orchestrator sits with the load generator, away from the server's core.
    pinOrchestrator(pin.generator);
  } else
    log('warning: no pinning (one core, or no taskset): server and load generator share cores; figures are indicative');
  const m = machine(REPO_ROOT);
  log(`machine: ${m.nproc} cores, ${m.cpu}, Node ${m.node}, commit ${m.commit}, load ${m.loadBefore.toFixed(2)}`);
  if (m.loadBefore > 0.5)
    log(`warning: load average ${m.loadBefore.toFixed(2)}: other work is running, figures will be noisy`);
  log(`server on core ${pin.server ?? '-'}, load generator on core ${pin.generator ?? '-'}; logs in ${workDir()}`);

  if (values['wait-quiet'] !== undefined) {
    log(`waiting up to ${values['wait-quiet']} min for a quiet machine ...`);
    const busy = await waitQuiet(0.1, Number(values['wait-quiet']) * 60_000);
    log(`machine ${(busy * 100).toFixed(0)}% busy: starting`);
  }
  const profileDir = values.profile ? join(workDir(), 'profiles') : undefined;
  if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
  const generator = values.generator;
  if (generator !== 'auto' && generator !== 'node' && generator !== 'native')
    throw new Error('--generator must be auto, native or node');
  const native = generator === 'node' ? undefined : nativeSubscriber();
  if (native !== undefined && 'error' in native) log(`warning: no native subscriber: ${native.error}`);
  const nativePath = native !== undefined && 'path' in native ? native.path : undefined;
  const payloadBytes = values.payload !== undefined ? Number(values.payload) : 0;
  const results: ScenarioResult[] = [];
  for (const spec of specs) {
    log(`\n${spec.title}: N = ${spec.n}`);
    const retries = values.retries !== undefined ? Number(values.retries) : 2;
    const r = await runScenario(spec, {
      pin,
      log,
      profileDir,
      payloadBytes,
      retries,
      generator,
      ...(nativePath !== undefined ? { nativeSubscriber: nativePath } : {}),
    });
    results.push(r);
    console.log(terminalReport(r));
  }
  m.loadAfter = loadAverage();

  let profile: string | undefined;
  if (profileDir !== undefined) {
    const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
    const windows = results.flatMap((r) => r.steps.filter((s) => s.target.startsWith('herald')).map((s) => s.window));
    profile = files
      .map((f) => profileMarkdown(summarize(join(profileDir, f), windows), join(profileDir, f)))
      .join('\n\n');
    if (profile !== '') console.log(`\n${profile}`);
  }

  if (!values['no-save']) {
    const dir = values.out ?? join(REPO_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const base = `${m.date.slice(0, 10)}-${quick ? 'quick' : ids.join('-')}${n !== 10_000 && !quick ? `-n${n}` : ''}`;
    // A second run the same day gets its own files (-2, -3, ...) instead of replacing the first.
    let stem = base;
    for (let i = 2; existsSync(join(dir, `${stem}.md`)); i++) stem = `${base}-${i}`;
    const charts = new Map<string, string>();
    for (const r of results) {
      if (r.steps.length === 0) continue;
      const svg = `${stem}-${r.spec.id}.svg`;
      writeFileSync(join(dir, svg), rateChart(`${r.spec.title} — N = ${r.spec.n}`, r.steps));
      charts.set(r.spec.id, svg);
    }
    const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`;
    const file = join(dir, `${stem}.md`);
    writeFileSync(file, markdownReport(results, m, command, charts, profile));
    writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify({ machine: m, results }, null, 1)}\n`);
    log(`\nresults: ${file}`);
  }
  return 0;
}

/** `npm run bench -- slow`: see slow-consumer.ts. */
async function slowMain(values: Record<string, string | boolean | undefined>): Promise<number> {
  const num = (name: string, fallback: number, min: number, max: number): number => {
    const raw = values[name];
    const v = typeof raw === 'string' ? Number(raw) : fallback;
    if (!(v >= min && v <= max)) throw new Error(`--${name} must be a number from ${min} to ${max}`);
    return v;
  };
  const variants = (typeof values['policies'] === 'string' ? values['policies'].split(',') : [...SLOW_VARIANTS]).map(
    (v) => v.trim(),
  );
  const unknown = variants.find((v) => !(SLOW_VARIANTS as readonly string[]).includes(v));
  if (unknown !== undefined) throw new Error(`--policies: unknown "${unknown}" (known: ${SLOW_VARIANTS.join(', ')})`);
  const pin = pinning();
  if (pin.generator !== undefined) pinOrchestrator(pin.generator);
  const generator = values['generator'];
  const native = generator === 'node' ? undefined : nativeSubscriber();
  const nativePath = native !== undefined && 'path' in native ? native.path : undefined;
  const o: SlowOptions = {
    pin,
    n: Math.round(num('n', 5000, 2, 15_000)),
    slowPct: num('slow-pct', 1, 0.01, 50),
    rate: num('rates', 1000, 1, 100_000),
    channels: Math.round(num('channels', 100, 1, 120)),
    slowBytesPerSec: num('slow-read', 10, 0.1, 100_000) * 1024,
    keep: Math.round(num('keep', 100, 1, 10_000)),
    ...(typeof values['max-queue'] === 'string'
      ? { maxQueueBytes: Math.round(num('max-queue', 0, 1024, 2 ** 31)) }
      : {}),
    warmupMs: num('warmup', 10, 0, 600) * 1000,
    measureMs: num('measure', 15, 1, 600) * 1000,
    payloadBytes: num('payload', 0, 0, 1 << 20),
    variants: variants as SlowVariant[],
    rounds: Math.round(num('rounds', 1, 1, 9)),
    ...(nativePath !== undefined ? { nativeSubscriber: nativePath } : {}),
  };
  const m = machine(REPO_ROOT);
  console.log(
    `slow consumers: ${m.nproc} cores, ${m.cpu}, Node ${m.node}, commit ${m.commit}, load ${m.loadBefore.toFixed(2)}`,
  );
  const rows = await slowReport(o, (line) => console.log(line));
  m.loadAfter = loadAverage();
  const md = slowMarkdown(rows, o);
  console.log(`\n${md}`);
  if (values['no-save'] !== true) {
    const dir = typeof values['out'] === 'string' ? values['out'] : join(REPO_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const base = `${m.date.slice(0, 10)}-slow`;
    let stem = base;
    for (let i = 2; existsSync(join(dir, `${stem}.md`)); i++) stem = `${base}-${i}`;
    const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`;
    writeFileSync(
      join(dir, `${stem}.md`),
      `# Benchmark results: slow consumers\n\n| | |\n|---|---|\n| date | ${m.date} |\n| command | \`${command}\` |\n| machine | ${m.nproc} cores, ${m.cpu}, ${Math.round(m.memGiB)} GiB |\n| Node | ${m.node} |\n| commit | ${m.commit} |\n\n${md}`,
    );
    writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify({ machine: m, options: o, rows }, null, 1)}\n`);
    console.log(`results: ${join(dir, `${stem}.md`)}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
