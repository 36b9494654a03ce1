/**
 * Test support for Debian's HAProxy in front of Herald: haproxy as a child process in the
 * foreground (`-db`), its configuration in a temporary directory, on a free loopback port. A missing
 * haproxy skips the test, except under CI=true where it fails.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, Child, findProgram, freePort, needProgram, until } from '@herald/test-support';

export const haproxyPath = findProgram('haproxy', ['/usr/sbin/haproxy']);
export const needHaproxy = needProgram(haproxyPath, 'haproxy', 'apt-get install -y haproxy');

export interface RunningHaproxy {
  readonly child: Child;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Starts haproxy with the configuration `config(port)` (a whole haproxy.cfg) listening on a free
 * port. The file is checked first (`haproxy -c`), then run in the foreground; resolves once the
 * port accepts connections. Retries (bounded) when the port was taken meanwhile. `dir` must be a
 * fresh temporary directory.
 */
export async function startHaproxy(dir: string, config: (port: number) => string): Promise<RunningHaproxy> {
  const haproxy = haproxyPath as string;
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const file = join(dir, 'haproxy.cfg');
    writeFileSync(file, config(port));
    const check = spawnSync(haproxy, ['-c', '-f', file], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy -c refused the configuration:\n${check.stdout}${check.stderr}`);
    const child = new Child(haproxy, ['-db', '-f', file]);
    const exited = (): boolean => child.proc.exitCode !== null;
    await until(async () => exited() || (await canConnect(port)), 'haproxy to listen', 5000, 25).catch(() => undefined);
    if (!exited() && (await canConnect(port))) return { child, port, stop: () => child.stop() };
    last = `haproxy did not start: exit ${child.proc.exitCode}\n${child.stdout}${child.stderr}`;
    await child.stop();
  }
  throw new Error(last);
}
