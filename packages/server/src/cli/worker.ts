/**
 * One worker of `herald serve --workers N` (docs/scaling.md): a HeraldServer on the port the
 * supervisor shares, run with the config the supervisor resolved (so secrets and generated keys are
 * the same in every worker). With the memory engine its streams live in the supervisor
 * (engines/cluster/); with Redis it is an ordinary Redis node. It stops when the supervisor says so,
 * or on a signal of its own: a Ctrl-C reaches the whole process group, so the signal and the
 * supervisor's word are one shutdown; only a second signal exits at once.
 */
import type { HeraldConfig } from '../config/index.js';
import { ClusterEngine } from '../engines/cluster/cluster-engine.js';
import type { SupervisorControl, WorkerSetup } from '../engines/cluster/messages.js';
import { WorkerLink } from '../engines/cluster/worker-link.js';
import { DemoProxy } from '../demo/proxy.js';
import { createLogger } from '../logging.js';
import { HeraldServer } from '../server.js';

export async function runWorker(): Promise<number> {
  const link = new WorkerLink(process);
  // A shutdown asked for before the setup came: nothing to close yet. Once the server is being
  // built, it stops it as soon as it exists.
  let shutdownAsked = false;
  let onShutdown = (): void => void exit(0);
  const setup = await new Promise<WorkerSetup>((resolve) => {
    link.onControl = (message) => {
      const m = message as SupervisorControl;
      if (m.k === 'setup') resolve(m);
      else if (m.k === 'shutdown') onShutdown();
    };
    link.sendNow({ k: 'hello' });
  });
  onShutdown = () => void (shutdownAsked = true);
  const config = setup.config as HeraldConfig;
  const { slot, count } = setup;
  const logger = createLogger(config.logLevel, { format: config.logFormat }).child({ worker: slot });
  const server = new HeraldServer(config, {
    logger,
    ...(config.engine === 'memory' ? { engine: new ClusterEngine({ link }) } : {}),
    ...(setup.demos !== undefined ? { demos: new DemoProxy(setup.demos.names, setup.demos.port) } : {}),
    worker: { slot, count, metrics: () => link.request<string>('metrics', null) },
  });
  link.handlers.metrics = () => server.metricsJson();

  let signals = 0;
  let resolveExit: (code: number) => void = () => undefined;
  const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));
  let stopping = false;
  const stop = (signal: string | undefined): void => {
    if (signal !== undefined && ++signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    if (stopping) return;
    stopping = true;
    logger.debug({ signal }, 'worker shutting down');
    server.close().then(
      () => resolveExit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        resolveExit(1);
      },
    );
  };
  onShutdown = () => stop(undefined);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (shutdownAsked) stop(undefined);
  try {
    const address = await server.listen();
    link.sendNow({ k: 'listening', port: address.port, address: address.address, family: address.family });
    logger.debug({ port: address.port, pid: process.pid }, 'worker listening');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const message =
      e.code === 'EADDRINUSE'
        ? `port ${config.port} is in use (set --port or HERALD_PORT)`
        : (e.message ?? String(err));
    link.sendNow({ k: 'failed', message });
    await server.close().catch(() => undefined);
    return exit(1);
  }
  return exit(await exitCode);
}

/** The IPC channel would keep the process up: leave once the logs are out. */
function exit(code: number): Promise<number> {
  return new Promise(() => setImmediate(() => process.exit(code)));
}
