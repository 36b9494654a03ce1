/**
 * Every node's latest figures in one JetStream key-value bucket (`<prefix>_nodes`, one value per
 * node), for the admin page (core/node-stats.ts). A value is `<expiry ms> <report>`, the expiry on
 * the writer's clock; readers skip and remove expired values. The bucket keeps one revision per
 * key and forgets values after an hour without writes.
 */
import { StorageType } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { EngineNodes } from '../../core/engine.js';

export class NatsNodes implements EngineNodes {
  private bucket: Promise<KV> | undefined;

  constructor(
    private readonly connection: () => NatsConnection,
    private readonly name: string,
    private readonly opts: { readonly replicas: number; readonly storage: 'file' | 'memory' },
  ) {}

  async report(node: string, report: string, ttlMs: number): Promise<void> {
    const kv = await this.kv();
    await kv.put(Buffer.from(node).toString('base64url'), `${Date.now() + ttlMs} ${report}`);
  }

  async list(): Promise<Map<string, string>> {
    const kv = await this.kv();
    const out = new Map<string, string>();
    const now = Date.now();
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    for (const key of keys) {
      const entry = await kv.get(key);
      if (entry === null || entry.operation !== 'PUT') continue;
      const value = entry.string();
      const space = value.indexOf(' ');
      const until = Number(value.slice(0, space));
      const node = Buffer.from(key, 'base64url').toString();
      if (space > 0 && until >= now) out.set(node, value.slice(space + 1));
      else await kv.delete(key, { previousSeq: entry.revision }).catch(() => undefined);
    }
    return out;
  }

  private kv(): Promise<KV> {
    this.bucket ??= new Kvm(this.connection())
      .create(this.name, {
        history: 1,
        ttl: 3_600_000,
        replicas: this.opts.replicas,
        storage: this.opts.storage === 'memory' ? StorageType.Memory : StorageType.File,
      })
      .catch((err: unknown) => {
        this.bucket = undefined;
        throw err;
      });
    return this.bucket;
  }
}
