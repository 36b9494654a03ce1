/**
 * Starting the processes of a run: servers pinned to one core, the load generator to the other,
 * each with its file-descriptor limit raised to the hard limit (10,000 connections need more than the
 * usual soft limit of 1024). Every child is stopped by its own pid.
 */
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { waitExit } from './ipc.js';

/** Cores for the server and for the load generator, or none when there is a single core. */
export interface Pinning {
  readonly server: number | undefined;
  readonly generator: number | undefined;
}

export function pinning(): Pinning {
  const taskset = ['/usr/bin/taskset', '/bin/taskset'].some((p) => existsSync(p));
  return taskset && availableParallelism() >= 2
    ? { server: 0, generator: 1 }
    : { server: undefined, generator: undefined };
}

/** A process's name and parent, from `/proc` (undefined when it is gone). */
function procInfo(pid: number): { comm: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    return { comm, ppid };
  } catch {
    return undefined;
  }
}

/**
 * Moves the orchestrator to `cpu` with every one of its threads, and the `npm run` processes (and
 * the `sh` between them) that started it. `taskset -p` alone moves only a process's main thread:
 * the orchestrator's V8 and libuv threads and the npm processes relaying its output then ran on the
 * server's core now and then, a few milliseconds at a time (seen with `perf record -e
 * sched:sched_switch` on that core). The walk up stops at the first other process (the user's shell).
 */
export function pinOrchestrator(cpu: number): void {
  const pids = [process.pid];
  let pid = process.ppid;
  for (let depth = 0; depth < 10 && pid > 1; depth++) {
    const info = procInfo(pid);
    if (info === undefined) break;
    const npm = info.comm.startsWith('npm');
    const shellOfNpm = info.comm === 'sh' && (procInfo(info.ppid)?.comm.startsWith('npm') ?? false);
    if (!npm && !shellOfNpm) break;
    pids.push(pid);
    pid = info.ppid;
  }
  for (const p of pids) {
    try {
      execFileSync('taskset', ['-a', '-pc', String(cpu), String(p)], { stdio: 'ignore' });
    } catch {
      // gone, or not ours to move: the figures are only a little noisier
    }
  }
}

/** Every child still running, so that none outlives the orchestrator (Ctrl-C, a crash, a timeout). */
const live = new Set<ChildProcess>();
let cleanupInstalled = false;

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      for (const child of live) child.kill('SIGTERM');
      setTimeout(() => process.exit(130), 1000).unref();
    });
  }
}

let runDir: string | undefined;

/** A per-run folder for logs, configs and profiles. */
export function workDir(): string {
  if (runDir === undefined) {
    runDir = join(tmpdir(), `herald-bench-${process.pid}`);
    mkdirSync(runDir, { recursive: true });
  }
  return runDir;
}

export interface SpawnOptions {
  readonly cpu: number | undefined;
  /** Log file name (in `workDir()`) for stdout and stderr; inherited when absent. */
  readonly log?: string;
  readonly ipc?: boolean;
  /** stdin and stdout as pipes to the parent (stderr goes to the log, or is inherited). */
  readonly pipes?: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
}

/** Spawns `cmd args` through `bash -c 'ulimit -n <hard>; exec taskset -c <cpu> cmd args'`. */
export function spawnPinned(cmd: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
  const pin = opts.cpu === undefined ? [] : ['taskset', '-c', String(opts.cpu)];
  let fd: number | undefined;
  if (opts.log !== undefined) fd = openSync(join(workDir(), opts.log), 'a');
  const out = fd ?? 'inherit';
  const stdio: Exclude<StdioOptions, string> = opts.pipes === true ? ['pipe', 'pipe', out] : ['ignore', out, out];
  if (opts.ipc === true) stdio.push('ipc');
  const child = spawn(
    'bash',
    ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'bench', ...pin, cmd, ...args],
    {
      stdio,
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    },
  );
  if (fd !== undefined) closeSync(fd);
  installCleanup();
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once `port` accepts a TCP connection; rejects after `timeoutMs` or when `child` exits. */
export async function waitPort(port: number, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (child !== undefined && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`process exited (${child.exitCode ?? child.signalCode}) before listening on ${port}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM (or `signal`) to the child's own pid, then SIGKILL after `timeoutMs`. */
export async function stopChild(
  child: ChildProcess,
  timeoutMs = 15_000,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  await waitExit(child, timeoutMs);
}
