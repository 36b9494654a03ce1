/**
 * Publishing from RabbitMQ (any AMQP 0-9-1 broker): Herald consumes one queue, bound to the
 * configured exchanges, and publishes each message like the server API does. It works with every
 * engine; each node (and each worker) is one more competing consumer of the queue.
 *
 * At least once from the bus, exactly once to subscribers within the idempotency window:
 * - A message is acknowledged only after its publication is stored (the hub's publish resolved,
 *   duplicates included). A node that dies before that leaves it unacknowledged, and the broker
 *   delivers it again (to another node, or this one once it is back); the idempotency key (the
 *   envelope's, else the AMQP message id) makes the second publish a duplicate that adds nothing.
 * - A message Herald can never publish (not JSON in `json` format, a bad channel, too large, ...)
 *   is rejected without requeue: it goes to the queue's dead-letter exchange when it has one. It is
 *   counted and logged (the first of each code at once, then at most one line per 10 s).
 * - A message whose publish failed because the engine is unavailable is held for `retryDelay`
 *   (doubling while failures go on, up to 30 s), then requeued, so a dead engine is not spun on.
 *
 * The link: connect, declare (when `declare` is on), consume with `prefetch`; when the broker or
 * the network drops the connection, reconnect after a capped, jittered backoff. `close()` drains:
 * stop consuming, let the publishes in flight finish and acknowledge them, requeue what is held,
 * then close the connection.
 */
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { HeraldError, type ErrorCode } from '@herald/protocol';
import type { AmqpOptions } from '../config/config.js';
import type { Logger } from '../core/logger.js';
import type { Metrics } from '../core/metrics.js';
import { parseDelivery } from './amqp-message.js';

export interface AmqpIngestOptions {
  readonly config: AmqpOptions;
  /** Publishes like the server API does; rejects with a HeraldError for bad input. */
  readonly publish: (
    channel: string,
    data: unknown,
    idempotencyKey: string | undefined,
  ) => Promise<{ duplicate: boolean }>;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Shown to the broker as the connection's name (`rabbitmqctl list_connections client_properties`). */
  readonly connectionName: string;
  /** How long `close()` waits for the publishes in flight, in ms. */
  readonly drainTimeout?: number;
}

export type AmqpIngestState = 'idle' | 'connecting' | 'consuming' | 'reconnecting' | 'closing' | 'closed';

export interface AmqpIngestStats {
  state: AmqpIngestState;
  queue: string;
  /** host:port/vhost of the broker (never the credentials). */
  broker: string;
  /** Messages delivered to this node (redeliveries included). */
  received: number;
  /** Delivered again by the broker (after a node died or a requeue). */
  redelivered: number;
  /** Published and acknowledged. */
  published: number;
  /** Acknowledged as duplicates of an earlier publish with the same idempotency key. */
  duplicates: number;
  /** Rejected without requeue (dead-lettered when the queue has a dead-letter exchange). */
  rejected: number;
  /** Requeued after the engine failed to publish them. */
  requeued: number;
  /** Publishes running now. */
  inFlight: number;
  /** Times the connection was lost or could not be made. */
  connectionsLost: number;
  /** Why the last connection ended or failed, if it did. */
  lastError?: string;
}

const MAX_RETRY_DELAY = 30_000;
const RECONNECT_BASE = 250;
const RECONNECT_MAX = 15_000;
const LOG_INTERVAL = 10_000;

/** The hub refused the message itself (its channel, size or data): publishing it again cannot help. */
function messageFault(err: unknown): err is HeraldError {
  if (!(err instanceof HeraldError)) return false;
  const c = err.code;
  return (
    c.startsWith('HERALD_ERR_CHANNEL_') ||
    c.startsWith('HERALD_ERR_PROTOCOL_') ||
    c === 'HERALD_ERR_MESSAGE_TOO_LARGE' ||
    c === 'HERALD_ERR_PERMISSION_DENIED'
  );
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The broker's address as shown in status and logs: no user name or password. */
function brokerOf(url: string): string {
  try {
    const u = new URL(url);
    const vhost = u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : '/';
    return `${u.protocol}//${u.host}/${vhost === '/' ? '' : vhost}`;
  } catch {
    return '(invalid URL)';
  }
}

/** One live connection, and what was delivered on it. */
interface Link {
  readonly model: ChannelModel;
  readonly channel: Channel;
  consumerTag: string | undefined;
  open: boolean;
}

export class AmqpIngest {
  readonly stats: AmqpIngestStats;
  private link: Link | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** When publishes started failing on the engine (0: the last one succeeded). */
  private outageSince = 0;
  /** Messages held before their requeue, by timer. */
  private readonly held = new Map<NodeJS.Timeout, () => void>();
  private readonly inFlight = new Set<Promise<void>>();
  private connecting: Promise<void> | undefined;
  /** When each error code was last logged, and how many were not logged since. */
  private readonly logged = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly opts: AmqpIngestOptions) {
    const c = opts.config;
    this.stats = {
      state: 'idle',
      queue: c.queue,
      broker: brokerOf(c.url),
      received: 0,
      redelivered: 0,
      published: 0,
      duplicates: 0,
      rejected: 0,
      requeued: 0,
      inFlight: 0,
      connectionsLost: 0,
    };
    const m = opts.metrics;
    const help = 'AMQP messages handled, by outcome (published, duplicate, rejected, requeued)';
    m.counterFn('herald_amqp_messages_total', help, () => this.stats.published, { outcome: 'published' });
    m.counterFn('herald_amqp_messages_total', help, () => this.stats.duplicates, { outcome: 'duplicate' });
    m.counterFn('herald_amqp_messages_total', help, () => this.stats.rejected, { outcome: 'rejected' });
    m.counterFn('herald_amqp_messages_total', help, () => this.stats.requeued, { outcome: 'requeued' });
    m.counterFn(
      'herald_amqp_redelivered_total',
      'AMQP messages the broker delivered again',
      () => this.stats.redelivered,
    );
    m.counterFn(
      'herald_amqp_connections_lost_total',
      'AMQP connections lost or refused (each is retried with a backoff)',
      () => this.stats.connectionsLost,
    );
    m.gauge(
      'herald_amqp_consuming',
      '1 while this process consumes the AMQP queue (with workers, the sum: workers consuming)',
      () => (this.stats.state === 'consuming' ? 1 : 0),
    );
    m.gauge('herald_amqp_in_flight', 'AMQP messages being published now', () => this.stats.inFlight);
  }

  /** Connects and starts consuming; when the broker cannot be reached, keeps trying in the background. */
  async start(): Promise<void> {
    if (this.stats.state !== 'idle') return;
    await this.connect();
  }

  /** Stops consuming, finishes (and acknowledges) the publishes in flight, requeues what is held, disconnects. */
  async close(): Promise<void> {
    if (this.stats.state === 'closed' || this.stats.state === 'closing') return;
    this.stats.state = 'closing';
    clearTimeout(this.reconnectTimer);
    await this.connecting;
    const link = this.link;
    if (link?.open === true && link.consumerTag !== undefined) {
      await link.channel.cancel(link.consumerTag).catch(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, this.opts.drainTimeout ?? 10_000))),
    ]);
    clearTimeout(timer);
    for (const [t, requeue] of this.held) {
      clearTimeout(t);
      requeue();
    }
    this.held.clear();
    if (link?.open === true) {
      link.open = false;
      await link.channel.close().catch(() => undefined);
      await link.model.close().catch(() => undefined);
    }
    this.link = undefined;
    this.stats.state = 'closed';
  }

  private connect(): Promise<void> {
    if (this.stats.state === 'closing' || this.stats.state === 'closed') return Promise.resolve();
    this.stats.state = 'connecting';
    this.connecting = this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /** One attempt: connect, set up, consume. On failure, schedules the next one. */
  private async open(): Promise<void> {
    const c = this.opts.config;
    let model: ChannelModel | undefined;
    let link: Link | undefined;
    try {
      model = await connect(c.url, {
        timeout: 10_000,
        clientProperties: { connection_name: this.opts.connectionName },
      });
      model.on('error', (err: Error) => this.opts.logger.debug({ err: err.message }, 'amqp connection error'));
      const channel = await model.createChannel();
      channel.on('error', (err: Error) => this.opts.logger.debug({ err: err.message }, 'amqp channel error'));
      const l: Link = (link = { model, channel, consumerTag: undefined, open: true });
      model.on('close', (err?: Error) => this.lost(l, err ?? new Error('the connection closed')));
      // A channel closed by the broker (a deleted queue, a refused declaration) ends the link.
      channel.on('close', () => {
        if (l.open) void l.model.close().catch(() => undefined);
      });
      if (c.declare) await this.declare(model, channel);
      else await channel.checkQueue(c.queue);
      await channel.prefetch(c.prefetch);
      if (this.stats.state === 'closing') {
        l.open = false;
        await model.close().catch(() => undefined);
        return;
      }
      this.link = l;
      const ok = await channel.consume(c.queue, (msg) => this.onDelivery(l, msg), { noAck: false });
      l.consumerTag = ok.consumerTag;
      if (this.stats.state === 'connecting') this.stats.state = 'consuming';
      this.attempt = 0;
      this.opts.logger.info({ broker: this.stats.broker, queue: c.queue }, 'amqp: consuming');
    } catch (err) {
      if (link !== undefined) {
        this.lost(link, err);
        await link.model.close().catch(() => undefined);
      } else {
        await model?.close().catch(() => undefined);
        this.lost(undefined, err);
      }
    }
  }

  /** Declares the queue (durable), the exchanges that do not exist yet (durable topic), and the bindings. */
  private async declare(model: ChannelModel, channel: Channel): Promise<void> {
    const c = this.opts.config;
    const args = c.deadLetterExchange !== '' ? { 'x-dead-letter-exchange': c.deadLetterExchange } : undefined;
    await channel.assertQueue(c.queue, { durable: true, ...(args !== undefined ? { arguments: args } : {}) });
    for (const exchange of new Set(c.bindings.map((b) => b.exchange))) {
      // A passive check closes the channel it runs on when the exchange is missing: use a spare one.
      const probe = await model.createChannel();
      probe.on('error', () => undefined);
      const exists = await probe.checkExchange(exchange).then(
        () => true,
        () => false,
      );
      if (exists) await probe.close().catch(() => undefined);
      else await channel.assertExchange(exchange, 'topic', { durable: true });
    }
    for (const b of c.bindings) await channel.bindQueue(c.queue, b.exchange, b.routingKey);
  }

  /**
   * The link ended or could not be made (the broker closed it, the network dropped, a declaration
   * was refused): counted and logged once per link, then a reconnect is scheduled.
   */
  private lost(link: Link | undefined, err: unknown): void {
    if (link !== undefined) {
      if (!link.open) return;
      link.open = false;
      if (this.link === link) this.link = undefined;
    }
    // Held messages were on that channel: the broker requeues them itself.
    for (const t of this.held.keys()) clearTimeout(t);
    this.held.clear();
    if (this.stats.state === 'closing' || this.stats.state === 'closed') return;
    const wasConsuming = this.stats.state === 'consuming';
    this.stats.connectionsLost += 1;
    this.stats.lastError = errorText(err);
    const obj = { broker: this.stats.broker, queue: this.opts.config.queue, err: this.stats.lastError };
    // Lost while consuming: said at once; failed attempts after it: at most one line per interval.
    if (wasConsuming) this.opts.logger.warn(obj, 'amqp: connection lost; reconnecting');
    else this.warn('link', obj, 'amqp: cannot consume the queue; retrying');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stats.state === 'closing' || this.stats.state === 'closed') return;
    this.stats.state = 'reconnecting';
    clearTimeout(this.reconnectTimer);
    // Full jitter over a capped exponential: many nodes do not come back at the same instant.
    const cap = Math.min(RECONNECT_MAX, RECONNECT_BASE * 2 ** Math.min(this.attempt, 10));
    this.attempt += 1;
    const delay = Math.max(50, Math.round(Math.random() * cap));
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
    this.reconnectTimer.unref();
  }

  private onDelivery(link: Link, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled the consumer (the queue was deleted): start over.
      this.stats.lastError = 'the broker cancelled the consumer (queue deleted?)';
      void link.model.close().catch(() => undefined);
      return;
    }
    this.stats.received += 1;
    if (msg.fields.redelivered) this.stats.redelivered += 1;
    if (this.stats.state === 'closing') {
      this.settle(link, msg, 'requeue');
      return;
    }
    const parsed = parseDelivery(msg, this.opts.config.format, this.opts.config.bindings);
    if (!parsed.ok) {
      this.reject(link, msg, parsed.code, parsed.reason);
      return;
    }
    const done = this.opts.publish(parsed.channel, parsed.data, parsed.idempotencyKey).then(
      (r) => {
        this.outageSince = 0;
        if (r.duplicate) this.stats.duplicates += 1;
        else this.stats.published += 1;
        this.settle(link, msg, 'ack');
      },
      (err: unknown) => {
        if (messageFault(err)) {
          this.reject(link, msg, err.code, err.message, parsed.channel);
          return;
        }
        this.hold(link, msg, err);
      },
    );
    this.inFlight.add(done);
    this.stats.inFlight = this.inFlight.size;
    void done.finally(() => {
      this.inFlight.delete(done);
      this.stats.inFlight = this.inFlight.size;
    });
  }

  /** Rejects without requeue (to the dead-letter exchange, if any), counts and logs it. */
  private reject(link: Link, msg: ConsumeMessage, code: ErrorCode, reason: string, channel?: string): void {
    this.stats.rejected += 1;
    this.settle(link, msg, 'reject');
    this.warn(
      code,
      {
        code,
        reason,
        exchange: msg.fields.exchange,
        routingKey: msg.fields.routingKey,
        ...(channel !== undefined ? { channel } : {}),
        ...(typeof msg.properties.messageId === 'string' ? { messageId: msg.properties.messageId } : {}),
      },
      'amqp: message rejected (not requeued)',
    );
  }

  /**
   * The engine failed: requeue after `retryDelay`, or as long as the outage has lasted if that is
   * longer (so each retry of a message waits about twice the one before), up to 30 s.
   */
  private hold(link: Link, msg: ConsumeMessage, err: unknown): void {
    if (!link.open) return; // the broker requeues it already
    const now = Date.now();
    if (this.outageSince === 0) this.outageSince = now;
    const delay = Math.min(MAX_RETRY_DELAY, Math.max(this.opts.config.retryDelay, now - this.outageSince));
    this.warn(
      'engine',
      { err: errorText(err), retryInMs: delay },
      'amqp: publish failed; the message will be requeued',
    );
    const requeue = (): void => {
      this.stats.requeued += 1;
      this.settle(link, msg, 'requeue');
    };
    const t = setTimeout(() => {
      this.held.delete(t);
      requeue();
    }, delay);
    this.held.set(t, requeue);
  }

  /** Acks, rejects or requeues on the channel it came from, unless that channel is gone (the broker redelivers). */
  private settle(link: Link, msg: ConsumeMessage, how: 'ack' | 'reject' | 'requeue'): void {
    if (!link.open) return;
    try {
      if (how === 'ack') link.channel.ack(msg);
      else link.channel.nack(msg, false, how === 'requeue');
    } catch (err) {
      this.opts.logger.debug({ err: errorText(err) }, 'amqp: could not settle a message (channel closing)');
    }
  }

  /** Logs the first event of a kind at once, then at most one line (with the count skipped) per interval. */
  private warn(kind: string, obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const last = this.logged.get(kind);
    if (last !== undefined && now - last.at < LOG_INTERVAL) {
      last.suppressed += 1;
      return;
    }
    this.opts.logger.warn(
      last !== undefined && last.suppressed > 0 ? { ...obj, suppressed: last.suppressed } : obj,
      msg,
    );
    this.logged.set(kind, { at: now, suppressed: 0 });
  }
}
