/**
 * The hub: sessions, the streams they read, and the path of every publication from the engine to
 * the sockets. It refcounts streams (one engine subscription per stream per node, not per client),
 * runs subscribe-with-recovery so that no publication is lost or doubled when a subscribe races
 * with publishes, and batches writes. It does no I/O of its own: the engine and the transports
 * reach it through interfaces.
 */
import {
  HeraldError,
  LATEST_AND_REVERSE,
  checkChannel,
  isSubtree,
  namespaceOf,
  type Command,
  type HistoryResult,
  type PublishResult,
  type StreamPosition,
  type SubscribeResult,
} from '@herald/protocol';
import { randomBytes } from 'node:crypto';
import { namespaceAuthorizer, type Authorizer } from './authorizer.js';
import { systemClock, type Clock } from './clock.js';
import {
  runCommand,
  type CommandHost,
  type HistoryOptions,
  type SubscribeOptions,
  type SubscribeReply,
} from './commands.js';
import type { EncodeCache, FrameEncoder } from './encoder.js';
import type { Engine, HistoryOutcome, Publication, PublicationSink, PublishOutcome } from './engine.js';
import type { SessionIdentity } from './identity.js';
import type { Logger } from './logger.js';
import { connectChannel, publishChannel, reportConnect, reportPublish } from './diagnostics.js';
import { noMetrics, type Counter, type Histogram, type Metrics } from './metrics.js';
import { NodeControl, type NodeControlHost } from './node-control.js';
import { NodePresence, type PresenceWatcher } from './node-presence.js';
import type { HubLimits, NamespacePolicy, PresenceTiming } from './policy.js';
import type { PresenceCounts, PresenceEntry } from './presence.js';
import { fitCount, replyBytes, type ReplyOut } from './replies.js';
import { Session, type OutputCounters, type SessionCounters, type SessionHost, type SessionInit } from './session.js';
import { Recovery, type Start } from './recovery.js';
import { Subscription } from './subscription.js';
import { WriteBatch } from './write-batch.js';
import type { TransportConnection } from './transport.js';
import { binaryPayload, payloadSize } from './payload.js';

export interface HubOptions {
  readonly engine: Engine;
  readonly logger: Logger;
  readonly policy: (namespace: string) => NamespacePolicy;
  readonly limits: HubLimits;
  readonly idempotencyWindowMs: number;
  /** Who may do what; the namespace options alone when not given. */
  readonly authorizer?: Authorizer;
  /** Timers of the sessions (token expiry); the system clock when not given. */
  readonly clock?: Clock;
  /**
   * Identifies this node in `info`, logs, client ids and the engine's control channel; random when
   * not given. Must be unique among the nodes of a deployment; no `~` and no whitespace.
   */
  readonly nodeId?: string;
  /** Where counters go (see metrics.ts); nothing is kept when not given. */
  readonly metrics?: Metrics;
  /** How presence entries are kept alive (see node-presence.ts); 10 s / 30 s / 30 s when not given. */
  readonly presence?: PresenceTiming;
}

/** Bounds of the engine-call latency histogram, in seconds (0.1 ms to 5 s). */
const ENGINE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

interface EngineTimer {
  readonly latency: Histogram;
  readonly errors: Counter;
}

/** Presence timing when the options give none. */
export const DEFAULT_PRESENCE_TIMING: PresenceTiming = { refreshMs: 10_000, ttlMs: 30_000, lingerMs: 30_000 };

/** What the hub counts (see `Hub.constructor` for the metric names). */
interface HubCounters extends SessionCounters {
  /** Publications accepted by this node's publish calls (duplicates not counted). */
  readonly published: Counter;
  /** Publications this node received from the engine for its streams. */
  readonly received: Counter;
  /** Publication frames queued to sessions. */
  readonly deliveries: Counter;
  readonly connections: Counter;
}

interface StreamState {
  readonly subs: Set<Subscription>;
  /** Publications received for it (the admin page's rates per channel). */
  received: number;
  /** Who hears its joins and leaves without a subscription (see `watchPresence`); mostly none. */
  watchers?: Set<PresenceWatcher>;
  /** Resolves once the engine subscription for this stream is active. */
  readonly ready: Promise<void>;
}

/**
 * Told of the `POST /send` subscribes and unsubscribes of stateless (long-poll) clients, which hold
 * no subscription here between their polls: the long-poll transport keeps their joins and leaves
 * for their next poll (see long-poll.ts).
 */
export interface StatelessListener {
  subscribed(client: string, stream: string): void;
  unsubscribed(client: string, stream: string): void;
}

/**
 * The transport of a detached session (the commands of a stateless client's `POST /send`): it never
 * writes, since replies go to the caller's sink.
 */
const NO_TRANSPORT: TransportConnection = {
  name: 'detached',
  traits: { readsCommands: false, sendCommands: false, stateless: true },
  write: () => undefined,
  bufferedAmount: () => 0,
  close: () => undefined,
};

export class Hub implements PublicationSink, SessionHost, CommandHost, NodeControlHost {
  readonly engine: Engine;
  readonly logger: Logger;
  readonly limits: HubLimits;
  readonly nodeId: string;
  readonly startedAt = Date.now();
  readonly counters: HubCounters;
  /** Makes the open-connections gauge of a transport (on its first session, or before: a 0 is shown). */
  readonly trackTransport: (transport: string) => void;
  /** Latency and failures of engine calls, by operation. */
  private readonly engineTimers: (op: string) => EngineTimer;
  readonly sessions = new Map<string, Session>();
  private readonly streams = new Map<string, StreamState>();
  /** Serialises engine subscribe/unsubscribe calls per stream. */
  private readonly engineOps = new Map<string, Promise<void>>();
  private readonly policyOf: (namespace: string) => NamespacePolicy;
  private readonly idempotencyWindowMs: number;
  readonly authorizer: Authorizer;
  readonly clock: Clock;
  /** Every session's writes of a turn, flushed together (see write-batch.ts). */
  readonly writes = new WriteBatch();
  private clientSeq = 0;
  /** `POST /send` for sessions held by other nodes, through the engine's control channel. */
  readonly control: NodeControl;
  private readonly recovery: Recovery;
  /** This node's presence entries and the joins and leaves it hands to subscribers. */
  readonly presence: NodePresence;
  /** See `StatelessListener`; set by the long-poll transport. */
  stateless: StatelessListener | undefined;

  constructor(opts: HubOptions) {
    this.engine = opts.engine;
    this.logger = opts.logger;
    this.limits = opts.limits;
    this.policyOf = opts.policy;
    this.idempotencyWindowMs = opts.idempotencyWindowMs;
    this.authorizer = opts.authorizer ?? namespaceAuthorizer(opts.policy);
    this.clock = opts.clock ?? systemClock;
    this.nodeId = opts.nodeId ?? randomBytes(4).toString('hex');
    if (!/^[^\s~]+$/.test(this.nodeId)) throw new Error(`invalid node id ${JSON.stringify(this.nodeId)}`);
    const m = opts.metrics ?? noMetrics;
    const counters = {
      published: m.counter('herald_publications_total', 'Publications accepted by this node (duplicates not counted)'),
      received: m.counter('herald_publications_received_total', 'Publications received from the engine'),
      deliveries: m.counter('herald_deliveries_total', 'Publication frames queued to connections'),
      connections: m.counter('herald_connections_total', 'Client connections opened'),
      badFrames: m.counter('herald_bad_frames_total', 'Client frames refused as malformed or invalid'),
      slowDisconnects: m.counter('herald_slow_disconnects_total', 'Clients disconnected for reading too slowly'),
      slowSkipped: m.counter(
        'herald_slow_skipped_total',
        'Publications dropped for subscribers reading too slowly (slowConsumer drop-oldest, latest-only)',
      ),
    };
    const timers = new Map<string, EngineTimer>();
    const transports = new Set<string>();
    const outputs = new Map<string, OutputCounters>();
    const ended = new Map<string, Counter>();
    this.counters = {
      ...counters,
      output: (transport) => {
        let o = outputs.get(transport);
        if (o === undefined) {
          const labels = { transport };
          o = {
            writes: m.counter(
              'herald_writes_total',
              'Socket writes to clients (one carries every frame of a turn)',
              labels,
            ),
            bytes: m.counter('herald_bytes_written_total', 'Bytes written to clients', labels),
          };
          outputs.set(transport, o);
        }
        return o;
      },
      ended: (reason) => {
        let c = ended.get(reason);
        if (c === undefined) {
          c = m.counter('herald_disconnects_total', 'Client connections that ended, by reason', { reason });
          ended.set(reason, c);
        }
        c.inc();
      },
    };
    this.trackTransport = (transport) => {
      if (transports.has(transport)) return;
      transports.add(transport);
      m.gauge('herald_connections', 'Client connections open, by transport', () => this.connectionsOf(transport), {
        transport,
      });
    };
    m.gauge('herald_streams', 'Streams with subscribers on this node', () => this.streams.size);
    m.gauge('herald_subscriptions', 'Subscriptions of the connections open on this node', () => {
      let n = 0;
      for (const s of this.sessions.values()) n += s.subscriptions.size;
      return n;
    });
    this.engineTimers = (op) => {
      let t = timers.get(op);
      if (t === undefined) {
        const labels = { op };
        t = {
          latency: m.histogram(
            'herald_engine_operation_duration_seconds',
            'Engine calls (publish, history, presence, ...), from call to answer',
            ENGINE_BUCKETS,
            labels,
          ),
          errors: m.counter('herald_engine_errors_total', 'Engine calls that failed', labels),
        };
        timers.set(op, t);
      }
      return t;
    };
    this.control = new NodeControl(this, m);
    this.recovery = new Recovery({
      limits: this.limits,
      history: (req) => this.engineCall('history', () => this.engine.history(req)),
      deliveries: this.counters.deliveries,
      recovered: m.counter('herald_recoveries_total', 'Subscribes with a cursor, by outcome', { recovered: 'true' }),
      notRecovered: m.counter('herald_recoveries_total', 'Subscribes with a cursor, by outcome', {
        recovered: 'false',
      }),
      catchUps: m.counter(
        'herald_catch_ups_total',
        'Live subscriptions that fell behind (gap, new epoch, lost engine link) and re-read history',
      ),
    });
    this.presence = new NodePresence(
      {
        logger: this.logger,
        clock: this.clock,
        policy: (ns) => this.policyOf(ns),
        subscriptions: (stream) => this.streams.get(stream)?.subs,
        watchers: (stream) => this.streams.get(stream)?.watchers,
      },
      this.engine.presence,
      opts.presence ?? DEFAULT_PRESENCE_TIMING,
    );
  }

  async start(): Promise<void> {
    await this.engine.start(this);
    try {
      await this.control.start();
    } catch (err) {
      await this.engine.close();
      throw err;
    }
    this.presence.start();
  }

  /**
   * Stops the hub's own work before the engine closes: presence refreshes end, and the presence
   * updates on their way (the leaves of the sessions closed at shutdown) are awaited.
   */
  close(): Promise<void> {
    return this.presence.close();
  }

  policy(namespace: string): NamespacePolicy {
    return this.policyOf(namespace);
  }

  // ---- sessions -------------------------------------------------------------------------------

  createSession(transport: TransportConnection, encoder: FrameEncoder, init: Partial<SessionInit> = {}): Session {
    const id = init.id ?? this.newClientId();
    const session = new Session(this, transport, encoder, {
      id,
      remoteAddress: init.remoteAddress,
    });
    this.sessions.set(id, session);
    this.counters.connections.inc();
    this.trackTransport(transport.name);
    if (init.identity !== undefined) session.setIdentity(init.identity);
    if (connectChannel.hasSubscribers) reportConnect(session);
    return session;
  }

  /** A session that runs commands for a client without a connection here (see `SessionInit.detached`). */
  detachedSession(
    encoder: FrameEncoder,
    init: { id: string; identity?: SessionIdentity; remoteAddress?: string | undefined },
  ): Session {
    return new Session(this, NO_TRANSPORT, encoder, { ...init, detached: true });
  }

  /** Open connections of one transport (read when metrics are collected). */
  private connectionsOf(transport: string): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.transport.name === transport) n++;
    return n;
  }

  /** Forgets a session (disconnected or closed): drops its subscriptions. Idempotent. */
  detach(session: Session): void {
    for (const sub of session.subscriptions.values()) this.removeSubscription(sub);
    if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
  }

  /** Runs one command of a session (`SessionHost`): see `runCommand` in commands.ts. */
  runCommand(
    session: Session,
    cmd: Command,
    out: ReplyOut,
    enc: FrameEncoder,
    effected: () => void,
  ): Promise<Uint8Array | undefined> {
    return runCommand(this, session, cmd, out, enc, effected);
  }

  // ---- publish / history ----------------------------------------------------------------------

  /**
   * Not `async` and not through engineCall: one promise step per publication instead of three (the
   * server API's hot path); the same checks, timer and error mapping as engineCall.
   */
  publish(channel: unknown, data: unknown, opts: { idempotencyKey?: string | undefined } = {}): Promise<PublishResult> {
    try {
      return this.publishChecked(channel, data, opts);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  private publishChecked(
    channel: unknown,
    data: unknown,
    opts: { idempotencyKey?: string | undefined },
  ): Promise<PublishResult> {
    const check = exactChannel(channel);
    const policy = this.policyOf(check.namespace);
    const json = encodeData(data);
    const size = payloadSize(json);
    if (size > policy.maxMessageSize) {
      throw new HeraldError(
        'HERALD_ERR_MESSAGE_TOO_LARGE',
        `data is ${size} bytes; namespace "${check.namespace}" allows ${policy.maxMessageSize}`,
      );
    }
    const req = {
      channel: check.channel,
      data: json,
      history: { size: policy.historySize, ttlMs: policy.historyTtl, metaTtlMs: policy.historyMetaTtl },
      idempotencyWindowMs: this.idempotencyWindowMs,
      ...(opts.idempotencyKey !== undefined ? { idempotencyKey: opts.idempotencyKey } : {}),
    };
    const timer = this.engineTimers('publish');
    const start = performance.now();
    let stored: Promise<PublishOutcome>;
    try {
      stored = this.engine.publish(req);
    } catch (err) {
      stored = Promise.reject(err as Error);
    }
    return stored.then(
      (outcome) => {
        timer.latency.observe((performance.now() - start) / 1000);
        if (!outcome.duplicate) this.counters.published.inc();
        if (publishChannel.hasSubscribers) {
          reportPublish(check.channel, outcome.position, outcome.duplicate, this.nodeId, opts.idempotencyKey);
        }
        return {
          channel: check.channel,
          epoch: outcome.position.epoch,
          offset: outcome.position.offset,
          duplicate: outcome.duplicate,
        };
      },
      (err: unknown) => this.engineFailed('publish', timer, err),
    );
  }

  async history(
    stream: unknown,
    opts: HistoryOptions = {},
  ): Promise<{ result: Omit<HistoryResult, 'publications'>; publications: Publication[] }> {
    const check = checkChannel(stream);
    if (!check.ok) throw new HeraldError('HERALD_ERR_CHANNEL_INVALID', check.reason);
    const policy = this.policyOf(check.namespace);
    if (policy.historySize === 0) {
      throw new HeraldError('HERALD_ERR_HISTORY_DISABLED', `namespace "${check.namespace}" keeps no history`);
    }
    if (opts.latest === true && opts.reverse === true) {
      throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', LATEST_AND_REVERSE);
    }
    const wanted = Math.min(opts.limit ?? policy.historySize, policy.historySize);
    const { h, fit, cut } = await this.readHistory(check.channel, opts, wanted);
    const result: Omit<HistoryResult, 'publications'> = {
      stream: check.channel,
      epoch: h.position.epoch,
      offset: h.position.offset,
    };
    // `latest` reads newest first, like `reverse` (so that a cut keeps the newest), and answers in
    // offset order.
    const kept = cut ? h.publications.slice(0, fit) : h.publications;
    const publications = opts.latest === true ? kept.slice().reverse() : kept;
    if (cut) result.truncated = true;
    return { result, publications };
  }

  /**
   * Reads up to `wanted` publications of `stream`; when `opts.maxBytes` bounds the reply, only about
   * what fits: a first page, then one read sized from that page's average publication (a history of
   * large publications is not read whole from the engine to send a fraction of it). `fit` of them fit
   * in `maxBytes`; `cut` says that more matched than the result holds.
   */
  private async readHistory(
    stream: string,
    opts: HistoryOptions,
    wanted: number,
  ): Promise<{ h: HistoryOutcome; fit: number; cut: boolean }> {
    const read = (limit: number): Promise<HistoryOutcome> =>
      this.engineCall('history', () =>
        this.engine.history({
          stream,
          since: opts.since,
          limit,
          reverse: opts.reverse === true || opts.latest === true,
        }),
      );
    const max = opts.maxBytes;
    if (max === undefined) {
      const h = await read(wanted);
      return { h, fit: h.publications.length, cut: false };
    }
    if (max <= 0 || wanted === 0) {
      // No room left (a full `/send` response): only the position is read.
      const h = await read(0);
      return { h, fit: 0, cut: wanted > 0 && hasPublications(h, opts.since) };
    }
    let limit = Math.min(wanted, FIRST_HISTORY_PAGE);
    for (;;) {
      const h = await read(limit);
      const n = h.publications.length;
      const fit = fitCount(h.publications, max);
      if (fit < n) return { h, fit, cut: true };
      if (n < limit || limit === wanted) return { h, fit, cut: false };
      const average = replyBytes(h.publications) / n;
      limit = Math.min(wanted, Math.max(2 * limit, Math.ceil((1.25 * max) / average)));
    }
  }

  // ---- subscriptions --------------------------------------------------------------------------

  /**
   * Subscribes a session to a stream: the one entry for every transport. The subscription is
   * attached before anything is read, so live publications that race with the read are buffered;
   * the reply (with recovered or backlog publications) is queued through `reply`, then the buffer is
   * drained without gap or duplicate, then the subscription goes live (see recovery.ts).
   *
   * A detached session (a stateless client's `/send`: see `SessionInit.detached`) holds no
   * subscription: it is answered with what a subscription would start with.
   */
  async subscribe(session: Session, stream: string, opts: SubscribeOptions, reply: SubscribeReply): Promise<void> {
    const { policy, chanInfo } = await this.mayRead(session, stream, opts.token);
    if (session.detached) {
      const endTurn = await opts.turn?.();
      try {
        const first = await this.recovery.start(stream, policy, opts);
        this.stateless?.subscribed(session.id, stream);
        reply(startResult(stream, first), first.publications);
      } finally {
        endTurn?.();
      }
      return;
    }
    if (session.subscriptions.has(stream)) {
      throw new HeraldError('HERALD_ERR_SUBSCRIBE_ALREADY', `already subscribed to "${stream}"`);
    }
    if (session.subscriptions.size >= this.limits.maxSubscriptionsPerConnection) {
      throw new HeraldError(
        'HERALD_ERR_SUBSCRIBE_LIMIT',
        `at most ${this.limits.maxSubscriptionsPerConnection} subscriptions per connection`,
      );
    }
    if (session.state !== 'open') throw new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the connection is closing');
    const sub = new Subscription(session, stream);
    // Held publications are written from the session's queue; a stateless client reads from its cursor.
    if (policy.slowConsumer.policy !== 'disconnect' && !session.transport.traits.stateless)
      sub.slow = policy.slowConsumer;
    session.subscriptions.set(stream, sub);
    const st = this.attach(stream);
    st.subs.add(sub);
    let endTurn: (() => void) | undefined;
    try {
      await this.engineCall('subscribe', () => st.ready);
      endTurn = await opts.turn?.();
      const first = await this.recovery.start(stream, policy, opts);
      if (closed(sub)) throw unsubscribedWhileSubscribing(stream);
      if (policy.presence && this.presence.available && !isSubtree(stream)) {
        // In presence before the reply: a client that asks for presence once subscribed finds itself.
        // An unsubscribe while the join is on its way removes the entry after it (node-presence.ts).
        await this.presence.join(sub, presenceEntry(session, chanInfo), session.transport.traits.stateless);
        if (closed(sub)) throw unsubscribedWhileSubscribing(stream);
      }
      sub.epoch = first.position.epoch;
      sub.offset = first.position.offset;
      reply(startResult(stream, first), first.publications);
    } catch (err) {
      this.removeSubscription(sub);
      throw err;
    } finally {
      endTurn?.();
    }
    // The reply is out: from here a failure must not produce a second reply for the same command.
    // A subscriber whose drain fails is disconnected so that it resubscribes with its cursor.
    try {
      await this.recovery.drain(sub, policy);
    } catch (err) {
      session.logger.warn({ err, stream }, 'recovery after subscribe failed');
      session.disconnect('INSUFFICIENT_STATE', { reason: `could not recover "${stream}"`, flushFirst: true });
    }
  }

  /**
   * Checks that the session may read `stream` (grammar, then the authorizer); returns its namespace
   * policy, and the subscription token's `info` (presence's `chanInfo`) when there is one.
   */
  private async mayRead(
    session: Session,
    stream: string,
    token: string | undefined,
  ): Promise<{ policy: NamespacePolicy; chanInfo: unknown }> {
    const check = checkChannel(stream);
    if (!check.ok) throw new HeraldError('HERALD_ERR_CHANNEL_INVALID', check.reason);
    const chanInfo = await this.authorizer.subscribe(session, stream, token);
    return { policy: this.policyOf(check.namespace), chanInfo };
  }

  /**
   * A new, unique client id that names this node: `<nodeId>-<seq>` for a session this node holds,
   * `<nodeId>~<seq>` for a long-poll client (`stateless`), whose commands any node may run. See
   * `nodeOfClientId`.
   */
  newClientId(opts: { stateless?: boolean } = {}): string {
    this.clientSeq += 1;
    return `${this.nodeId}${opts.stateless === true ? '~' : '-'}${this.clientSeq.toString(36)}`;
  }

  /** Ends a session's subscription; a detached session holds none (nothing to do). */
  unsubscribe(session: Session, stream: string): void {
    if (session.detached) {
      // A long-poll client: its entry (lingering since its last poll) leaves now.
      if (!isSubtree(stream) && this.presence.available && this.policyOf(namespaceOf(stream)).presence) {
        void this.presence.left(stream, session.id);
      }
      this.stateless?.unsubscribed(session.id, stream);
      return;
    }
    const sub = session.subscriptions.get(stream);
    if (sub === undefined)
      throw new HeraldError('HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED', `not subscribed to "${stream}"`);
    this.removeSubscription(sub);
  }

  /**
   * Whether `stream` has joins and leaves: an exact channel of a namespace with `presence` and
   * `joinLeave` on, and an engine that keeps presence.
   */
  presenceEvents(stream: string): boolean {
    if (isSubtree(stream) || !this.presence.available) return false;
    const policy = this.policyOf(namespaceOf(stream));
    return policy.presence && policy.joinLeave;
  }

  /**
   * Hands the joins and leaves of `stream` (one with `presenceEvents`, that the client may read) to
   * `watcher` until `unwatchPresence`: a long-poll client between two polls. The stream stays
   * attached meanwhile (its engine subscription brings the events of other nodes).
   */
  watchPresence(stream: string, watcher: PresenceWatcher): void {
    const st = this.streams.get(stream) ?? this.attach(stream);
    (st.watchers ??= new Set()).add(watcher);
  }

  unwatchPresence(stream: string, watcher: PresenceWatcher): void {
    const st = this.streams.get(stream);
    if (st?.watchers === undefined || !st.watchers.delete(watcher)) return;
    if (st.watchers.size === 0) st.watchers = undefined;
    this.release(stream, st);
  }

  /**
   * Who is subscribed to `channel` (an exact channel of a namespace with presence on), on every
   * node. Rejects with HERALD_ERR_PRESENCE_DISABLED for a namespace without presence.
   */
  async presenceList(channel: unknown): Promise<{ channel: string; presence: PresenceEntry[] }> {
    const { name, policy } = this.presenceChannel(channel);
    const presence = await this.engineCall('presence', () => this.presence.list(name, { events: policy.joinLeave }));
    return { channel: name, presence };
  }

  /** How many clients and distinct users are subscribed to `channel` (as `presenceList`). */
  async presenceStats(channel: unknown): Promise<{ channel: string } & PresenceCounts> {
    const { name, policy } = this.presenceChannel(channel);
    const counts = await this.engineCall('presence', () => this.presence.count(name, { events: policy.joinLeave }));
    return { channel: name, clients: counts.clients, users: counts.users };
  }

  /** Checks a channel for `presence` and `presenceStats`: exact, of a namespace with presence on. */
  private presenceChannel(channel: unknown): { name: string; policy: NamespacePolicy } {
    const check = exactChannel(channel);
    const policy = this.policyOf(check.namespace);
    if (!policy.presence) {
      throw new HeraldError('HERALD_ERR_PRESENCE_DISABLED', `namespace "${check.namespace}" keeps no presence`);
    }
    if (!this.presence.available) {
      throw new HeraldError('HERALD_ERR_PRESENCE_DISABLED', `the ${this.engine.name} engine keeps no presence`);
    }
    return { name: check.channel, policy };
  }

  /**
   * The presence counts of `stream` on every node, or undefined when it has no presence (a subtree,
   * a namespace with presence off, an engine without presence).
   */
  async presenceCounts(stream: string): Promise<PresenceCounts | undefined> {
    if (isSubtree(stream) || !this.presence.available) return undefined;
    const policy = this.policyOf(namespaceOf(stream));
    if (!policy.presence) return undefined;
    return this.engineCall('presence', () => this.presence.count(stream, { events: policy.joinLeave }));
  }

  /**
   * The channels of `namespace` starting with `prefix` that have presence entries on any node, with
   * their counts (at most `limit`); none when the namespace has presence off.
   */
  async presenceChannels(
    namespace: string,
    prefix: string,
    limit: number,
  ): Promise<Array<{ readonly stream: string } & PresenceCounts>> {
    const policy = this.policyOf(namespace);
    if (!policy.presence || !this.presence.available) return [];
    return this.engineCall('presence', () =>
      this.presence.channels(namespace, prefix, limit, { events: policy.joinLeave }),
    );
  }

  /** Streams with local subscribers, with their subscriber counts. */
  channels(): { stream: string; subscribers: number }[] {
    const out: { stream: string; subscribers: number }[] = [];
    for (const [stream, st] of this.streams) if (st.subs.size > 0) out.push({ stream, subscribers: st.subs.size });
    return out;
  }

  /** Every stream of this node with its subscriber count and the publications it received so far. */
  *streamCounts(): IterableIterator<{ stream: string; subscribers: number; received: number }> {
    for (const [stream, st] of this.streams) yield { stream, subscribers: st.subs.size, received: st.received };
  }

  /** Disconnects sessions by client id and/or user id; returns how many. */
  disconnect(target: { client?: string | undefined; user?: string | undefined }, reconnect: boolean): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      const match =
        (target.client !== undefined && s.id === target.client) ||
        (target.user !== undefined && s.userId === target.user);
      if (!match) continue;
      s.disconnect(reconnect ? 'FORCE_RECONNECT' : 'FORCE_DISCONNECT', { flushFirst: true });
      n += 1;
    }
    return n;
  }

  /** Tells every client to reconnect later (spread over `jitterMs`) and closes them. */
  shutdown(jitterMs: number): void {
    for (const s of [...this.sessions.values()]) {
      s.disconnect('SHUTDOWN', { flushFirst: true, retryAfterMs: Math.floor(Math.random() * (jitterMs + 1)) });
    }
  }

  // ---- engine → hub ---------------------------------------------------------------------------

  onPublication(pub: Publication): void {
    const st = this.streams.get(pub.stream);
    if (st === undefined) return;
    st.received++;
    this.counters.received.inc();
    const cache: EncodeCache = {};
    let delivered = 0;
    for (const sub of st.subs) {
      if (sub.state === 'live') {
        if (pub.offset === sub.offset + 1 && pub.epoch === sub.epoch) {
          sub.offset = pub.offset;
          sub.session.deliver(pub, cache, sub);
          delivered++;
        } else if (pub.epoch !== sub.epoch || pub.offset > sub.offset) {
          // A gap (the engine lost publications on the way) or a new epoch: read history.
          this.recovery.fellBehind(sub, this.policyOf(namespaceOf(sub.stream)), pub);
        }
        // else: a duplicate of something already delivered.
      } else if (sub.state === 'recovering') {
        if (sub.buffer.length < this.limits.maxRecoveryBuffer) sub.buffer.push(pub);
        else sub.overflowed = true;
      }
    }
    this.counters.deliveries.inc(delivered);
  }

  onGap(streams: readonly string[] | undefined): void {
    const names = streams ?? [...this.streams.keys()];
    for (const name of names) {
      const st = this.streams.get(name);
      if (st === undefined) continue;
      for (const sub of st.subs) {
        // A subscription still recovering may have read history before the loss: its drain must
        // read again (the drain loop checks `overflowed` after every step).
        if (sub.state === 'recovering') sub.overflowed = true;
        if (sub.state !== 'live') continue;
        this.recovery.fellBehind(sub, this.policyOf(namespaceOf(sub.stream)), undefined);
      }
    }
  }

  // ---- internals ------------------------------------------------------------------------------

  /** Attaches `stream` (an engine subscription), if it is not yet. */
  private attach(stream: string): StreamState {
    let st = this.streams.get(stream);
    if (st === undefined) {
      const created: StreamState = {
        subs: new Set(),
        received: 0,
        ready: this.engineOp(stream, () => this.engine.subscribe(stream)),
      };
      // A failed engine subscribe is reported to the subscriber awaiting `ready`; keep it from
      // becoming an unhandled rejection when nobody awaits any more. Its watchers let go of it (they
      // miss its events, as its subscribers do), so that it goes with its last subscriber.
      created.ready.catch(() => {
        created.watchers = undefined;
        this.release(stream, created);
      });
      this.streams.set(stream, (st = created));
    }
    return st;
  }

  private removeSubscription(sub: Subscription): void {
    if (sub.state === 'closed') return;
    sub.state = 'closed';
    sub.buffer = [];
    sub.held = undefined;
    this.presence.ended(sub);
    if (sub.session.subscriptions.get(sub.stream) === sub) sub.session.subscriptions.delete(sub.stream);
    const st = this.streams.get(sub.stream);
    if (st !== undefined && st.subs.delete(sub)) this.release(sub.stream, st);
  }

  /** Detaches `stream` once nobody subscribes to it or watches it (see `watchPresence`). */
  private release(stream: string, st: StreamState): void {
    if (st.subs.size > 0 || st.watchers !== undefined || this.streams.get(stream) !== st) return;
    this.streams.delete(stream);
    this.engineOp(stream, () => this.engine.unsubscribe(stream)).catch((err: unknown) => {
      this.logger.warn({ err, stream }, 'engine unsubscribe failed');
    });
  }

  private engineOp(stream: string, op: () => Promise<void>): Promise<void> {
    const prev = this.engineOps.get(stream) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(op);
    const settled = next.catch(() => undefined);
    this.engineOps.set(stream, settled);
    void settled.then(() => {
      if (this.engineOps.get(stream) === settled) this.engineOps.delete(stream);
    });
    return next;
  }

  /** Runs an engine call; failures other than HeraldErrors become ENGINE_UNAVAILABLE (logged once). */
  private async engineCall<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const timer = this.engineTimers(what);
    const start = performance.now();
    try {
      const result = await fn();
      timer.latency.observe((performance.now() - start) / 1000);
      return result;
    } catch (err) {
      this.engineFailed(what, timer, err);
    }
  }

  /** Counts an engine call's failure and rethrows it: a HeraldError as is, anything else as ENGINE_UNAVAILABLE (logged). */
  private engineFailed(what: string, timer: { readonly errors: Counter }, err: unknown): never {
    timer.errors.inc();
    if (err instanceof HeraldError) throw err;
    this.logger.error({ err, op: what }, 'engine call failed');
    throw new HeraldError('HERALD_ERR_ENGINE_UNAVAILABLE', `engine ${what} failed`);
  }
}

/** Whether `sub` ended (read again after an await: the state may have changed meanwhile). */
function closed(sub: Subscription): boolean {
  return sub.state === 'closed';
}

function unsubscribedWhileSubscribing(stream: string): HeraldError {
  return new HeraldError('HERALD_ERR_SUBSCRIBE_NOT_SUBSCRIBED', `unsubscribed from "${stream}" while subscribing`);
}

/** The presence entry of a session's subscription. */
function presenceEntry(session: Session, chanInfo: unknown): PresenceEntry {
  const info = session.identity.info;
  return {
    client: session.id,
    user: session.userId,
    ...(info !== undefined ? { info } : {}),
    ...(chanInfo !== undefined ? { chanInfo } : {}),
  };
}

/** Stored form of a publication's data (payload.ts): JSON text, or marked base64 for bytes; rejects what JSON cannot carry. */
function encodeData(data: unknown): string {
  if (data === undefined) throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', '"data" is required');
  if (data instanceof Uint8Array) return binaryPayload(data);
  let json: string | undefined;
  try {
    json = JSON.stringify(data);
  } catch {
    json = undefined;
  }
  if (json === undefined) throw new HeraldError('HERALD_ERR_PROTOCOL_BAD_FIELD', '"data" must be JSON');
  return json;
}

/** Publications read first by a history whose reply is bounded (see `Hub.readHistory`). */
const FIRST_HISTORY_PAGE = 16;

/** Whether a history read that asked for none (`limit: 0`, giving `h`) had publications to give. */
function hasPublications(h: HistoryOutcome, since: StreamPosition | undefined): boolean {
  if (h.oldest > h.position.offset) return false;
  return since === undefined || (since.epoch === h.position.epoch && since.offset < h.position.offset);
}

/** A subscribe's result (without its publications) for a subscription that starts with `first`. */
function startResult(stream: string, first: Start): Omit<SubscribeResult, 'publications'> {
  return {
    stream,
    epoch: first.position.epoch,
    offset: first.position.offset,
    ...(first.recovered !== undefined ? { recovered: first.recovered } : {}),
  };
}

/** `channel` checked as an exact channel (publish, presence); a pattern gets its own code. */
function exactChannel(channel: unknown): { channel: string; namespace: string } {
  const check = checkChannel(channel, { allowSubtree: false });
  if (check.ok) return check;
  const code =
    typeof channel === 'string' && channel.endsWith('.**')
      ? 'HERALD_ERR_CHANNEL_PATTERN_NOT_ALLOWED'
      : 'HERALD_ERR_CHANNEL_INVALID';
  throw new HeraldError(code, check.reason);
}
