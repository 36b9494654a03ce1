/** `herald serve`: load the config, start the server, print how to use it, stop gracefully. */
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, loadConfig, parseServeFlags, type HeraldConfig } from '../config/index.js';
import { HeraldServer } from '../server.js';
import { prepareDemos } from '../demo/demos.js';
import { createLogger } from '../logging.js';
import { VERSION } from '../version.js';

export async function runServe(argv: string[]): Promise<number> {
  let loaded;
  try {
    const { flags, help } = parseServeFlags(argv);
    if (help) {
      console.log(
        'usage: herald serve [--config file] [--port N] [--host H] [--engine memory|redis] [--redis URL] [--api-key KEY] [--log-level L] [--log-format auto|json|pretty] [--no-demos]',
      );
      return 0;
    }
    loaded = await loadConfig({ configFile: flags.config, env: process.env, flags });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`herald: invalid configuration\n${err.message}`);
      return 78; // EX_CONFIG
    }
    throw err;
  }
  const { config, generatedApiKey } = loaded;
  const logger = createLogger(config.logLevel, { format: config.logFormat });
  for (const w of loaded.warnings) logger.warn({ warning: w }, 'config warning');
  const demos = await prepareDemos(config, { logger });
  const server = new HeraldServer(config, { logger, demos });
  // Signals are handled from here on, so a SIGTERM during start-up also stops cleanly.
  let stopping = false;
  let resolveExit: (code: number) => void = () => undefined;
  const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => resolveExit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        resolveExit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  let address;
  try {
    address = await server.listen();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    console.error(
      `herald: cannot start: ${e.code === 'EADDRINUSE' ? `port ${config.port} is in use (set --port or HERALD_PORT)` : e.message}`,
    );
    await server.close().catch(() => undefined);
    return 1;
  }
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const secure = config.tls.cert !== '';
  const base = `${secure ? 'https' : 'http'}://${host}:${address.port}`;
  const key = generatedApiKey ?? '<your API key>';
  const keyLine =
    generatedApiKey !== undefined
      ? `API key:     ${generatedApiKey}   (generated for this run; set HERALD_API_KEYS or apiKeys to keep one)`
      : 'API key:     configured (apiKeys / HERALD_API_KEYS)';
  console.log(`
Herald ${VERSION} is running (engine: ${config.engine}, pid ${process.pid})
  WebSocket   ${secure ? 'wss' : 'ws'}://${host}:${address.port}/ws
  Server API  ${base}/api/{publish,batch,broadcast,history,channels,presence,presenceStats,info,disconnect}
  Health      ${base}/health   (ready: ${base}/ready)
${operatorLines(base, config)}${keyLine}

Listen (in another terminal):
  ${cliCommand()} subscribe 'chat.**' --url ${base}
  curl -N '${base}/sse?channel=chat.room1'        (Server-Sent Events; /stream and /poll work too)
Publish:
  curl -s -X POST ${base}/api/publish -H 'Authorization: apikey ${key}' -H 'Content-Type: application/json' -d '{"channel":"chat.room1","data":{"text":"hello"}}'
${demoLines(base, demos?.names ?? [])}`);
  logger.info({ port: address.port, host: config.host, engine: config.engine, version: VERSION }, 'listening');

  return exitCode;
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
