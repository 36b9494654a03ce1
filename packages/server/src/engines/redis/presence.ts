/**
 * Presence in Redis, shared by every node: per channel, its entries, their deadlines and a count
 * per user, under the namespace's hash tag (so one Lua script, presence.lua, changes them
 * atomically, in the channel's slot on a Cluster or its namespace's shard), and per namespace an
 * index of the channels that have entries (the server API's `channels`).
 *
 * Deadlines are Redis's own time (the script reads `TIME`), so nodes whose clocks differ agree on
 * what has expired. Joins and leaves are sent on the channel's own pub/sub channel, beside its
 * publications: exactly the nodes with subscribers of the channel receive them, through the
 * subscriber links they already hold, wherever the topology puts that channel.
 */
import { namespaceOf } from '@herald/protocol';
import type {
  EnginePresence,
  PresenceCounts,
  PresenceEntry,
  PresenceEvent,
  PresenceJoin,
  PresenceOptions,
} from '../../core/presence.js';
import { parsePresenceEntry } from '../../core/presence.js';
import type { KeySpace } from './keys.js';
import type { Topology } from './topology.js';

/** What Redis presence needs of the engine (which implements it). */
export interface RedisPresenceHost {
  readonly keys: KeySpace;
  readonly topology: Topology;
  /** Throws when the engine is not running. */
  assertRunning(): void;
}

export class RedisPresence implements EnginePresence {
  private handler: ((event: PresenceEvent) => void) | undefined;

  constructor(private readonly host: RedisPresenceHost) {}

  onEvent(handler: (event: PresenceEvent) => void): void {
    this.handler = handler;
  }

  /**
   * A message on `stream`'s pub/sub channel that starts with a newline (see presence.lua): a join or
   * a leave. Returns false when it is neither.
   */
  onMessage(stream: string, payload: string): boolean {
    const kind = payload[1] === 'j' ? 'join' : payload[1] === 'l' ? 'leave' : undefined;
    const entry = kind !== undefined && payload[2] === '\n' ? parsePresenceEntry(payload.slice(3)) : undefined;
    if (kind === undefined || entry === undefined) return false;
    this.handler?.({ kind, stream, entry });
    return true;
  }

  async join(stream: string, entries: readonly PresenceJoin[], opts: PresenceOptions & { max: number }): Promise<void> {
    const args: (string | number)[] = [Math.max(0, Math.floor(opts.max))];
    for (const { entry, ttlMs } of entries) {
      args.push(entry.client, entry.user, JSON.stringify(entry), Math.max(1, Math.floor(ttlMs)));
    }
    await this.run('join', stream, opts, args);
  }

  async leave(stream: string, client: string, opts: PresenceOptions): Promise<void> {
    await this.run('leave', stream, opts, [client]);
  }

  async list(stream: string, opts: PresenceOptions): Promise<PresenceEntry[]> {
    const reply = await this.run('list', stream, opts, []);
    if (!Array.isArray(reply)) throw new Error('unexpected reply from the presence script');
    const out: PresenceEntry[] = [];
    for (const text of reply as unknown[]) {
      const entry = typeof text === 'string' ? parsePresenceEntry(text) : undefined;
      if (entry !== undefined) out.push(entry);
    }
    return out;
  }

  async count(stream: string, opts: PresenceOptions): Promise<PresenceCounts> {
    const reply = await this.run('count', stream, opts, []);
    if (!Array.isArray(reply) || reply.length !== 2) throw new Error('unexpected reply from the presence script');
    return { clients: Number(reply[0]), users: Number(reply[1]) };
  }

  async channels(
    namespace: string,
    prefix: string,
    limit: number,
    opts: PresenceOptions,
  ): Promise<Array<{ readonly stream: string } & PresenceCounts>> {
    this.host.assertRunning();
    const reply = await this.host.topology
      .client(namespace)
      .heraldPresence(1, this.host.keys.presenceIndex(namespace), 'channels', prefix, Math.max(0, Math.floor(limit)));
    if (!Array.isArray(reply)) throw new Error('unexpected reply from the presence script');
    const names = (reply as unknown[]).filter(
      (n): n is string => typeof n === 'string' && namespaceOf(n) === namespace,
    );
    // One count per channel (it also removes what expired), sent together.
    const counted = await Promise.all(names.map(async (stream) => ({ stream, ...(await this.count(stream, opts)) })));
    return counted.filter((c) => c.clients > 0);
  }

  private run(op: string, stream: string, opts: PresenceOptions, args: (string | number)[]): Promise<unknown> {
    this.host.assertRunning();
    const { keys, topology } = this.host;
    const ns = namespaceOf(stream);
    return topology
      .client(ns)
      .heraldPresence(
        4,
        keys.presenceEntries(stream),
        keys.presenceDeadlines(stream),
        keys.presenceUsers(stream),
        keys.presenceIndex(ns),
        op,
        stream,
        keys.live(stream),
        opts.events ? topology.publishCommand : '',
        ...args,
      );
  }
}
