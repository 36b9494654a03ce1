/**
 * The namespaces a NATS engine node follows: for each, its JetStream stream (created when first
 * used), the node's `NamespaceLog` of it, the ordered consumer that keeps the log up to date and
 * hands live publications to the sink, and everything that brings a log back in line with its
 * stream: waiting for the consumer (`sync`), reading missing messages directly when a consumer is
 * lost (`catchUp`), reading the stream again when it was recreated or lost messages (`reload`),
 * going on after the link to NATS came back (`onReconnect`). See nats-engine.ts for the design.
 */
import { namespaceOf } from '@herald/protocol';
import { headers } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { randomBytes } from 'node:crypto';
import type { HistoryPolicy, PublicationSink, PublishOutcome, PublishRequest } from '../../core/engine.js';
import type { Logger } from '../../core/logger.js';
import { LINEAGE_HEADER, NamespaceLog, type StoredMessage } from './namespace-log.js';

/** How often a marker write may find another node's append first. */
const MAX_ATTEMPTS = 50;
/** A namespace without subscribers on this node, unused this long, is no longer followed. */
const IDLE_NAMESPACE_MS = 10 * 60_000;

/** What the namespaces need of their engine. */
export interface NamespacesHost {
  readonly prefix: string;
  readonly logger: Logger;
  readonly stats: NatsEngineStats;
  readonly commandTimeout: number;
  readonly replicas: number;
  readonly storage: 'file' | 'memory';
  /** How long a stream created by a read (no policy yet) keeps messages, in ms. */
  readonly idleStreamTtl: number;
  /** Streams this node delivers (subscribed by its hub). */
  readonly subscribed: ReadonlySet<string>;
  jetstream(): JetStreamClient;
  manager(): JetStreamManager;
  running(): boolean;
  linkUp(): boolean;
  sink(): PublicationSink | undefined;
}

/** A publish waiting for its namespace's next batch (see the engine's `pump`). */
export interface PendingPublish {
  readonly req: PublishRequest;
  resolve(outcome: PublishOutcome): void;
  reject(err: unknown): void;
}

interface Waiter {
  readonly seq: number;
  resolve(): void;
}

/** One namespace: its JetStream stream, what this node applied of it, its consumer. */
export interface Namespace {
  readonly name: string;
  readonly stream: string;
  readonly log: NamespaceLog;
  /** `created` of the JetStream stream this log follows. */
  created: string;
  maxAgeMs: number;
  dupWindowMs: number;
  /** Loading (or reloading); settles once the log reached the stream's end, or failed. Never rejects. */
  loading: Promise<void>;
  /** Why the last (re)load failed; the next operation on the namespace loads it again. */
  failed: unknown;
  /** A reload planned after a failed one (so that a node that only delivers heals too). */
  retry: NodeJS.Timeout | undefined;
  /** When the log last applied a message or was checked (ms), and whether a check is running. */
  activeAt: number;
  checking: boolean;
  /** Publications up to this sequence are history, not delivered live. */
  liveFrom: number;
  /**
   * What the consumer before a reload handed out already (its lineage, up to which sequence): not
   * handed out again when the reload reads the same lineage (a new lineage is delivered in full).
   */
  handedOut: { lineage: string; upTo: number };
  /** When a publish, read or subscribe last asked for it (ms). */
  usedAt: number;
  /** Consumer run: messages of an older run are ignored. */
  run: number;
  consumer: ConsumerMessages | undefined;
  waiters: Waiter[];
  /** Publishes waiting for the namespace's next batch; `pumping` while one is on its way. */
  queue: PendingPublish[];
  pumping: boolean;
}

export interface NatsEngineStats {
  /** Live publications handed to this node's subscribed streams. */
  received: number;
  /** Times this node's streams were reported as gaps (link back, namespace reloaded). */
  gaps: number;
  /** Publishes retried because another node appended first. */
  conflicts: number;
  /** Namespaces read again from scratch (stream recreated, storage lost, another lineage). */
  reloads: number;
  /** Times a lagging consumer was caught up by reading the stream directly. */
  catchUps: number;
}

export class NatsNamespaces {
  private readonly map = new Map<string, Namespace>();

  constructor(private readonly host: NamespacesHost) {}

  values(): IterableIterator<Namespace> {
    return this.map.values();
  }

  get size(): number {
    return this.map.size;
  }

  /** Stops every consumer and retry, fails every waiting publish; forgets every namespace. */
  close(): void {
    for (const ns of this.map.values()) {
      this.stopConsumer(ns);
      if (ns.retry !== undefined) clearTimeout(ns.retry);
      for (const p of ns.queue.splice(0)) p.reject(new Error('nats engine is closed'));
    }
    this.map.clear();
  }

  // ---- loading --------------------------------------------------------------------------------

  /** The namespace's state, loaded (its stream created if needed, its config following `policy`). */
  async get(name: string, policy?: HistoryPolicy, idemWindowMs?: number): Promise<Namespace> {
    let ns = this.map.get(name);
    if (ns !== undefined) ns.usedAt = Date.now();
    if (ns === undefined) {
      const created: Namespace = {
        name,
        stream: `${this.host.prefix}_${streamToken(name)}`,
        log: new NamespaceLog(name, `${this.host.prefix}.b.${name}`),
        created: '',
        maxAgeMs: 0,
        dupWindowMs: 0,
        loading: Promise.resolve(),
        failed: undefined,
        retry: undefined,
        activeAt: Date.now(),
        checking: false,
        liveFrom: 0,
        handedOut: { lineage: '', upTo: 0 },
        usedAt: Date.now(),
        run: 0,
        consumer: undefined,
        waiters: [],
        queue: [],
        pumping: false,
      };
      created.loading = this.load(created, policy, idemWindowMs).then(
        () => void (created.failed = undefined),
        (err: unknown) => void (created.failed = err),
      );
      this.map.set(name, created);
      ns = created;
    }
    await this.loaded(ns);
    if (policy !== undefined) await this.applyPolicy(ns, policy, idemWindowMs ?? 0);
    return ns;
  }

  /** Waits for a (re)load on its way; loads again when the last one failed (rejects if it fails again). */
  async loaded(ns: Namespace): Promise<void> {
    await ns.loading;
    if (ns.failed !== undefined) await this.reload(ns, 'the last attempt to read it failed');
  }

  private async load(ns: Namespace, policy?: HistoryPolicy, idemWindowMs?: number): Promise<void> {
    const info = await this.ensureStream(ns, policy, idemWindowMs);
    await this.follow(ns, info);
  }

  /** Reads the stream from its first message (and writes a lineage marker on an empty one). */
  private async follow(ns: Namespace, first: StreamInfo): Promise<void> {
    let info = first;
    this.stopConsumer(ns);
    // What the old consumer already handed out is not handed out again (a reload reports a gap, so
    // the hub reads whatever it missed from history).
    ns.handedOut = { lineage: ns.log.lineage, upTo: ns.log.applied };
    ns.created = info.created;
    ns.maxAgeMs = Math.round(info.config.max_age / 1e6);
    ns.dupWindowMs = Math.round((info.config.duplicate_window ?? 0) / 1e6);
    for (let attempt = 1; ; attempt++) {
      const last = info.state.last_seq;
      ns.log.reset(Math.max(1, info.state.first_seq));
      ns.liveFrom = last;
      if (info.state.messages > 0) {
        this.startConsumer(ns, ns.log.applied + 1);
        await this.waitApplied(ns, last);
        if (ns.log.lineage !== '') return;
        this.stopConsumer(ns);
      }
      // No Herald message: a new lineage, written only if the stream is still at `last`.
      const h = headers();
      h.set(LINEAGE_HEADER, randomBytes(6).toString('base64url'));
      h.set('Nats-Expected-Last-Sequence', String(last));
      try {
        const ack = await this.host.jetstream().publish(`${this.host.prefix}.m.${ns.name}`, '', {
          headers: h,
          timeout: this.host.commandTimeout,
        });
        ns.log.reset(ack.seq);
        ns.liveFrom = ack.seq;
        this.startConsumer(ns, ack.seq);
        await this.waitApplied(ns, ack.seq);
        return;
      } catch (err) {
        if (attempt >= MAX_ATTEMPTS || !isWrongLastSequence(err)) throw err;
        info = await this.host.manager().streams.info(ns.stream);
      }
    }
  }

  private async ensureStream(ns: Namespace, policy?: HistoryPolicy, idemWindowMs?: number): Promise<StreamInfo> {
    const jsm = this.host.manager();
    try {
      return await jsm.streams.info(ns.stream);
    } catch (err) {
      if (!isNoStream(err)) throw err;
    }
    const maxAgeMs = policy !== undefined ? maxAgeOf(policy) : this.host.idleStreamTtl;
    const config: Partial<StreamConfig> & { name: string } = {
      name: ns.stream,
      subjects: [`${this.host.prefix}.b.${ns.name}`, `${this.host.prefix}.m.${ns.name}`],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      storage: this.host.storage === 'memory' ? StorageType.Memory : StorageType.File,
      num_replicas: this.host.replicas,
      max_age: maxAgeMs * 1e6,
      duplicate_window: Math.min(maxAgeMs, Math.max(1000, idemWindowMs ?? 120_000)) * 1e6,
    };
    try {
      return await jsm.streams.add(config);
    } catch (err) {
      // Another node created it first.
      if (err instanceof JetStreamApiError) return jsm.streams.info(ns.stream);
      throw err;
    }
  }

  /** Keeps the stream's max_age and duplicate window in line with the namespace's policy. */
  private async applyPolicy(ns: Namespace, policy: HistoryPolicy, idemWindowMs: number): Promise<void> {
    const maxAgeMs = maxAgeOf(policy);
    const dupMs = Math.min(maxAgeMs, Math.max(1000, idemWindowMs));
    if (ns.maxAgeMs === maxAgeMs && ns.dupWindowMs === dupMs) return;
    ns.maxAgeMs = maxAgeMs;
    ns.dupWindowMs = dupMs;
    try {
      const info = await this.host.manager().streams.info(ns.stream);
      await this.host.manager().streams.update(ns.stream, {
        ...info.config,
        max_age: maxAgeMs * 1e6,
        duplicate_window: dupMs * 1e6,
      });
    } catch (err) {
      this.host.logger.warn(
        { err, namespace: ns.name },
        'nats: cannot update the namespace stream to its history policy',
      );
    }
  }

  /**
   * Brings the node's log of `ns` to the stream's end as it is now: waits for the consumer, or
   * reloads when the stream is not the one followed (deleted, recreated, shorter: storage lost).
   */
  async sync(ns: Namespace): Promise<void> {
    await this.loaded(ns);
    // Taken before asking: the consumer may apply more while the answer is on its way.
    const applied = ns.log.applied;
    let info: StreamInfo;
    try {
      info = await this.host.manager().streams.info(ns.stream);
    } catch (err) {
      if (!isNoStream(err)) throw err;
      await this.reload(ns, 'its JetStream stream is gone');
      return;
    }
    if (info.created !== ns.created || info.state.last_seq < applied) {
      await this.reload(ns, 'its JetStream stream was recreated or lost messages');
      return;
    }
    try {
      await this.waitApplied(ns, info.state.last_seq);
    } catch {
      await this.catchUp(ns, info.state.last_seq);
    }
  }

  /**
   * The consumer did not bring the log to `last` in time (it may be gone with a server of the
   * cluster, and NATS may take a while to place a new one): reads the missing messages one by one
   * (any replica answers), then starts the consumer again after them.
   */
  private async catchUp(ns: Namespace, last: number): Promise<void> {
    this.host.stats.catchUps += 1;
    this.host.logger.warn({ namespace: ns.name }, 'nats: the namespace consumer lags; reading the stream directly');
    const run = ns.run;
    while (ns.log.applied < last && ns.run === run) {
      const from = ns.log.applied + 1;
      const seqs = Array.from({ length: Math.min(64, last - from + 1) }, (_, i) => from + i);
      const msgs = await Promise.all(seqs.map((seq) => this.readMessage(ns, seq)));
      if (ns.run !== run) break;
      for (let i = 0; i < seqs.length; i++) {
        const msg = msgs[i];
        if (msg !== undefined) this.applyMessage(ns, msg);
        else ns.log.skip(seqs[i] as number); // deleted (expired) meanwhile
      }
    }
    this.settleWaiters(ns);
    if (ns.run === run && ns.failed === undefined) this.startConsumer(ns, ns.log.applied + 1);
  }

  /**
   * Every 2 s, a namespace with subscribers on this node whose consumer delivered nothing for 2 s
   * is checked against its stream: recreated or shorter (storage lost) → reloaded; longer → caught
   * up. So a node that only delivers heals without waiting for a publish or a history read.
   */
  watch(): void {
    const now = Date.now();
    const delivering = new Set([...this.host.subscribed].map(namespaceOf));
    for (const ns of this.map.values()) {
      if (!delivering.has(ns.name) || ns.checking || ns.failed !== undefined) continue;
      if (now - ns.activeAt < 2_000 || !this.host.linkUp()) continue;
      ns.checking = true;
      this.sync(ns)
        .catch((err: unknown) => this.host.logger.debug({ err, namespace: ns.name }, 'nats: namespace check failed'))
        .finally(() => {
          ns.checking = false;
          ns.activeAt = Date.now();
        });
    }
  }

  /** Reads the namespace again from scratch; its subscribed streams are reported as gaps. */
  reload(ns: Namespace, why: string): Promise<void> {
    const run = ns.run;
    const next = ns.loading.then(async () => {
      if (ns.failed === undefined && ns.run !== run && ns.consumer !== undefined) return; // reloaded meanwhile
      this.host.stats.reloads += 1;
      this.host.logger.warn({ namespace: ns.name, why }, 'nats: reading the namespace stream again');
      try {
        const info = await this.ensureStream(ns);
        await this.follow(ns, info);
        ns.failed = undefined;
      } catch (err) {
        ns.failed = err;
        this.retryLater(ns);
        throw err;
      } finally {
        // Whatever the node may have missed meanwhile is read again by the hub.
        this.reportGaps(ns);
      }
    });
    ns.loading = next.catch(() => undefined);
    return next;
  }

  /** Reads the namespace again in a second, unless something else does first or the engine closed. */
  private retryLater(ns: Namespace): void {
    if (ns.retry !== undefined || !this.host.running()) return;
    ns.retry = setTimeout(() => {
      ns.retry = undefined;
      if (!this.host.running() || this.map.get(ns.name) !== ns) return;
      this.reload(ns, 'the last attempt failed').catch((err: unknown) => {
        this.host.logger.warn({ err, namespace: ns.name }, 'nats: cannot read the namespace stream (trying again)');
      });
    }, 1_000);
    ns.retry.unref();
  }

  // ---- consuming ---------------------------------------------------------------------------------

  private startConsumer(ns: Namespace, from: number): void {
    this.stopConsumer(ns);
    const run = ++ns.run;
    const js = this.host.jetstream();
    const loop = async (): Promise<void> => {
      const consumer = await js.consumers.get(ns.stream, {
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: Math.max(1, from),
      });
      if (ns.run !== run) return;
      // Heartbeats every 2.5 s: a consumer lost with a server is noticed (and made again) soon.
      const messages = await consumer.consume({ max_messages: 512, expires: 5_000 });
      if (ns.run !== run) {
        await messages.close();
        return;
      }
      ns.consumer = messages;
      for await (const m of messages) {
        if (ns.run !== run) break;
        this.onMessage(ns, m);
      }
    };
    loop().catch((err: unknown) => {
      if (ns.run !== run || !this.host.running()) return;
      this.host.logger.warn({ err, namespace: ns.name }, 'nats: the namespace consumer stopped; reading again');
      this.reload(ns, 'its consumer stopped').catch(() => undefined);
    });
  }

  stopConsumer(ns: Namespace): void {
    ns.run += 1;
    const c = ns.consumer;
    ns.consumer = undefined;
    if (c !== undefined) c.close().catch(() => undefined);
  }

  private onMessage(ns: Namespace, m: JsMsg): void {
    this.applyMessage(ns, {
      seq: m.seq,
      subject: m.subject,
      time: Math.floor(m.info.timestampNanos / 1e6),
      header: (name) => {
        const v = m.headers?.get(name);
        return v === undefined || v === '' ? undefined : v;
      },
      data: m.data,
    });
  }

  private applyMessage(ns: Namespace, msg: StoredMessage): void {
    ns.activeAt = Date.now();
    const result = ns.log.apply(msg);
    if (result.kind === 'reload') {
      this.reload(ns, 'a message of another lineage (the stream started again)').catch((err: unknown) =>
        this.host.logger.warn({ err, namespace: ns.name }, 'nats: reload failed'),
      );
      return;
    }
    const sink = this.host.sink();
    const seen = ns.handedOut.lineage === ns.log.lineage && msg.seq <= ns.handedOut.upTo;
    if (sink !== undefined && msg.seq > ns.liveFrom && !seen) {
      for (const pub of result.publications) {
        if (!this.host.subscribed.has(pub.stream)) continue;
        this.host.stats.received += 1;
        sink.onPublication(pub);
      }
    }
    this.settleWaiters(ns);
  }

  private settleWaiters(ns: Namespace): void {
    if (ns.waiters.length > 0) {
      const due = ns.waiters.filter((w) => w.seq <= ns.log.applied);
      ns.waiters = ns.waiters.filter((w) => w.seq > ns.log.applied);
      for (const w of due) w.resolve();
    }
  }

  /** Resolves once the log applied `seq`; rejects after the command timeout. */
  waitApplied(ns: Namespace, seq: number): Promise<void> {
    if (ns.log.applied >= seq) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        ns.waiters = ns.waiters.filter((w) => w !== waiter);
        reject(
          new Error(`nats: namespace ${ns.name} did not catch up with JetStream within ${this.host.commandTimeout} ms`),
        );
      }, this.host.commandTimeout);
      const waiter: Waiter = {
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      ns.waiters.push(waiter);
    });
  }

  async readMessage(ns: Namespace, seq: number): Promise<StoredMessage | undefined> {
    let sm;
    try {
      sm = await this.host.manager().streams.getMessage(ns.stream, { seq });
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 404) return undefined;
      throw err;
    }
    if (sm === null) return undefined;
    const h = sm.header;
    return {
      seq: sm.seq,
      subject: sm.subject,
      time: sm.time.getTime(),
      header: (name) => {
        const v = h.get(name);
        return v === '' ? undefined : v;
      },
      data: sm.data,
    };
  }

  onReconnect(): void {
    for (const ns of this.map.values()) {
      const resume = async (): Promise<void> => {
        await this.loaded(ns);
        const applied = ns.log.applied;
        let info: StreamInfo | undefined;
        try {
          info = await this.host.manager().streams.info(ns.stream);
        } catch (err) {
          if (!isNoStream(err)) throw err;
        }
        if (info === undefined || info.created !== ns.created || info.state.last_seq < applied) {
          await this.reload(ns, 'its JetStream stream was recreated or lost messages');
          return;
        }
        this.startConsumer(ns, ns.log.applied + 1);
        this.reportGaps(ns);
      };
      resume().catch((err: unknown) => {
        this.host.logger.warn({ err, namespace: ns.name }, 'nats: cannot resume a namespace after reconnecting');
        ns.failed = err;
        this.retryLater(ns);
      });
    }
  }

  private reportGaps(ns: Namespace): void {
    const streams = [...this.host.subscribed].filter((s) => namespaceOf(s) === ns.name);
    this.host.stats.gaps += 1;
    if (streams.length > 0) this.host.sink()?.onGap?.(streams);
  }

  /**
   * Forgets what expired from each log; stops following a namespace that has no subscribers on this
   * node and was not used for `IDLE_NAMESPACE_MS` (it is read again, from its stream, when used).
   */
  sweep(): void {
    const now = Date.now();
    const delivering = new Set([...this.host.subscribed].map(namespaceOf));
    for (const ns of [...this.map.values()]) {
      ns.log.sweep(now, (s) => this.host.subscribed.has(s));
      const idle = now - ns.usedAt > IDLE_NAMESPACE_MS && !delivering.has(ns.name);
      if (!idle || ns.pumping || ns.queue.length > 0 || ns.waiters.length > 0 || ns.checking) continue;
      this.stopConsumer(ns);
      if (ns.retry !== undefined) clearTimeout(ns.retry);
      this.map.delete(ns.name);
    }
  }
}

/** JetStream keeps a namespace's messages as long as its history or its offsets must live. */
function maxAgeOf(p: HistoryPolicy): number {
  return Math.max(1000, Math.floor(p.ttlMs), Math.floor(p.metaTtlMs));
}

/** A namespace as part of a JetStream stream name: letters, digits and `-` as they are, the rest `_xx`. */
function streamToken(namespace: string): string {
  return namespace.replace(/[^A-Za-z0-9-]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** The JetStream stream does not exist (a stream info or message read). */
function isNoStream(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === 10059;
}

/** JetStream took the request and refused it: the stream's last sequence was not the expected one. */
export function isWrongLastSequence(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.code === 10071;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
