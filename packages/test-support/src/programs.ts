/**
 * Test support for tests that drive programs nobody here wrote (curl, nginx, python3, chromium):
 * finding them (a missing one skips the test, except under CI=true where it fails), child processes
 * whose output is awaited with timeouts, temporary directories, a self-signed certificate.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withTimeout } from './wait.js';
import { Inbox } from './inbox.js';

export const CI = process.env['CI'] === 'true';

/** The absolute path of a program on PATH (or one of `extra`), else undefined. */
export function findProgram(name: string, extra: readonly string[] = []): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const found = r.status === 0 ? r.stdout.trim() : '';
  if (found !== '') return found;
  for (const p of extra) if (spawnSync('test', ['-x', p]).status === 0) return p;
  return undefined;
}

/**
 * What a test needing a program should do: `run` (it is there), `skip` (not there, not CI), or
 * `fail` (not there under CI=true). `title` is the describe title, saying why it is skipped.
 */
export function needProgram(
  found: string | undefined,
  what: string,
  install: string,
): { mode: 'run' | 'skip' | 'fail'; title: (t: string) => string; missing: string } {
  const missing = `${what} is not installed (${install}); CI=true requires it`;
  const mode = found !== undefined ? 'run' : CI ? 'fail' : 'skip';
  return {
    mode,
    title: (t) => (mode === 'skip' ? `${t} [skipped: ${what} is not installed: ${install}]` : t),
    missing,
  };
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `herald-${prefix}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * A self-signed P-256 certificate for `localhost` and 127.0.0.1 (made with the openssl CLI) in
 * `dir`: returns the file paths and the certificate's PEM (for clients' `ca`).
 */
export function selfSignedCert(dir: string): { cert: string; key: string; pem: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl failed (${r.status}): ${r.stderr}`);
  return { cert, key, pem: readFileSync(cert, 'utf8') };
}

/** A child process whose stdout and stderr are kept, as text and as lines, to await on. */
export class Child {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly out = new Inbox<string>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private partial = '';

  constructor(command: string, args: readonly string[], opts: { cwd?: string; input?: string } = {}) {
    this.proc = spawn(command, args, { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdout?.setEncoding('utf8');
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stdout?.on('data', (text: string) => {
      this.stdout += text;
      this.partial += text;
      let nl;
      while ((nl = this.partial.indexOf('\n')) !== -1) {
        this.out.push(this.partial.slice(0, nl).replace(/\r$/, ''));
        this.partial = this.partial.slice(nl + 1);
      }
    });
    this.proc.stderr?.on('data', (text: string) => (this.stderr += text));
    this.exited = new Promise((resolve) => this.proc.once('close', (code, signal) => resolve({ code, signal })));
    this.proc.stdin?.end(opts.input ?? '');
  }

  /** Resolves with the first stdout line that matches. */
  line(match: (line: string) => boolean, what: string, ms = 5000): Promise<string> {
    return this.out.waitFor(match, what, ms).catch((err: unknown) => {
      throw new Error(
        `${(err as Error).message}\n--- stdout:\n${this.stdout.slice(-2000)}\n--- stderr:\n${this.stderr.slice(-2000)}`,
      );
    });
  }

  /** Waits for the process to exit by itself; fails with its output after `ms`. */
  async finished(ms: number, what: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    try {
      return await withTimeout(this.exited, ms, what);
    } catch (err) {
      this.kill();
      throw new Error(
        `${(err as Error).message}\n--- stdout:\n${this.stdout.slice(-2000)}\n--- stderr:\n${this.stderr.slice(-2000)}`,
      );
    }
  }

  /** Stops the process (SIGTERM, then SIGKILL after 2 s) and waits for it. */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.kill('SIGTERM');
    const t = setTimeout(() => this.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(t);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
  }
}
