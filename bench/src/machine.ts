/** What a result was measured on: cores, CPU, Node, the commit, and how busy the machine was. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { loadAverage } from './proc.js';

export interface Machine {
  readonly date: string;
  readonly nproc: number;
  readonly cpu: string;
  readonly memGiB: number;
  readonly node: string;
  readonly commit: string;
  readonly loadBefore: number;
  loadAfter: number;
}

function sh(cmd: string, args: readonly string[], cwd?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export function machine(repoRoot: string): Machine {
  const cpuinfo = (() => {
    try {
      return readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return '';
    }
  })();
  const meminfo = (() => {
    try {
      return readFileSync('/proc/meminfo', 'utf8');
    } catch {
      return '';
    }
  })();
  const commit = sh('git', ['rev-parse', '--short', 'HEAD'], repoRoot);
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no'], repoRoot) !== '';
  return {
    date: new Date().toISOString(),
    nproc: cpus().length,
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memGiB: Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 2 ** 20,
    node: process.version,
    commit: commit === '' ? 'unknown' : `${commit}${dirty ? ' (with uncommitted changes)' : ''}`,
    loadBefore: loadAverage(),
    loadAfter: 0,
  };
}
