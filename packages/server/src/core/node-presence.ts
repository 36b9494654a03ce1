/**
 * This node's part of presence (see presence.ts): the entries of its subscriptions, kept in the
 * engine's presence while they last, and the joins and leaves the engine reports, handed to the
 * local subscribers of the channel.
 *
 * - A subscription to an exact channel of a namespace with `presence` on adds its entry before its
 *   subscribe is answered (`join`), so a client that asks for presence after subscribing finds
 *   itself; it is removed when the subscription ends (`ended`: unsubscribe, disconnect, token
 *   expiry, shutdown). Subtree subscriptions (`x.**`) have no presence.
 * - The engine calls of one stream run one after the other (`op`), so a leave always reaches the
 *   engine after the join it undoes: a client that unsubscribes while its join is on its way leaves
 *   no entry behind.
 * - Every `refreshMs` the node refreshes the entries it holds (one engine call per stream) and, by
 *   the same call, removes the expired entries of those streams, with a leave each: a dead node's
 *   entries leave at most `ttlMs + refreshMs` after its last refresh.
 * - A stateless client (long-polling) subscribes anew with every poll: its entry outlives each
 *   poll's subscription by `lingerMs`, so it stays present between polls and leaves once it stops
 *   polling (or unsubscribes through `POST /send`).
 *
 * Nothing here runs for a namespace with presence off: the hub asks only for subscriptions of
 * presence namespaces, and `ended` returns at once while the node holds no entry.
 */
import type { JoinPush, LeavePush } from '@herald/protocol';
import { namespaceOf } from '@herald/protocol';
import type { Clock, TimerHandle } from './clock.js';
import type { Logger } from './logger.js';
import type { NamespacePolicy, PresenceTiming } from './policy.js';
import type { EnginePresence, PresenceCounts, PresenceEntry, PresenceEvent, PresenceOptions } from './presence.js';
import type { Subscription } from './subscription.js';

/**
 * Who hears a channel's joins and leaves without a subscription to it: a long-poll client between
 * two polls (its mailbox, see long-poll.ts). Never told of its own join or leave.
 */
export interface PresenceWatcher {
  readonly client: string;
  presence(push: JoinPush | LeavePush): void;
}

/** What node presence needs of the hub. */
export interface NodePresenceHost {
  readonly logger: Logger;
  readonly clock: Clock;
  policy(namespace: string): NamespacePolicy;
  /** The local subscriptions of `stream`, if it has any. */
  subscriptions(stream: string): Iterable<Subscription> | undefined;
  /** The watchers of `stream`, if it has any (see `PresenceWatcher`). */
  watchers(stream: string): Iterable<PresenceWatcher> | undefined;
}

/** One entry this node put in a stream's presence. */
interface Held {
  readonly entry: PresenceEntry;
  /** The subscription that holds it; undefined once a stateless client's poll ended (it lingers). */
  sub: Subscription | undefined;
  readonly ttlMs: number;
  /** A stateless client's entry (see the top). */
  readonly stateless: boolean;
  /** A lingering entry: when this node stops looking after it (ms, the node's clock). */
  until: number;
}

export class NodePresence {
  /** Entries this node holds, by stream and client id. */
  private readonly held = new Map<string, Map<string, Held>>();
  /** The engine calls of each stream, chained (see `op`). */
  private readonly ops = new Map<string, Promise<void>>();
  private timer: TimerHandle | undefined;
  /** Failed engine calls not logged yet, and when the last log line was written (see `failed`). */
  private unlogged = 0;
  private loggedAt = -Infinity;

  constructor(
    private readonly host: NodePresenceHost,
    private readonly engine: EnginePresence | undefined,
    private readonly timing: PresenceTiming,
  ) {
    engine?.onEvent((event) => this.onEvent(event));
  }

  /** Whether the engine keeps presence. */
  get available(): boolean {
    return this.engine !== undefined;
  }

  /** How long a stateless client's entry outlives each of its polls, in ms. */
  get lingerMs(): number {
    return this.timing.lingerMs;
  }

  /** Streams and entries held by this node (tests, `info`). */
  get size(): { streams: number; entries: number } {
    let entries = 0;
    for (const m of this.held.values()) entries += m.size;
    return { streams: this.held.size, entries };
  }

  start(): void {
    if (this.engine === undefined || this.timer !== undefined) return;
    this.timer = this.host.clock.setInterval(() => this.refresh(), this.timing.refreshMs);
  }

  /** Stops refreshing and waits for the engine calls on their way (leaves of closed sessions). */
  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    await Promise.all([...this.ops.values()]);
  }

  /**
   * Adds the entry of `sub` (a subscription to an exact channel of a presence namespace, not yet
   * answered). Resolves once the engine has it; an engine failure is logged, not thrown (the
   * subscription works without presence, and the next refresh adds the entry).
   */
  join(sub: Subscription, entry: PresenceEntry, stateless: boolean): Promise<void> {
    const engine = this.engine;
    if (engine === undefined || sub.state === 'closed') return Promise.resolve();
    const stream = sub.stream;
    let streamHeld = this.held.get(stream);
    if (streamHeld === undefined) {
      streamHeld = new Map();
      this.held.set(stream, streamHeld);
    }
    const ttlMs = stateless ? this.timing.lingerMs : this.timing.ttlMs;
    streamHeld.set(entry.client, { entry, sub, ttlMs, stateless, until: 0 });
    const policy = this.host.policy(namespaceOf(stream));
    const opts = { events: policy.joinLeave, max: policy.maxPresence };
    return this.op(stream, () => engine.join(stream, [{ entry, ttlMs }], opts));
  }

  /** A subscription ended: its entry leaves (a stateless client's lingers; see the top). */
  ended(sub: Subscription): void {
    if (this.held.size === 0) return;
    const streamHeld = this.held.get(sub.stream);
    const h = streamHeld?.get(sub.session.id);
    if (streamHeld === undefined || h === undefined || h.sub !== sub) return;
    if (h.stateless) {
      h.sub = undefined;
      // One refresh more than the entry's own life, so the refresh that finds it expired comes from here.
      h.until = this.host.clock.now() + h.ttlMs + this.timing.refreshMs;
      return;
    }
    this.drop(sub.stream, sub.session.id, streamHeld);
  }

  /** A client left a stream without holding a subscription here (a long-poll client's `unsubscribe`). */
  left(stream: string, client: string): Promise<void> {
    const streamHeld = this.held.get(stream);
    const h = streamHeld?.get(client);
    // Forgotten here whether or not a poll still holds the stream: that poll's end must not make the
    // entry linger (and be refreshed back) after the client said it left.
    if (streamHeld !== undefined && h !== undefined) streamHeld.delete(client);
    if (streamHeld?.size === 0) this.held.delete(stream);
    const engine = this.engine;
    if (engine === undefined) return Promise.resolve();
    const events = this.host.policy(namespaceOf(stream)).joinLeave;
    return this.op(stream, () => engine.leave(stream, client, { events }));
  }

  list(stream: string, opts: PresenceOptions): Promise<PresenceEntry[]> {
    return (this.engine as EnginePresence).list(stream, opts);
  }

  count(stream: string, opts: PresenceOptions): Promise<PresenceCounts> {
    return (this.engine as EnginePresence).count(stream, opts);
  }

  channels(
    namespace: string,
    prefix: string,
    limit: number,
    opts: PresenceOptions,
  ): Promise<Array<{ readonly stream: string } & PresenceCounts>> {
    return (this.engine as EnginePresence).channels(namespace, prefix, limit, opts);
  }

  private drop(stream: string, client: string, streamHeld: Map<string, Held>): void {
    streamHeld.delete(client);
    if (streamHeld.size === 0) this.held.delete(stream);
    const engine = this.engine as EnginePresence;
    const events = this.host.policy(namespaceOf(stream)).joinLeave;
    void this.op(stream, () => engine.leave(stream, client, { events }));
  }

  /**
   * Refreshes the entries this node holds, one engine call per stream (which also removes the
   * stream's expired entries), and forgets lingering entries whose time is up. A stream whose
   * previous call has not finished (the engine is slow or down) waits for the next round.
   */
  private refresh(): void {
    const engine = this.engine as EnginePresence;
    const now = this.host.clock.now();
    for (const [stream, streamHeld] of this.held) {
      if (this.ops.has(stream)) continue;
      const joins: { entry: PresenceEntry; ttlMs: number }[] = [];
      for (const [client, h] of streamHeld) {
        if (h.sub !== undefined) joins.push({ entry: h.entry, ttlMs: h.ttlMs });
        else if (h.until <= now) streamHeld.delete(client);
      }
      if (streamHeld.size === 0) this.held.delete(stream);
      const policy = this.host.policy(namespaceOf(stream));
      const opts = { events: policy.joinLeave, max: policy.maxPresence };
      void this.op(stream, () => engine.join(stream, joins, opts));
    }
  }

  /**
   * Runs `call` after the calls of `stream` before it. Never rejects: a failure is logged (an entry
   * that did not make it in is added by the next refresh; one that did not leave expires).
   */
  private op(stream: string, call: () => Promise<void>): Promise<void> {
    const prev = this.ops.get(stream) ?? Promise.resolve();
    const next = prev.then(call).catch((err: unknown) => this.failed(err, stream));
    this.ops.set(stream, next);
    void next.then(() => {
      if (this.ops.get(stream) === next) this.ops.delete(stream);
    });
    return next;
  }

  /**
   * Logs a failed engine call: the first at once, then at most one line per 10 s with the number
   * of failures since (an engine that is down fails every stream's refresh, every interval).
   */
  private failed(err: unknown, stream: string): void {
    this.unlogged += 1;
    const now = this.host.clock.now();
    if (now - this.loggedAt < 10_000) return;
    this.host.logger.warn({ err, stream, failures: this.unlogged }, 'presence update failed');
    this.unlogged = 0;
    this.loggedAt = now;
  }

  /**
   * A join or leave on any node: pushed to the other local subscribers of the channel, and handed to
   * its watchers (long-poll clients between two polls).
   */
  private onEvent(event: PresenceEvent): void {
    const subs = this.host.subscriptions(event.stream);
    if (subs === undefined || !this.host.policy(namespaceOf(event.stream)).joinLeave) return;
    const push: JoinPush | LeavePush = { push: event.kind, channel: event.stream, ...event.entry };
    for (const sub of subs) {
      // Only subscriptions already answered (their epoch is set just before the reply), never the
      // client the event is about.
      if (sub.state === 'closed' || sub.epoch === '' || sub.session.id === event.entry.client) continue;
      sub.session.sendPush(push);
    }
    for (const w of this.host.watchers(event.stream) ?? []) if (w.client !== event.entry.client) w.presence(push);
  }
}
