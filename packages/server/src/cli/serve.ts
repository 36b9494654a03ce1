/**
 * `herald serve`: load the config, start the server, print how to use it, stop gracefully. With
 * more than one worker (`--workers N`, `auto` on a machine with several cores) this process becomes
 * the supervisor of N workers sharing the port (supervisor.ts); each worker comes back here and
 * runs `runWorker` (worker.ts).
 */
import cluster from 'node:cluster';
import { ConfigError, loadConfig, parseServeFlags } from '../config/index.js';
import { HeraldServer } from '../server.js';
import { prepareDemos } from '../demo/demos.js';
import { createLogger } from '../logging.js';
import { VERSION } from '../version.js';
import { banner, workerCount } from './banner.js';

export async function runServe(argv: string[]): Promise<number> {
  // A worker is handed its config by the supervisor, which read it once for all of them.
  if (cluster.isWorker) return (await import('./worker.js')).runWorker();
  let loaded;
  try {
    const { flags, help } = parseServeFlags(argv);
    if (help) {
      console.log(
        'usage: herald serve [--config file] [--port N] [--host H] [--engine memory|redis|nats] [--redis URL] [--nats URL] [--api-key KEY] [--workers N|auto] [--log-level L] [--log-format auto|json|pretty] [--no-demos]',
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
  const workers = workerCount(config.workers);
  if (workers > 1) return (await import('./supervisor.js')).runSupervisor(loaded, workers, logger);
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
  console.log(banner(config, address, generatedApiKey, demos?.names ?? []));
  logger.info({ port: address.port, host: config.host, engine: config.engine, version: VERSION }, 'listening');

  return exitCode;
}
