/**
 * A Redis Cluster with replicas, of the test's own (free loopback ports, temporary directories;
 * never the machine's Redis on 6379), and the operations a topology test needs: kill a master and
 * wait for its replica to take over, add an empty master, and move one slot the way `redis-cli
 * --cluster reshard` does (SETSLOT IMPORTING/MIGRATING, MIGRATE the keys, SETSLOT NODE everywhere).
 */
import { spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { until } from '@herald/test-support';
import { clusterSlot } from '../../src/engines/redis/keys.js';
import { startRedisServer, type SpawnedRedis } from '@herald/test-support/redis';

export interface ClusterNodeInfo {
  readonly id: string;
  readonly port: number;
  readonly master: boolean;
  readonly failed: boolean;
  /** Master id, for a replica. */
  readonly of: string | undefined;
}

async function admin(port: number): Promise<Redis> {
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, connectTimeout: 1000 });
  r.on('error', () => undefined);
  await r.connect();
  return r;
}

/** Runs `fn` with an admin connection to `port`. */
export async function withAdmin<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = await admin(port);
  try {
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

/** A check on cluster nodes for `until`: a node that does not answer (yet) means "not yet", not a failure. */
function answering(check: () => Promise<boolean>): () => Promise<boolean> {
  return () => check().catch(() => false);
}

function clusterArgs(nodeTimeoutMs: number): string[] {
  return [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    'nodes.conf',
    '--cluster-node-timeout',
    String(nodeTimeoutMs),
    // Replicas sync at once (diskless sync waits 5 s by default for more replicas to join).
    '--repl-diskless-sync-delay',
    '0',
  ];
}

export class TestCluster {
  private constructor(
    readonly servers: SpawnedRedis[],
    private readonly nodeTimeoutMs: number,
  ) {}

  /**
   * `masters` masters with `replicas` replicas each (`redis-cli --cluster create
   * --cluster-replicas`), all slots assigned, every replica in sync.
   */
  static async start(masters = 3, replicas = 1, nodeTimeoutMs = 1000): Promise<TestCluster> {
    const servers: SpawnedRedis[] = [];
    const cluster = new TestCluster(servers, nodeTimeoutMs);
    try {
      for (let i = 0; i < masters * (1 + replicas); i++)
        servers.push(await startRedisServer(clusterArgs(nodeTimeoutMs)));
      const create = spawnSync(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...servers.map((s) => `127.0.0.1:${s.port}`),
          '--cluster-replicas',
          String(replicas),
          '--cluster-yes',
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      if (create.status !== 0)
        throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
      await cluster.settled(masters, replicas);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  /** The cluster's nodes as `port` sees them. */
  async nodes(port = this.alive()[0]?.port ?? 0): Promise<ClusterNodeInfo[]> {
    const text = (await withAdmin(port, (r) => r.cluster('NODES'))) as string;
    const out: ClusterNodeInfo[] = [];
    for (const line of text.trim().split('\n')) {
      const [id, addr, flags, of] = line.split(' ');
      const p = Number(/:(\d+)@/.exec(addr ?? '')?.[1]);
      const f = (flags ?? '').split(',');
      out.push({
        id: id ?? '',
        port: p,
        master: f.includes('master'),
        failed: f.includes('fail'),
        of: of === '-' ? undefined : of,
      });
    }
    return out;
  }

  /** Port of the master that owns `slot`, as `port` sees it. */
  async ownerOf(slot: number, port = this.alive()[0]?.port ?? 0): Promise<number> {
    const slots = (await withAdmin(port, (r) => r.cluster('SLOTS'))) as unknown as [number, number, [string, number]][];
    const range = slots.find(([lo, hi]) => slot >= lo && slot <= hi);
    if (range === undefined) throw new Error(`no master owns slot ${slot}`);
    return Number(range[2][1]);
  }

  /** Port of the master that owns namespace `ns` (the slot of its hash tag). */
  ownerOfNamespace(ns: string): Promise<number> {
    return this.ownerOf(clusterSlot(`{${ns}}`));
  }

  /** The servers not killed. */
  alive(): SpawnedRedis[] {
    return this.servers.filter((s) => !this.dead.has(s.port));
  }

  private readonly dead = new Set<number>();

  /** Waits until every live node says the cluster is ok with `masters` masters, and replicas are in sync. */
  async settled(masters: number, replicasPerMaster = 0, ms = 20_000): Promise<void> {
    for (const s of this.alive()) {
      await until(
        answering(async () => {
          const info = (await withAdmin(s.port, (r) => r.cluster('INFO'))) as string;
          const size = Number(/cluster_size:(\d+)/.exec(info)?.[1]);
          return info.includes('cluster_state:ok') && size === masters;
        }),
        `cluster node ${s.port} to be ok with ${masters} masters`,
        ms,
        100,
      );
    }
    if (replicasPerMaster === 0) return;
    const nodes = await this.nodes();
    for (const n of nodes.filter((x) => !x.master && !x.failed)) {
      await until(
        answering(async () => /master_link_status:up/.test(await withAdmin(n.port, (r) => r.info('replication')))),
        `replica ${n.port} to be in sync`,
        ms,
        100,
      );
    }
  }

  /**
   * SIGKILLs the master on `port` and waits until its replica took over its slots, as every live
   * node sees it. Resolves with the port of the new master.
   */
  async failMaster(port: number, ms = 20_000): Promise<number> {
    const before = await this.nodes();
    const victim = before.find((n) => n.port === port);
    const replica = before.find((n) => n.of === victim?.id);
    if (victim === undefined || replica === undefined) throw new Error(`no replica of the master on port ${port}`);
    const server = this.servers.find((s) => s.port === port) as SpawnedRedis;
    await server.kill();
    this.dead.add(port);
    for (const s of this.alive()) {
      await until(
        answering(async () => {
          const nodes = await this.nodes(s.port);
          const info = (await withAdmin(s.port, (r) => r.cluster('INFO'))) as string;
          return nodes.some((n) => n.port === replica.port && n.master) && info.includes('cluster_state:ok');
        }),
        `the replica on ${replica.port} to take over from ${port} (seen by ${s.port})`,
        ms,
        100,
      );
    }
    return replica.port;
  }

  /**
   * A manual failover (`CLUSTER FAILOVER` on a replica of the master on `port`): the replica catches
   * up and takes over, the master becomes its replica. Resolves with the new master's port.
   */
  async switchOver(port: number, ms = 20_000): Promise<number> {
    const before = await this.nodes();
    const master = before.find((n) => n.port === port);
    const replica = before.find((n) => n.of === master?.id && !n.failed);
    if (master === undefined || replica === undefined) throw new Error(`no replica of the master on port ${port}`);
    await withAdmin(replica.port, (r) => r.cluster('FAILOVER'));
    for (const s of this.alive()) {
      await until(
        answering(async () => {
          const nodes = await this.nodes(s.port);
          return (
            nodes.some((n) => n.port === replica.port && n.master) && nodes.some((n) => n.port === port && !n.master)
          );
        }),
        `the replica on ${replica.port} to take over from ${port} (seen by ${s.port})`,
        ms,
        100,
      );
    }
    return replica.port;
  }

  /** Starts an empty cluster node and joins it as a master with no slots; resolves with its port. */
  async addMaster(): Promise<number> {
    const s = await startRedisServer(clusterArgs(this.nodeTimeoutMs));
    this.servers.push(s);
    const existing = this.alive()[0] as SpawnedRedis;
    const add = spawnSync(
      'redis-cli',
      ['--cluster', 'add-node', `127.0.0.1:${s.port}`, `127.0.0.1:${existing.port}`, '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (add.status !== 0) throw new Error(`redis-cli --cluster add-node failed:\n${add.stdout}\n${add.stderr}`);
    const id = await this.idOf(s.port);
    for (const n of this.alive()) {
      await until(
        answering(async () => (await this.nodes(n.port)).some((x) => x.id === id && x.master)),
        `node ${n.port} to know the new master ${s.port}`,
        15_000,
        100,
      );
    }
    await until(
      answering(async () =>
        ((await withAdmin(s.port, (r) => r.cluster('INFO'))) as string).includes('cluster_state:ok'),
      ),
      `the new master ${s.port} to see the cluster ok`,
      15_000,
      100,
    );
    return s.port;
  }

  async idOf(port: number): Promise<string> {
    return (await withAdmin(port, (r) => r.cluster('MYID'))) as string;
  }

  /**
   * Moves `slot` to the master on `to`, keys included, as `redis-cli --cluster reshard` does:
   * IMPORTING on the target, MIGRATING on the source, MIGRATE the keys (a few at a time, so
   * commands keep coming in between), then NODE on the target, the source and every other master.
   */
  async migrateSlot(slot: number, to: number): Promise<void> {
    const from = await this.ownerOf(slot);
    if (from === to) return;
    const [fromId, toId] = [await this.idOf(from), await this.idOf(to)];
    await withAdmin(to, (r) => r.cluster('SETSLOT', slot, 'IMPORTING', fromId));
    await withAdmin(from, (r) => r.cluster('SETSLOT', slot, 'MIGRATING', toId));
    await withAdmin(from, async (r) => {
      for (;;) {
        const keys = (await r.cluster('GETKEYSINSLOT', slot, 4)) as string[];
        if (keys.length === 0) break;
        await r.call('MIGRATE', '127.0.0.1', String(to), '', '0', '5000', 'REPLACE', 'KEYS', ...keys);
      }
    });
    await withAdmin(to, (r) => r.cluster('SETSLOT', slot, 'NODE', toId));
    await withAdmin(from, (r) => r.cluster('SETSLOT', slot, 'NODE', toId));
    for (const n of await this.nodes(to)) {
      if (!n.master || n.failed || n.port === to || n.port === from) continue;
      await withAdmin(n.port, (r) => r.cluster('SETSLOT', slot, 'NODE', toId)).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}
