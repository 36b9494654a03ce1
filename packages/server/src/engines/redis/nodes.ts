/**
 * Every node's latest figures in one Redis hash (`<prefix>:nodes`, on the shard of keys that are
 * not per namespace), for the admin page (core/node-stats.ts). A field is a node id; its value is
 * `<expiry ms> <report>`, the expiry on the writer's clock. Readers skip and remove expired fields;
 * the hash itself expires when no node writes any more.
 */
import type { EngineNodes } from '../../core/engine.js';
import type { Topology } from './topology.js';

/** The commands used here (the topology's command client is an ioredis client). */
interface HashClient {
  hset(key: string, field: string, value: string): Promise<number>;
  pexpire(key: string, ms: number): Promise<number>;
  hgetall(key: string): Promise<Record<string, string>>;
  hdel(key: string, ...fields: string[]): Promise<number>;
}

export class RedisNodes implements EngineNodes {
  constructor(
    private readonly topology: Topology,
    private readonly key: string,
  ) {}

  private get client(): HashClient {
    return this.topology.globalClient() as unknown as HashClient;
  }

  async report(node: string, report: string, ttlMs: number): Promise<void> {
    const c = this.client;
    await Promise.all([c.hset(this.key, node, `${Date.now() + ttlMs} ${report}`), c.pexpire(this.key, 10 * ttlMs)]);
  }

  async list(): Promise<Map<string, string>> {
    const c = this.client;
    const all = await c.hgetall(this.key);
    const now = Date.now();
    const out = new Map<string, string>();
    const expired: string[] = [];
    for (const [node, value] of Object.entries(all)) {
      const space = value.indexOf(' ');
      const until = Number(value.slice(0, space));
      if (space > 0 && until >= now) out.set(node, value.slice(space + 1));
      else expired.push(node);
    }
    if (expired.length > 0) await c.hdel(this.key, ...expired);
    return out;
  }
}
