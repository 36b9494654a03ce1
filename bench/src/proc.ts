/**
 * Process and core accounting from /proc (Linux): CPU time (utime + stime) and RSS of a process tree
 * (Nchan is an nginx master with a worker), and busy time per core from /proc/stat.
 */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | undefined;

/** Clock ticks per second of /proc times (`getconf CLK_TCK`, 100 on Linux). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The pid and all its descendants that are alive. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number): void => {
    out.push(p);
    const tasks = readOr(`/proc/${p}/task/${p}/children`);
    if (tasks === undefined) return;
    for (const c of tasks.trim().split(/\s+/)) if (c !== '') visit(Number(c));
  };
  visit(pid);
  return out;
}

/** CPU seconds used so far by the processes, in user mode and in the kernel. */
export function cpuTimes(pids: readonly number[]): { user: number; system: number } {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const stat = readOr(`/proc/${pid}/stat`);
    if (stat === undefined) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    user += Number(fields[11]);
    system += Number(fields[12]);
  }
  return { user: user / ticksPerSecond(), system: system / ticksPerSecond() };
}

/**
 * Read and write system calls made so far by the processes (`syscr`, `syscw` of /proc/<pid>/io),
 * and the bytes they passed to write system calls (`wchar`: sockets included, so what a server
 * sent its clients, plus a little logging).
 */
export function syscalls(pids: readonly number[]): { reads: number; writes: number; bytesWritten: number } {
  let reads = 0;
  let writes = 0;
  let bytesWritten = 0;
  for (const pid of pids) {
    const io = readOr(`/proc/${pid}/io`);
    if (io === undefined) continue;
    reads += Number(/^syscr: (\d+)/m.exec(io)?.[1] ?? 0);
    writes += Number(/^syscw: (\d+)/m.exec(io)?.[1] ?? 0);
    bytesWritten += Number(/^wchar: (\d+)/m.exec(io)?.[1] ?? 0);
  }
  return { reads, writes, bytesWritten };
}

/** CPU seconds (user + system) used so far by the processes. */
export function cpuSeconds(pids: readonly number[]): number {
  const t = cpuTimes(pids);
  return t.user + t.system;
}

/** Resident set size in bytes (VmRSS), summed over the processes. */
export function rssBytes(pids: readonly number[]): number {
  let kib = 0;
  for (const pid of pids) {
    const status = readOr(`/proc/${pid}/status`);
    const m = status === undefined ? null : /^VmRSS:\s+(\d+) kB/m.exec(status);
    if (m !== null) kib += Number(m[1]);
  }
  return kib * 1024;
}

/** Busy and total jiffies per core, from /proc/stat. */
export function coreTimes(): { busy: number; total: number }[] {
  const out: { busy: number; total: number }[] = [];
  for (const line of (readOr('/proc/stat') ?? '').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (m === null) continue;
    const v = m[2]!.trim().split(/\s+/).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    out[Number(m[1])] = { busy: total - idle, total };
  }
  return out;
}

/** Busy fraction (0..1) of each core between two `coreTimes()` snapshots. */
export function coreBusy(
  a: readonly { busy: number; total: number }[],
  b: readonly { busy: number; total: number }[],
): number[] {
  return b.map((x, i) => {
    const y = a[i];
    if (y === undefined || x.total === y.total) return 0;
    return (x.busy - y.busy) / (x.total - y.total);
  });
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number((readOr('/proc/loadavg') ?? '0').split(' ')[0]);
}

/** Busy fraction of the whole machine over `ms`. */
export async function machineBusy(ms: number): Promise<number> {
  const a = coreTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = coreTimes();
  const busy = coreBusy(a, b);
  return busy.length === 0 ? 0 : busy.reduce((x, y) => x + y, 0) / busy.length;
}

/**
 * Waits until the machine is quiet (under `limit` busy over a 2 s sample), at most `maxMs`.
 * Returns the last busy fraction seen.
 */
export async function waitQuiet(limit: number, maxMs: number): Promise<number> {
  const t0 = Date.now();
  let busy = await machineBusy(2000);
  while (busy > limit && Date.now() - t0 < maxMs) busy = await machineBusy(2000);
  return busy;
}
