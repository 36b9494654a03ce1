/**
 * A Herald node in a child process (`node packages/server/dist/cli/main.js serve`), for tests that
 * kill a node with SIGKILL. Needs the build (`npm test` runs it first as `pretest`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { API_KEY } from './harness.js';
import { withTimeout } from './wait.js';

/** The built `herald` CLI of packages/server. */
export const CLI = fileURLToPath(new URL('../../server/dist/cli/main.js', import.meta.url));

export interface ChildNode {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly wsUrl: string;
  /** Everything the process wrote, for failure messages. */
  output(): string;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
}

export async function startChildNode(args: string[], env: Record<string, string> = {}): Promise<ChildNode> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run "npm run build" first (npm test does it)`);
  // One process per node (no --workers supervisor): a SIGKILL takes the whole node down.
  const serve = ['serve', '--workers', '1', '--host', '127.0.0.1', '--port', '0', '--api-key', API_KEY];
  const proc = spawn(process.execPath, [CLI, ...serve, '--log-level', 'warn', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      const onData = (): void => {
        const m = /ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(out);
        if (m) resolve(Number(m[1]));
      };
      proc.stdout.on('data', onData);
      void exited.then((code) => reject(new Error(`herald exited with ${code} before listening:\n${out}`)));
    }),
    15_000,
    'the child node to listen',
  );
  return {
    proc,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    output: () => out,
    kill: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** Runs the CLI to completion; returns its exit code and output. */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  ms = 15_000,
): Promise<{ code: number | null; output: string }> {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await withTimeout(
    new Promise<number | null>((resolve) => proc.on('exit', resolve)),
    ms,
    'the CLI to exit',
  );
  return { code, output };
}
