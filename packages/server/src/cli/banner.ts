/** What `herald serve` prints once listening (the URLs, the API key, example commands), and how many workers it runs. */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HeraldConfig } from '../config/index.js';
import { VERSION } from '../version.js';

/** The worker processes `workers` asks for: `auto` is one per core. */
export function workerCount(workers: number | 'auto'): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** What `herald serve` prints once listening: the URLs, the API key, example commands. */
export function banner(
  config: HeraldConfig,
  address: AddressInfo,
  generatedApiKey: string | undefined,
  demoNames: readonly string[],
  workers?: number,
): string {
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const secure = config.tls.cert !== '';
  const base = `${secure ? 'https' : 'http'}://${host}:${address.port}`;
  const key = generatedApiKey ?? '<your API key>';
  const keyLine =
    generatedApiKey !== undefined
      ? `API key:     ${generatedApiKey}   (generated for this run; set HERALD_API_KEYS or apiKeys to keep one)`
      : 'API key:     configured (apiKeys / HERALD_API_KEYS)';
  const processes = workers !== undefined ? `${workers} workers, supervisor pid ${process.pid}` : `pid ${process.pid}`;
  return `
Herald ${VERSION} is running (engine: ${config.engine}, ${processes})
  WebSocket   ${secure ? 'wss' : 'ws'}://${host}:${address.port}/ws
  Server API  ${base}/api/{publish,batch,broadcast,history,channels,presence,presenceStats,info,disconnect}
              ${secure ? 'wss' : 'ws'}://${host}:${address.port}/api/ws   (the same methods over one WebSocket)
  Health      ${base}/health   (ready: ${base}/ready)
${operatorLines(base, config)}${keyLine}

Listen (in another terminal):
  ${cliCommand()} subscribe 'chat.**' --url ${base}
  curl -N '${base}/sse?channel=chat.room1'        (Server-Sent Events; /stream and /poll work too)
Publish:
  curl -s -X POST ${base}/api/publish -H 'Authorization: apikey ${key}' -H 'Content-Type: application/json' -d '{"channel":"chat.room1","data":{"text":"hello"}}'
${demoLines(base, demoNames)}`;
}

/** The banner's metrics and admin page lines, for what is on. */
function operatorLines(base: string, config: HeraldConfig): string {
  let lines = '';
  if (config.metrics.enabled) {
    lines += `  Metrics     ${base}/metrics${config.metrics.requireApiKey ? '   (with the API key)' : ''}\n`;
  }
  if (config.admin.password !== '') lines += `  Admin       ${base}/admin/   (password: admin.password)\n`;
  return lines;
}

/** The banner's demo URLs (docs/demos.md), or nothing when they are off. */
function demoLines(base: string, names: readonly string[]): string {
  if (names.length === 0) return '';
  const width = Math.max(...names.map((n) => n.length));
  const lines = names.map((n) => `  ${n.padEnd(width)}  ${base}/demo/${n}/`);
  return `Demos (open in a browser; --no-demos or HERALD_DEMOS=false turns them off):
  ${base}/demo/
${lines.join('\n')}
`;
}

/** How to run this CLI from the current directory: `./herald` in a checkout, else the script path. */
function cliCommand(): string {
  if (existsSync('herald') && existsSync('packages/server/dist/cli/main.js')) return './herald';
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const rel = relative(process.cwd(), main);
  return `node ${rel.startsWith('..') ? main : rel}`;
}
