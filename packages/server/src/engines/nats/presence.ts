/**
 * Presence on NATS, shared by every node: one JetStream key-value bucket (`<prefix>_presence`),
 * one key per entry, `<stream>.<client>` (both base64url), whose value is the entry's JSON and its
 * deadline (writer's clock, ms). Joins and leaves are sent on core NATS (`<prefix>.pe`); every node
 * hears them and the hub hands them to the channel's local subscribers.
 *
 * Exactly one leave per entry: whoever removes an entry (a leave, or a read that finds it expired)
 * deletes it with the revision it read, so of two nodes racing only one succeeds and reports it. A
 * join adds with `create` (fails when the key exists), so a client joins once. The `max` bound is
 * checked against a count read just before, so concurrent joins on several nodes may pass it by a
 * few entries.
 */
import { StorageType } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { namespaceOf } from '@herald/protocol';
import type {
  EnginePresence,
  PresenceCounts,
  PresenceEntry,
  PresenceEvent,
  PresenceJoin,
  PresenceOptions,
} from '../../core/presence.js';
import { presenceEntryOf } from '../../core/presence.js';

export interface NatsPresenceHost {
  readonly connection: () => NatsConnection;
  readonly prefix: string;
  readonly replicas: number;
  /** Throws when the engine is not running. */
  assertRunning(): void;
}

interface Stored {
  readonly key: string;
  readonly revision: number;
  readonly entry: PresenceEntry;
  readonly deadline: number;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64url');
const unb64 = (s: string): string => Buffer.from(s, 'base64url').toString();

export class NatsPresence implements EnginePresence {
  private handler: ((event: PresenceEvent) => void) | undefined;
  private bucket: Promise<KV> | undefined;
  private sub: Subscription | undefined;

  constructor(private readonly host: NatsPresenceHost) {}

  onEvent(handler: (event: PresenceEvent) => void): void {
    this.handler = handler;
  }

  close(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  async join(stream: string, entries: readonly PresenceJoin[], opts: PresenceOptions & { max: number }): Promise<void> {
    const kv = await this.kv();
    const present = await this.read(kv, stream, opts.events);
    let count = present.length;
    const now = Date.now();
    for (const { entry, ttlMs } of entries) {
      const key = `${b64(stream)}.${b64(entry.client)}`;
      const value = JSON.stringify({ e: entry, d: now + ttlMs });
      const had = present.find((p) => p.entry.client === entry.client);
      if (had !== undefined) {
        await kv.update(key, value, had.revision).catch(() => undefined);
        continue;
      }
      if (count >= opts.max) continue;
      try {
        await kv.create(key, value);
      } catch {
        continue; // joined meanwhile from another node
      }
      count += 1;
      if (opts.events) this.emit('join', stream, entry);
    }
  }

  async leave(stream: string, client: string, opts: PresenceOptions): Promise<void> {
    const kv = await this.kv();
    const key = `${b64(stream)}.${b64(client)}`;
    const got = await kv.get(key);
    if (got === null || got.operation !== 'PUT') return;
    const stored = parse(key, got.revision, got.string());
    if (await this.remove(kv, key, got.revision)) {
      if (opts.events && stored !== undefined) this.emit('leave', stream, stored.entry);
    }
  }

  async list(stream: string, opts: PresenceOptions): Promise<PresenceEntry[]> {
    return (await this.read(await this.kv(), stream, opts.events)).map((p) => p.entry);
  }

  async count(stream: string, opts: PresenceOptions): Promise<PresenceCounts> {
    const present = await this.read(await this.kv(), stream, opts.events);
    return { clients: present.length, users: new Set(present.map((p) => p.entry.user)).size };
  }

  async channels(
    namespace: string,
    prefix: string,
    limit: number,
    opts: PresenceOptions,
  ): Promise<Array<{ readonly stream: string } & PresenceCounts>> {
    const kv = await this.kv();
    const streams = new Set<string>();
    for await (const key of await kv.keys()) {
      const stream = unb64(key.slice(0, key.indexOf('.')));
      if (stream.startsWith(prefix) && namespaceOf(stream) === namespace) streams.add(stream);
    }
    const out: Array<{ readonly stream: string } & PresenceCounts> = [];
    for (const stream of streams) {
      if (out.length >= limit) break;
      const c = await this.count(stream, opts);
      if (c.clients > 0) out.push({ stream, ...c });
    }
    return out;
  }

  /** The live entries of `stream`; expired ones are removed (a leave each, by whoever removes it). */
  private async read(kv: KV, stream: string, events: boolean): Promise<Stored[]> {
    this.host.assertRunning();
    const keys: string[] = [];
    for await (const key of await kv.keys(`${b64(stream)}.*`)) keys.push(key);
    const now = Date.now();
    const out: Stored[] = [];
    for (const key of keys) {
      const got = await kv.get(key);
      if (got === null || got.operation !== 'PUT') continue;
      const stored = parse(key, got.revision, got.string());
      if (stored === undefined) continue;
      if (stored.deadline > now) {
        out.push(stored);
      } else if ((await this.remove(kv, key, got.revision)) && events) {
        this.emit('leave', stream, stored.entry);
      }
    }
    return out;
  }

  private async remove(kv: KV, key: string, revision: number): Promise<boolean> {
    try {
      await kv.purge(key, { previousSeq: revision });
      return true;
    } catch {
      return false;
    }
  }

  private emit(kind: 'join' | 'leave', stream: string, entry: PresenceEntry): void {
    this.host.connection().publish(`${this.host.prefix}.pe`, JSON.stringify({ k: kind, s: stream, e: entry }));
  }

  private onMessage(text: string): void {
    const o = jsonObject(text);
    if (o === undefined) return;
    const kind = o['k'] === 'join' || o['k'] === 'leave' ? o['k'] : undefined;
    const entry = presenceEntryOf(o['e']);
    if (kind === undefined || typeof o['s'] !== 'string' || entry === undefined) return;
    this.handler?.({ kind, stream: o['s'], entry });
  }

  private kv(): Promise<KV> {
    if (this.bucket === undefined) {
      const nc = this.host.connection();
      this.sub ??= nc.subscribe(`${this.host.prefix}.pe`, {
        callback: (err, msg) => {
          if (err === null) this.onMessage(msg.string());
        },
      });
      this.bucket = nc
        .flush()
        .then(() =>
          new Kvm(nc).create(`${this.host.prefix}_presence`, {
            history: 1,
            ttl: 86_400_000,
            replicas: this.host.replicas,
            storage: StorageType.File,
          }),
        )
        .catch((err: unknown) => {
          this.bucket = undefined;
          throw err;
        });
    }
    return this.bucket;
  }
}

function parse(key: string, revision: number, text: string): Stored | undefined {
  const o = jsonObject(text);
  const entry = presenceEntryOf(o?.['e']);
  const deadline = o?.['d'];
  if (entry === undefined || typeof deadline !== 'number') return undefined;
  return { key, revision, entry, deadline };
}

/** `text` as a JSON object (an array too), or undefined. */
function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
