/**
 * The NATS engine: streams, offsets, history and idempotency keys in NATS JetStream, shared by every
 * node that points at the same NATS (a server or a cluster).
 *
 * Why this design (the guarantees of engine.ts on a store with no scripts, and, on nats-server 2.9,
 * no atomic batches, no per-message TTL, no wildcard expected-subject-sequence):
 * - One JetStream stream per Herald namespace (created on first use; subjects `<prefix>.b.<ns>` for
 *   publications and `<prefix>.m.<ns>` for lineage markers). One JetStream message carries one or
 *   more publications, each with the epoch and offset of every Herald stream it belongs to (its
 *   channel and each subtree stream above it): all the appends of a publication are one append,
 *   atomic by construction (namespace-log.ts has the format).
 * - Every node applies the namespace's messages in sequence order (one ordered consumer per
 *   namespace per node; namespaces.ts), so a node that applied up to sequence N knows every
 *   stream's offset at N. It publishes the next offsets with `Nats-Expected-Last-Sequence: N`:
 *   JetStream appends only if nothing came in between, so offsets of a stream go up by exactly 1 in
 *   one total order however many nodes publish; on "wrong last sequence" the node waits for its
 *   log to reach the stream's end and tries again. A node has one message per namespace on its way
 *   at a time; the publishes that came meanwhile go together in the next one (`pump`), so a round
 *   trip carries up to 256 publications under load.
 * - Epochs. A lineage id (random) is written in every message; it is chosen when the JetStream
 *   stream has no message at all (created, every message expired, memory storage lost at a NATS
 *   restart) by a marker message, written with the same expected-sequence check so that all nodes
 *   agree on it. A Herald stream that has no state yet starts with epoch `<lineage><floor>`, where
 *   the floor is a JetStream sequence above every message of any stream state forgotten (expired
 *   after the meta TTL): so an epoch never restarts at offset 1 twice. A node that finds the stream
 *   deleted, recreated, or shorter than what it applied, or a message of another lineage, reloads
 *   the namespace and reports a gap, and the hub re-reads history (under a new epoch: `recovered:
 *   false`). NATS restarted with file storage keeps the lineage: clients resume (`recovered: true`).
 * - Live publications reach a node from JetStream itself (its consumer), never from core NATS
 *   publishes, so a publish that JetStream refused is never delivered. After the link to NATS comes
 *   back, consumers go on from the last applied sequence, and the streams are reported as gaps. A
 *   consumer that does not deliver (lost with a cluster server) is caught up by reading the stream.
 * - History: the node knows where each stream's kept publications are (JetStream sequence and
 *   index in the message; size from the publication; TTL applied when reading), and reads those
 *   messages by sequence. The JetStream stream keeps messages for max(ttl, metaTtl) (`max_age`).
 * - Idempotency: `Nats-Msg-Id` (a hash of channel and key; such a publish goes alone in its
 *   message); a duplicate's ack names the original sequence, which gives its position. JetStream's
 *   duplicate window is per JetStream stream: the `idempotencyWindow` (at most the stream's max_age).
 * - `control`: NATS request/reply (control.ts); `nodes`: a key-value bucket (nodes.ts); `presence`:
 *   a key-value bucket (presence.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { namespaceOf } from '@herald/protocol';
import {
  connect,
  credsAuthenticator,
  headers,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type {
  Engine,
  HistoryOutcome,
  HistoryRequest,
  Publication,
  PublicationSink,
  PublishOutcome,
  PublishRequest,
} from '../../core/engine.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import { NatsControl, type NatsControlStats } from './control.js';
import { LINEAGE_HEADER, decodeBatch, encodeBatch, encodePolicy, type StoredMessage } from './namespace-log.js';
import {
  NatsNamespaces,
  errorText,
  isWrongLastSequence,
  type Namespace,
  type NatsEngineStats,
  type PendingPublish,
} from './namespaces.js';
import { NatsNodes } from './nodes.js';
import { NatsPresence } from './presence.js';

export type { NatsEngineStats } from './namespaces.js';

export interface NatsEngineOptions {
  /** NATS server URLs (`nats://host:4222`, `tls://...`). Default `nats://127.0.0.1:4222`. */
  readonly servers?: readonly string[];
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  /** A `.creds` file (JWT and NKey seed). */
  readonly credsFile?: string;
  /** TLS: CA, client certificate and key files; an object (even empty), or a `tls://` URL, turns TLS on. */
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
  /** Prefix of every subject, stream and bucket Herald uses (letters, digits, `-`, `_`). */
  readonly prefix?: string;
  readonly logger?: Logger;
  /** How long connecting may take, in ms. */
  readonly connectTimeout?: number;
  /** How long a JetStream request may wait for its answer, in ms. */
  readonly commandTimeout?: number;
  /** JetStream replicas of the streams Herald creates (1, 3 or 5 on a cluster). */
  readonly replicas?: number;
  /** Storage of the streams Herald creates. */
  readonly storage?: 'file' | 'memory';
  /** How long a namespace stream created by a read (no policy yet) keeps messages, in ms (default 24 h). */
  readonly idleStreamTtl?: number;
}

/** How often a publish may find another node's append first before it fails. */
const MAX_ATTEMPTS = 50;
/** How often a publish may find no JetStream stream leader (a failover, a recreated stream) before it fails. */
const MAX_NO_STREAM_ATTEMPTS = 5;
const PREFIX = /^[A-Za-z0-9_-]{1,32}$/;

type EngineState = 'created' | 'starting' | 'running' | 'closed';

/** Publications in one JetStream message at most, and their data's bytes (one may exceed it). */
const BATCH_COUNT = 256;
const BATCH_BYTES = 256 * 1024;

export class NatsEngine implements Engine {
  readonly name = 'nats';
  readonly instanceId = randomBytes(6).toString('base64url');
  readonly stats: NatsEngineStats = { received: 0, gaps: 0, conflicts: 0, reloads: 0, catchUps: 0 };
  readonly control: NatsControl;
  readonly nodes: NatsNodes;
  readonly presence: NatsPresence;
  readonly prefix: string;
  private readonly logger: Logger;
  private readonly servers: string[];
  /** `servers` as written in logs, errors and status (passwords and tokens in URLs masked). */
  private readonly shownServers: string[];
  private readonly commandTimeout: number;
  private readonly replicas: number;
  private readonly storage: 'file' | 'memory';
  private readonly idleStreamTtl: number;
  private state: EngineState = 'created';
  private linkUp = false;
  private sink: PublicationSink | undefined;
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private jsm: JetStreamManager | undefined;
  private readonly spaces: NatsNamespaces;
  private readonly subscribed = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  private watcher: NodeJS.Timeout | undefined;

  constructor(private readonly opts: NatsEngineOptions = {}) {
    this.logger = opts.logger ?? silentLogger;
    this.prefix = opts.prefix ?? 'herald';
    if (!PREFIX.test(this.prefix)) {
      throw new Error(`nats.prefix ${JSON.stringify(this.prefix)}: use 1 to 32 letters, digits, "-" or "_"`);
    }
    this.servers =
      opts.servers !== undefined && opts.servers.length > 0 ? [...opts.servers] : ['nats://127.0.0.1:4222'];
    this.shownServers = this.servers.map(maskUrl);
    this.commandTimeout = opts.commandTimeout ?? 5_000;
    this.replicas = opts.replicas ?? 1;
    this.storage = opts.storage ?? 'file';
    this.idleStreamTtl = opts.idleStreamTtl ?? 86_400_000;
    this.control = new NatsControl(() => this.connection(), `${this.prefix}.n.`, this.logger);
    this.nodes = new NatsNodes(() => this.connection(), `${this.prefix}_nodes`, {
      replicas: this.replicas,
      storage: this.storage,
    });
    this.spaces = new NatsNamespaces({
      prefix: this.prefix,
      logger: this.logger,
      stats: this.stats,
      commandTimeout: this.commandTimeout,
      replicas: this.replicas,
      storage: this.storage,
      idleStreamTtl: this.idleStreamTtl,
      subscribed: this.subscribed,
      jetstream: () => this.jetstream(),
      manager: () => this.manager(),
      running: () => this.state === 'running',
      linkUp: () => this.linkUp,
      sink: () => this.sink,
    });
    this.presence = new NatsPresence({
      connection: () => this.connection(),
      prefix: this.prefix,
      replicas: this.replicas,
      assertRunning: () => this.assertRunning(),
    });
  }

  async start(sink: PublicationSink): Promise<void> {
    if (this.state !== 'created') throw new Error(`nats engine cannot start: it is ${this.state}`);
    this.state = 'starting';
    this.sink = sink;
    try {
      this.nc = await connect(this.connectOptions());
    } catch (err) {
      this.state = 'closed';
      throw new Error(`cannot connect to NATS at ${this.shownServers.join(', ')}: ${errorText(err)}`);
    }
    this.linkUp = true;
    this.js = jetstream(this.nc, { timeout: this.commandTimeout });
    try {
      this.jsm = await this.jetstreamReady(this.nc);
    } catch (err) {
      await this.nc.close();
      this.state = 'closed';
      throw new Error(
        `NATS at ${this.shownServers.join(', ')} has no JetStream (start nats-server with -js): ${errorText(err)}`,
      );
    }
    this.watchStatus(this.nc);
    this.sweeper = setInterval(() => this.spaces.sweep(), 60_000);
    this.sweeper.unref();
    this.watcher = setInterval(() => this.spaces.watch(), 2_000);
    this.watcher.unref();
    this.state = 'running';
    this.logger.info({ servers: this.shownServers }, 'nats engine ready');
  }

  /**
   * The JetStream manager, once JetStream answers. A NATS cluster that just started answers only
   * once it elected its JetStream leader: timeouts are tried again until `connectTimeout` passed;
   * "no responders" (JetStream off) fails at once.
   */
  private async jetstreamReady(nc: NatsConnection): Promise<JetStreamManager> {
    const deadline = Date.now() + (this.opts.connectTimeout ?? 5_000);
    for (;;) {
      const left = deadline - Date.now();
      try {
        return await jetstreamManager(nc, { timeout: Math.max(500, Math.min(this.commandTimeout, left)) });
      } catch (err) {
        if (isNoResponders(err) || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.sink = undefined;
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    if (this.watcher !== undefined) clearInterval(this.watcher);
    this.control.close();
    this.presence.close();
    this.spaces.close();
    this.subscribed.clear();
    await this.nc?.close().catch(() => undefined);
  }

  ready(): boolean {
    return this.state === 'running' && this.linkUp;
  }

  status(): {
    servers: string[];
    connected: boolean;
    namespaces: number;
    streams: number;
    subscribed: number;
    control: NatsControlStats;
  } & NatsEngineStats {
    let streams = 0;
    for (const ns of this.spaces.values()) streams += ns.log.size;
    return {
      servers: this.shownServers,
      connected: this.linkUp,
      namespaces: this.spaces.size,
      streams,
      subscribed: this.subscribed.size,
      ...this.stats,
      control: { ...this.control.stats },
    };
  }

  instrument(m: Metrics): void {
    const s = this.stats;
    m.counterFn('herald_nats_received_total', 'Live publications received from JetStream', () => s.received);
    m.counterFn(
      'herald_nats_catch_ups_total',
      'Times streams were reported as gaps (the hub re-read history)',
      () => s.gaps,
    );
    m.counterFn(
      'herald_nats_conflicts_total',
      'Publishes retried because another node appended first',
      () => s.conflicts,
    );
    m.counterFn('herald_nats_reloads_total', 'Namespaces read again (stream recreated, storage lost)', () => s.reloads);
    m.gauge('herald_nats_link_up', 'Whether the connection to NATS is up (1) or not (0)', () => (this.linkUp ? 1 : 0));
  }

  async publish(req: PublishRequest): Promise<PublishOutcome> {
    this.assertRunning();
    const ns = await this.spaces.get(namespaceOf(req.channel), req.history, req.idempotencyWindowMs);
    return new Promise<PublishOutcome>((resolve, reject) => {
      ns.queue.push({ req, resolve, reject });
      this.pump(ns);
    });
  }

  async history(req: HistoryRequest): Promise<HistoryOutcome> {
    this.assertRunning();
    const ns = await this.spaces.get(namespaceOf(req.stream));
    await this.spaces.sync(ns);
    const kept = ns.log.kept(req.stream, Date.now());
    const position = { epoch: kept.epoch, offset: kept.top };
    let oldest = kept.entries[0]?.offset ?? kept.top + 1;
    if (req.since !== undefined && req.since.epoch !== kept.epoch) return { position, oldest, publications: [] };
    const since = req.since?.offset ?? 0;
    const after = kept.entries.filter((e) => e.offset > since);
    const n = Math.max(0, Math.min(Math.floor(req.limit), after.length));
    if (n === 0) return { position, oldest, publications: [] };
    const chosen = req.reverse === true ? after.slice(after.length - n) : after.slice(0, n);
    // One read per JetStream message (a batch holds several publications).
    const reads = new Map<
      number,
      Promise<{ msg: StoredMessage; entries: ReturnType<typeof decodeBatch> } | undefined>
    >();
    for (const e of chosen) {
      if (reads.has(e.seq)) continue;
      reads.set(
        e.seq,
        this.spaces
          .readMessage(ns, e.seq)
          .then((msg) => (msg === undefined ? undefined : { msg, entries: decodeBatch(msg.data) })),
      );
    }
    let publications: Publication[] = [];
    for (const e of chosen) {
      const read = await reads.get(e.seq);
      const entry = read?.entries?.[e.index];
      if (read === undefined || entry === undefined) {
        // Gone from JetStream (removed by hand, or max_age): nothing at or before it is kept.
        publications = [];
        oldest = Math.max(oldest, e.offset + 1);
        continue;
      }
      publications.push({
        stream: req.stream,
        channel: entry.channel,
        epoch: kept.epoch,
        offset: e.offset,
        data: entry.data,
        time: read.msg.time,
      });
    }
    if (req.reverse === true) publications.reverse();
    return { position, oldest, publications };
  }

  async subscribe(stream: string): Promise<void> {
    this.assertRunning();
    await this.spaces.get(namespaceOf(stream));
    this.subscribed.add(stream);
  }

  unsubscribe(stream: string): Promise<void> {
    this.subscribed.delete(stream);
    return Promise.resolve();
  }

  /** Deletes every JetStream stream and bucket under this engine's prefix (tests, uninstall). */
  async dropAll(): Promise<void> {
    const jsm = this.manager();
    const names: string[] = [];
    for await (const s of jsm.streams.names()) {
      if (s.startsWith(`${this.prefix}_`) || s === `KV_${this.prefix}_nodes` || s === `KV_${this.prefix}_presence`) {
        names.push(s);
      }
    }
    for (const s of names) await jsm.streams.delete(s).catch(() => undefined);
  }

  // ---- publishing --------------------------------------------------------------------------------

  /**
   * Sends the namespace's waiting publishes, one batch (one JetStream message) at a time: those
   * that came while a batch was on its way go together in the next one. A publish with an
   * idempotency key goes alone (its key is the message's `Nats-Msg-Id`).
   */
  private pump(ns: Namespace): void {
    if (ns.pumping) return;
    ns.pumping = true;
    const run = async (): Promise<void> => {
      while (ns.queue.length > 0 && this.state === 'running') {
        const batch = takeBatch(ns.queue);
        try {
          const outcomes = await this.publishBatch(
            ns,
            batch.map((p) => p.req),
          );
          batch.forEach((p, i) => p.resolve(outcomes[i] as PublishOutcome));
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
      if (this.state !== 'running') {
        for (const p of ns.queue.splice(0)) p.reject(new Error(`nats engine is ${this.state}`));
      }
    };
    run()
      .catch((err: unknown) => this.logger.error({ err, namespace: ns.name }, 'nats: publish loop failed'))
      .finally(() => {
        ns.pumping = false;
        if (ns.queue.length > 0) this.pump(ns);
      });
  }

  private async publishBatch(ns: Namespace, reqs: readonly PublishRequest[]): Promise<PublishOutcome[]> {
    const first = reqs[0] as PublishRequest;
    const msgID =
      first.idempotencyKey !== undefined
        ? createHash('sha256').update(`${first.channel}\u0000${first.idempotencyKey}`).digest('base64url')
        : undefined;
    const policies = reqs.map((r) => encodePolicy(r.history));
    for (let attempt = 1; ; attempt++) {
      await this.spaces.loaded(ns);
      this.assertRunning();
      const base = ns.log.applied;
      const plan = ns.log.plan(reqs.map((r) => r.channel));
      const payload = encodeBatch(
        reqs.map((r, i) => ({
          channel: r.channel,
          positions: (plan[i] as { positions: string }).positions,
          policy: policies[i] as string,
          data: r.data,
        })),
      );
      const h = headers();
      h.set(LINEAGE_HEADER, ns.log.lineage);
      h.set('Nats-Expected-Last-Sequence', String(base));
      let ack;
      try {
        ack = await this.jetstream().publish(`${this.prefix}.b.${ns.name}`, payload, {
          headers: h,
          timeout: this.commandTimeout,
          ...(msgID !== undefined ? { msgID } : {}),
        });
      } catch (err) {
        if (attempt < MAX_ATTEMPTS && isWrongLastSequence(err)) {
          this.stats.conflicts += 1;
          await this.spaces.sync(ns);
          continue;
        }
        if (attempt < MAX_NO_STREAM_ATTEMPTS && isNoResponders(err)) {
          // The stream is gone (sync reads it again), or has no leader for a moment (a failover).
          await this.spaces.sync(ns);
          continue;
        }
        const what = reqs.length === 1 ? first.channel : `${reqs.length} channels of ${ns.name}`;
        throw new Error(`nats: cannot publish to ${what}: ${errorText(err)}`);
      }
      if (ack.duplicate) return [{ position: await this.positionAt(ns, ack.seq, first.channel), duplicate: true }];
      // Appended: the positions are right whatever happens to this node's consumer meanwhile (a
      // consumer that does not deliver in time is started again by waitApplied).
      await this.spaces.waitApplied(ns, ack.seq).catch(() => undefined);
      return plan.map((p) => ({ position: { epoch: p.epoch, offset: p.offset }, duplicate: false }));
    }
  }

  /** The position in `channel`'s own stream of the message at `seq` (a duplicate's original). */
  private async positionAt(ns: Namespace, seq: number, channel: string): Promise<{ epoch: string; offset: number }> {
    const msg = await this.spaces.readMessage(ns, seq);
    const entry = msg !== undefined ? decodeBatch(msg.data)?.[0] : undefined;
    const parts = entry?.positions.split(' ');
    const offset = Number(parts?.[1]);
    if (parts?.[0] !== undefined && Number.isSafeInteger(offset)) return { epoch: parts[0], offset };
    await this.spaces.sync(ns);
    return ns.log.position(channel);
  }

  // ---- the link ----------------------------------------------------------------------------------

  private watchStatus(nc: NatsConnection): void {
    const watch = async (): Promise<void> => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.linkUp = false;
          this.logger.warn({ server: s.server }, 'nats: connection lost; reconnecting');
        } else if (s.type === 'reconnect') {
          this.linkUp = true;
          this.logger.info({ server: s.server }, 'nats: connection back');
          this.spaces.onReconnect();
        }
      }
    };
    watch().catch((err: unknown) => this.logger.warn({ err }, 'nats: status watch ended'));
  }

  /** After the link came back: every namespace goes on from what it applied (or reloads). */
  // ---- plumbing ----------------------------------------------------------------------------------

  private connectOptions(): ConnectionOptions {
    const o = this.opts;
    const options: ConnectionOptions = {
      servers: this.servers,
      name: `herald:${this.instanceId}`,
      timeout: o.connectTimeout ?? 5_000,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      ...(o.user !== undefined ? { user: o.user, pass: o.pass ?? '' } : {}),
      ...(o.token !== undefined ? { token: o.token } : {}),
      ...(o.credsFile !== undefined ? { authenticator: credsAuthenticator(readFileSync(o.credsFile)) } : {}),
    };
    // nats.js ignores the scheme of a URL: a `tls://` server would be used in clear if it offers no TLS.
    if (o.tls !== undefined || this.servers.some((s) => /^tls:\/\//i.test(s))) {
      options.tls = {
        ...(o.tls?.caFile !== undefined ? { caFile: o.tls.caFile } : {}),
        ...(o.tls?.certFile !== undefined ? { certFile: o.tls.certFile } : {}),
        ...(o.tls?.keyFile !== undefined ? { keyFile: o.tls.keyFile } : {}),
      };
    }
    return options;
  }

  private connection(): NatsConnection {
    if (this.nc === undefined) throw new Error(`nats engine is ${this.state}`);
    return this.nc;
  }

  private jetstream(): JetStreamClient {
    if (this.js === undefined) throw new Error(`nats engine is ${this.state}`);
    return this.js;
  }

  private manager(): JetStreamManager {
    if (this.jsm === undefined) throw new Error(`nats engine is ${this.state}`);
    return this.jsm;
  }

  private assertRunning(): void {
    if (this.state !== 'running') throw new Error(`nats engine is ${this.state}`);
  }
}

/** A server URL with its password (or token, as the user part) shown as `***`. */
function maskUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.password !== '') url.password = '***';
    else if (url.username !== '') url.username = '***';
    return url.toString().replace(/\/$/, '');
  } catch {
    return text.replace(/\/\/[^@/]*@/, '//***@');
  }
}

/** Nobody took a JetStream request: no stream for the subject, no stream leader, or JetStream off. */
function isNoResponders(err: unknown): boolean {
  return /no responders|jetstream is not enabled|503/i.test(errorText(err));
}

/** The next batch: a publish with an idempotency key alone, else the waiting ones up to the bounds. */
function takeBatch(queue: PendingPublish[]): PendingPublish[] {
  const first = queue[0] as PendingPublish;
  if (first.req.idempotencyKey !== undefined) return queue.splice(0, 1);
  let n = 1;
  let bytes = first.req.data.length;
  while (n < queue.length && n < BATCH_COUNT) {
    const next = (queue[n] as PendingPublish).req;
    if (next.idempotencyKey !== undefined || bytes + next.data.length > BATCH_BYTES) break;
    bytes += next.data.length;
    n += 1;
  }
  return queue.splice(0, n);
}
