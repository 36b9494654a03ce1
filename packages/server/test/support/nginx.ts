/**
 * Test support for Debian's nginx in front of Herald: nginx as a child process with its own prefix,
 * pid file, logs and temp paths in a temporary directory, on a free loopback port. A missing nginx
 * skips the test, except under CI=true where it fails.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, Child, findProgram, freePort, needProgram, until } from '@herald/test-support';

export const nginxPath = findProgram('nginx', ['/usr/sbin/nginx']);
export const needNginx = needProgram(nginxPath, 'nginx', 'apt-get install -y nginx-light');

export interface RunningNginx {
  readonly child: Child;
  readonly port: number;
  /** The access log's lines so far (`<method> <uri> <upstream address> <status>`). */
  accessLog(): string[];
  stop(): Promise<void>;
}

/**
 * Starts nginx with `http(port)` as the body of its `http {}` block (a conf.d snippet), on a free
 * port; the access log records which upstream served each request. Retries (bounded) when the port
 * was taken meanwhile. `dir` must be a fresh temporary directory.
 */
export async function startNginx(dir: string, http: (port: number) => string): Promise<RunningNginx> {
  chmodSync(dir, 0o755); // nginx workers (nobody, when run as root) use the temp paths inside
  const log = join(dir, 'access.log');
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  log_format upstreams '$request_method $uri $upstream_addr $status';
  access_log ${log} upstreams;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${http(port)}
}
`,
    );
    const child = new Child(nginxPath as string, [
      '-p',
      dir,
      '-c',
      conf,
      '-e',
      join(dir, 'error.log'),
      '-g',
      'daemon off;',
    ]);
    const exited = (): boolean => child.proc.exitCode !== null;
    await until(async () => exited() || (await canConnect(port)), 'nginx to listen', 5000, 25).catch(() => undefined);
    if (!exited() && (await canConnect(port))) {
      return {
        child,
        port,
        accessLog: () => {
          try {
            return readFileSync(log, 'utf8')
              .split('\n')
              .filter((l) => l !== '');
          } catch {
            return [];
          }
        },
        stop: () => child.stop(),
      };
    }
    last = `nginx did not start: exit ${child.proc.exitCode}\n${child.stderr}`;
    await child.stop();
  }
  throw new Error(last);
}
