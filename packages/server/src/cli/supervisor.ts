/**
 * The supervisor of `herald serve --workers N` (docs/scaling.md): it reads the config once, makes
 * the per-run secrets every worker must share (the session secret of `/send` and long-poll session
 * ids, the admin cookie key; the generated API key and the demos' keys are made by the loading),
 * forks N node:cluster workers that share the port, and hands each the resolved config. With the
 * memory engine it owns every stream (engines/cluster/engine-host.ts). It runs the demo backends
 * once, on a loopback port the workers pass `/demo` requests to, and prints the banner once every
 * worker listens.
 *
 * A worker that exits unasked is restarted in its slot after a backoff (100 ms doubling to 30 s,
 * reset once it has run a minute); its clients reconnect and resume by cursor. A signal drains every
 * worker (each runs its graceful close) and exits 0; a second one kills them and exits at once.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import type { HeraldConfig, LoadedConfig } from '../config/index.js';
import type { Logger } from '../core/logger.js';
import { loopbackUrl, prepareDemos, type Demos } from '../demo/demos.js';
import { FORWARDED_TLS } from '../demo/proxy.js';
import { EngineHost, WorkerPort } from '../engines/cluster/engine-host.js';
import type {
  SupervisorControl,
  SupervisorMessage,
  WorkerControl,
  WorkerMessage,
} from '../engines/cluster/messages.js';
import { MemoryEngine } from '../engines/memory/memory-engine.js';
import { VERSION } from '../version.js';
import { banner } from './banner.js';

interface Slot {
  readonly slot: number;
  worker: Worker | undefined;
  port: WorkerPort | undefined;
  startedAt: number;
  /** Exits in a row without a minute of running between them. */
  crashes: number;
  restart: NodeJS.Timeout | undefined;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 30_000;
/** A worker that ran this long before it exited starts its backoff over. */
const STABLE_MS = 60_000;
/** Crashes in a row from which each restart is logged as a crash loop. */
const CRASH_LOOP = 5;

export async function runSupervisor(loaded: LoadedConfig, count: number, logger: Logger): Promise<number> {
  const { config, generatedApiKey } = loaded;
  shareSecrets(config);
  const log = logger.child({ supervisor: true });
  const host: EngineHost = new EngineHost({
    ...(config.engine === 'memory' ? { engine: new MemoryEngine() } : {}),
    logger: log,
    metrics: async (): Promise<string> =>
      AggregatorRegistry.aggregate((await host.collectMetrics(2_000)) as never[]).metrics(),
  });
  await host.start();
  const demos = await prepareDemos(config, { logger: log });
  const demoServer = demos !== undefined ? await serveDemos(demos) : undefined;
  const setup = (slot: number): SupervisorControl => ({
    k: 'setup',
    // Redis ingestion needs nothing here: the nodes (workers too) elect one leader that applies it.
    config,
    slot,
    count,
    ...(demos !== undefined && demoServer !== undefined
      ? { demos: { names: demos.names, port: (demoServer.address() as { port: number }).port } }
      : {}),
  });

  let stopping = false;
  let starting = true;
  let failure = 0;
  let resolveExit: (code: number) => void = () => undefined;
  const exitCode = new Promise<number>((resolve) => (resolveExit = resolve));
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({
    slot: i + 1,
    worker: undefined,
    port: undefined,
    startedAt: 0,
    crashes: 0,
    restart: undefined,
  }));
  let listening = 0;
  let forced: NodeJS.Timeout | undefined;

  const finished = async (): Promise<void> => {
    if (slots.some((s) => s.worker !== undefined)) return;
    clearTimeout(forced);
    await demos?.close();
    demoServer?.close();
    await host.close();
    log.info('stopped');
    resolveExit(failure);
  };

  const stop = (signal: string | undefined): void => {
    if (stopping && signal !== undefined) {
      log.warn({ signal }, 'second signal: exiting now');
      for (const s of slots) s.worker?.process.kill('SIGKILL');
      process.exit(1);
    }
    if (stopping) return;
    stopping = true;
    if (signal !== undefined) log.info({ signal, workers: count }, 'shutting down');
    for (const s of slots) {
      clearTimeout(s.restart);
      tell(s.worker, { k: 'shutdown' });
    }
    // Each worker forces its connections closed at shutdown.timeout; this is the backstop.
    forced = setTimeout(() => {
      for (const s of slots) {
        if (s.worker === undefined) continue;
        log.error({ worker: s.slot }, 'worker did not stop in time: killed');
        s.worker.process.kill('SIGKILL');
      }
    }, config.shutdown.timeout + 5_000);
    void finished();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  const fork = (s: Slot): void => {
    s.restart = undefined;
    if (stopping) return;
    const worker = cluster.fork();
    const port = new WorkerPort(s.slot, (batch: SupervisorMessage[]) => {
      if (worker.isConnected()) worker.send(batch);
    });
    s.worker = worker;
    s.port = port;
    s.startedAt = Date.now();
    let listened = false;
    worker.on('message', (m: unknown) => {
      if (Array.isArray(m)) {
        host.receive(port, m as WorkerMessage[]);
        return;
      }
      const c = m as WorkerControl;
      if (c.k === 'hello') {
        // From now on the worker hears what is sent to it (sooner, a message could be lost).
        if (!stopping) host.attach(port);
        tell(worker, stopping ? { k: 'shutdown' } : setup(s.slot));
      } else if (c.k === 'listening') {
        listened = true;
        log.debug({ worker: s.slot, pid: worker.process.pid }, 'worker listening');
        if (starting && ++listening === count) {
          starting = false;
          const address = { port: c.port, address: c.address, family: c.family };
          console.log(banner(config, address, generatedApiKey, demos?.names ?? [], count));
          log.info(
            { port: c.port, host: config.host, engine: config.engine, workers: count, version: VERSION },
            'listening',
          );
          demos?.start(loopbackUrl(address, config.tls.cert !== '')).catch(() => undefined);
        }
      } else if (c.k === 'failed' && starting && !stopping) {
        // The same config fails in every worker: stop, as one process does.
        console.error(`herald: cannot start: ${c.message}`);
        failure = 1;
        stop(undefined);
      }
    });
    worker.on('exit', (code, signal) => {
      host.detach(port);
      s.worker = undefined;
      s.port = undefined;
      if (stopping) {
        // A worker still starting has no handler yet: a Ctrl-C (the whole group) ends it at once.
        if (code !== 0 && signal !== 'SIGINT' && signal !== 'SIGTERM') failure = 1;
        void finished();
        return;
      }
      if (starting && !listened) {
        console.error(`herald: cannot start: worker ${s.slot} exited (${signal ?? `code ${code}`})`);
        failure = 1;
        stop(undefined);
        return;
      }
      if (Date.now() - s.startedAt >= STABLE_MS) s.crashes = 0;
      const delay = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** s.crashes);
      s.crashes += 1;
      const fields = { worker: s.slot, pid: worker.process.pid, code, signal, restartInMs: delay };
      if (s.crashes >= CRASH_LOOP) log.error({ ...fields, crashes: s.crashes }, 'worker crash loop: restarting');
      else log.error(fields, 'worker exited: restarting');
      s.restart = setTimeout(() => fork(s), delay);
    });
  };
  for (const s of slots) fork(s);
  return exitCode;
}

/** Secrets each process would otherwise pick at random: every worker must verify what another signed. */
function shareSecrets(config: HeraldConfig): void {
  if (config.http.sessionSecret === '') config.http.sessionSecret = randomBytes(32).toString('base64url');
  if (config.admin.password !== '' && config.admin.secret === '') {
    config.admin.secret = randomBytes(32).toString('base64url');
  }
}

function tell(worker: Worker | undefined, message: SupervisorControl): void {
  if (worker?.isConnected() === true) worker.send(message);
}

/** The demos on a loopback port, for the workers' `/demo` requests (demo/proxy.ts). */
function serveDemos(demos: Demos): Promise<Server> {
  const server = createServer((req, res) => {
    // Only workers reach this loopback port; a request that came to one over TLS is marked (each
    // request sets it: a kept-alive socket carries requests of both kinds).
    (req.socket as { encrypted?: boolean }).encrypted = req.headers[FORWARDED_TLS] === '1';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    demos.handle(req, res, q === -1 ? url : url.slice(0, q));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
