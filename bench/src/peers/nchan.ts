/**
 * Peer: Nchan (the nginx module, Debian's `libnginx-mod-nchan`), one worker process, its own prefix
 * and config on free ports. Locations:
 * - `/ws/<ch>`  WebSocket subscriber     - `/sse/<ch>` EventSource subscriber
 * - `/pub/<ch>` publisher (POST body = the message)
 * Message buffer: the last 100 messages for 5 minutes, as Herald's default history.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const NGINX = '/usr/sbin/nginx';

/** Installs nginx with Nchan through apt when it is missing (root only); returns why not, or undefined. */
export function ensureNchan(log: (line: string) => void): string | undefined {
  if (existsSync(NCHAN_MODULE) && existsSync(NGINX)) return undefined;
  if (process.getuid?.() !== 0) return 'Nchan is not installed (apt-get install libnginx-mod-nchan needs root)';
  log('installing Nchan: apt-get install -y libnginx-mod-nchan ...');
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 300_000 });
    execFileSync('apt-get', ['install', '-y', '-qq', 'libnginx-mod-nchan'], {
      stdio: 'ignore',
      timeout: 300_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch (err) {
    return `could not install Nchan: ${(err as Error).message.split('\n')[0]}`;
  }
  return existsSync(NCHAN_MODULE) ? undefined : 'Nchan module still missing after apt-get install';
}

/** Writes the prefix folder and config; returns the arguments for `nginx`. */
export function nchanCommand(dir: string, port: number): { cmd: string; args: string[] } {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'tmp', t), { recursive: true });
  const conf = `
load_module ${NCHAN_MODULE};
worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
worker_rlimit_nofile 30000;
events { worker_connections 30000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  nchan_max_reserved_memory 512M;
  nchan_message_buffer_length 100;
  nchan_message_timeout 5m;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location ~ ^/ws/(\\w+)$ { nchan_subscriber websocket; nchan_channel_id $1; }
    location ~ ^/sse/(\\w+)$ { nchan_subscriber eventsource; nchan_channel_id $1; }
    location ~ ^/pub/(\\w+)$ { nchan_publisher; nchan_channel_id $1; }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return { cmd: NGINX, args: ['-p', dir, '-c', file] };
}
