/**
 * The built `herald` CLI (packages/server/dist/cli/main.js) as a child process, for the cli-*
 * tests: run it to completion, or start it and await what it prints. The environment is clean of
 * HERALD_URL, HERALD_API_KEY and HERALD_TOKEN, and says whether to act as on a terminal
 * (HERALD_CLI_TTY, `tty`; default: not a terminal, as a pipe is).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI } from '@herald/test-support/server';
import { until, withTimeout } from '@herald/test-support';

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  /** Act as on a terminal (HERALD_CLI_TTY=1). */
  tty?: boolean;
  /** Written to stdin, which is then closed. */
  input?: string;
}

function environment(opts: CliOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HERALD_CLI_TTY: opts.tty === true ? '1' : '0', ...opts.env };
  for (const name of ['HERALD_URL', 'HERALD_API_KEY', 'HERALD_TOKEN']) {
    if (opts.env?.[name] === undefined) delete env[name];
  }
  return env;
}

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npx tsc -b packages/server" first`);
}

/** A running CLI whose output is kept as it comes. */
export class CliProcess {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[], opts: CliOptions = {}) {
    this.proc = spawn(process.execPath, [CLI, ...args], { env: environment(opts), stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdout?.setEncoding('utf8');
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stdout?.on('data', (t: string) => (this.stdout += t));
    this.proc.stderr?.on('data', (t: string) => (this.stderr += t));
    this.exited = new Promise((resolve) => this.proc.once('close', (code, signal) => resolve({ code, signal })));
    this.proc.stdin?.end(opts.input ?? '');
  }

  /** Resolves once `cond(this)` holds; fails with the output so far after `ms`. */
  async waitFor(cond: (p: CliProcess) => boolean, what: string, ms = 10_000): Promise<void> {
    try {
      await until(() => cond(this) || this.proc.exitCode !== null || this.proc.signalCode !== null, what, ms);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.dump()}`);
    }
    if (!cond(this)) throw new Error(`the CLI exited before ${what}\n${this.dump()}`);
  }

  /** Waits for it to exit by itself. */
  async finished(ms = 15_000): Promise<CliRun> {
    try {
      const { code, signal } = await withTimeout(this.exited, ms, 'the CLI to exit');
      return { code, signal, stdout: this.stdout, stderr: this.stderr };
    } catch (err) {
      this.kill();
      throw new Error(`${(err as Error).message}\n${this.dump()}`);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }

  dump(): string {
    return `--- stdout:\n${this.stdout.slice(-2000)}\n--- stderr:\n${this.stderr.slice(-2000)}`;
  }
}

/** Runs the CLI to completion. */
export function runHerald(args: readonly string[], opts: CliOptions = {}): Promise<CliRun> {
  return new CliProcess(args, opts).finished();
}
