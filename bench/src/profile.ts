/**
 * Summarises a V8 CPU profile (`node --cpu-prof`) of Herald: self time by function and by file, and
 * inclusive time of the busiest functions, optionally only over the measured windows of the steps
 * (profile timestamps are CLOCK_MONOTONIC microseconds, the clock of `process.hrtime`).
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A time window in microseconds of CLOCK_MONOTONIC. */
export interface Window {
  readonly startUs: number;
  readonly endUs: number;
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const m = /\/(packages\/[^/]+\/(?:dist|src)\/.*)$/.exec(url) ?? /node_modules\/(.*)$/.exec(url);
  if (m !== null) return m[1]!;
  return url.replace(/^file:\/\//, '');
}

function key(f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  const file = shortUrl(f.url);
  return file === '' ? name : `${name} ${file}:${f.lineNumber + 1}`;
}

function fileKey(f: CallFrame): string {
  const file = shortUrl(f.url);
  if (file !== '') return file;
  return f.functionName.startsWith('(') ? f.functionName : '(native / builtin)';
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly windowed: boolean;
  readonly selfByFunction: readonly [string, number][];
  readonly selfByFile: readonly [string, number][];
  readonly inclusive: readonly [string, number][];
}

export function summarize(file: string, windows: readonly Window[] = []): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  let t = prof.startTime;
  let total = 0;
  let inWindow = 0;
  const inside = (ts: number): boolean => windows.some((w) => ts >= w.startUs && ts <= w.endUs);
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    t += dt;
    total += dt;
    if (windows.length > 0 && !inside(t)) continue;
    inWindow += dt;
    const id = prof.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const windowed = windows.length > 0 && inWindow > 0;
  if (windows.length > 0 && inWindow === 0) return summarize(file, []);
  const selfFn = new Map<string, number>();
  const selfFile = new Map<string, number>();
  const incl = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    selfFn.set(key(node.callFrame), (selfFn.get(key(node.callFrame)) ?? 0) + us);
    selfFile.set(fileKey(node.callFrame), (selfFile.get(fileKey(node.callFrame)) ?? 0) + us);
    // Inclusive: charge every distinct function on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  const sum = windowed ? inWindow : total;
  const top = (m: Map<string, number>, n: number): [string, number][] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => [k, (us / sum) * 100]);
  return {
    totalMs: sum / 1000,
    windowed,
    selfByFunction: top(selfFn, 30),
    selfByFile: top(selfFile, 20),
    inclusive: top(new Map([...incl].filter(([k]) => k.includes('packages/') || k.includes('node_modules/ws'))), 25),
  };
}

export function profileMarkdown(p: ProfileSummary, file: string): string {
  const table = (title: string, rows: readonly [string, number][]): string =>
    [
      `**${title}**`,
      '',
      '| % | function / file |',
      '|---:|---|',
      ...rows.map(([k, v]) => `| ${v.toFixed(1)} | \`${k.replace(/\|/g, '\\|')}\` |`),
    ].join('\n');
  return [
    `Profile: \`${file}\`, ${p.totalMs.toFixed(0)} ms of samples ${p.windowed ? 'inside the measured windows' : 'over the whole run'}.`,
    '',
    table('Self time by file', p.selfByFile),
    '',
    table('Self time by function', p.selfByFunction),
    '',
    table('Inclusive time (Herald and ws functions)', p.inclusive),
  ].join('\n');
}
