/**
 * Redis servers of a test's own, on free loopback ports, for destructive tests (killing Redis,
 * independent shards, a three-master cluster). Never touches the machine's Redis on 6379. Each
 * server keeps its files in a temporary directory removed by `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './net.js';
import { until } from './wait.js';

export interface SpawnedRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** SIGKILL (what is not saved is lost). */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory (loads dump.rdb if one was saved). */
  restart(): Promise<void>;
  /** Kills it and removes its directory. */
  stop(): Promise<void>;
}

/** Whether redis-server on `port` answers and has finished loading its data. */
async function answers(port: number): Promise<boolean> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, connectTimeout: 500 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return !/loading:1/.test(await r.info('persistence'));
  } catch {
    return false; // not up yet
  } finally {
    r.disconnect();
  }
}

/** Whether cluster node `port` says the cluster is up. */
async function clusterOk(port: number): Promise<boolean> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return ((await r.cluster('INFO')) as string).includes('cluster_state:ok');
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function startRedisServer(extra: string[] = []): Promise<SpawnedRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));
  let proc: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra],
      { stdio: 'ignore' },
    );
    await until(() => answers(port), `redis-server on port ${port} to start`, 10_000, 50);
  };
  const kill = async (): Promise<void> => {
    const p = proc;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    p.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    kill,
    restart: launch,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface SpawnedCluster {
  readonly urls: string[];
  readonly servers: SpawnedRedis[];
  stop(): Promise<void>;
}

/** Three masters, no replicas, all 16384 slots assigned (`redis-cli --cluster create`). */
export async function startRedisCluster(masters = 3): Promise<SpawnedCluster> {
  const servers: SpawnedRedis[] = [];
  try {
    for (let i = 0; i < masters; i++) {
      servers.push(
        await startRedisServer([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
        ]),
      );
    }
    const create = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    // Wait until every node agrees the cluster is up.
    for (const s of servers) await until(() => clusterOk(s.port), `cluster node ${s.port} to be ok`, 15_000, 100);
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
  return {
    urls: servers.map((s) => s.url),
    servers,
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}
