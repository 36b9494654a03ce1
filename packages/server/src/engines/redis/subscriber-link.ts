/**
 * One pub/sub connection to one Redis server: the node's subscriptions to the streams that live
 * there (one Redis subscription per stream per node, however many clients read it).
 *
 * Pub/sub is fire-and-forget: whatever Redis sends while the link is down is gone. So the link
 * does its own resubscription after a reconnect (ioredis' `autoResubscribe` is off), waits until
 * Redis has confirmed every channel, and only then reports `onRestored(channels)`; the engine turns
 * that into `sink.onGap(streams)` and the hub re-reads history from each subscriber's position.
 * Reading history after the subscriptions are active again is what makes the catch-up complete.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../core/logger.js';

/** `classic`: SUBSCRIBE/PUBLISH (one Redis, or independent shards); `sharded`: SSUBSCRIBE/SPUBLISH (Redis Cluster). */
export type LinkMode = 'classic' | 'sharded';

/**
 * - `idle`: not started; `connecting`: first connection in progress;
 * - `ready`: connected and every channel subscribed;
 * - `restoring`: reconnected after a loss, resubscribing; `down`: disconnected, ioredis retries;
 * - `closed`: closed for good.
 */
export type LinkState = 'idle' | 'connecting' | 'ready' | 'restoring' | 'down' | 'closed';

export interface SubscriberLinkOptions {
  /** Connection options (host, port, credentials, TLS, connectionName, timeouts, retryStrategy). */
  readonly redis: RedisOptions;
  readonly mode: LinkMode;
  /** Names the server in logs and errors (an address, never a password). */
  readonly label: string;
  readonly logger: Logger;
  onMessage(channel: string, payload: string): void;
  /** The link is back after a loss and `channels` are subscribed again; what was sent meanwhile is lost. */
  onRestored(channels: readonly string[]): void;
}

export class SubscriberLink {
  private current: LinkState = 'idle';
  /** Channels this node wants on this server (subscribed, or to be resubscribed after a reconnect). */
  readonly channels = new Set<string>();
  readonly connection: Redis;
  private restoreRun = 0;
  private errorLogged = false;

  constructor(private readonly opts: SubscriberLinkOptions) {
    this.connection = new Redis({
      ...opts.redis,
      lazyConnect: true,
      autoResubscribe: false,
      autoResendUnfulfilledCommands: false,
      enableOfflineQueue: false,
      enableAutoPipelining: false,
    });
    const onMessage = (channel: string, payload: string): void => opts.onMessage(channel, payload);
    this.connection.on(opts.mode === 'sharded' ? 'smessage' : 'message', onMessage);
    this.connection.on('ready', () => this.onReady());
    this.connection.on('close', () => this.onClose());
    this.connection.on('error', (err: Error) => {
      if (this.current === 'closed') return;
      // Every reconnect attempt fails the same way while Redis is away: log the first one.
      if (!this.errorLogged) opts.logger.warn({ err: err.message, redis: opts.label }, 'redis subscriber link error');
      else opts.logger.debug({ err: err.message, redis: opts.label }, 'redis subscriber link error');
      this.errorLogged = true;
    });
  }

  get state(): LinkState {
    return this.current;
  }

  get label(): string {
    return this.opts.label;
  }

  ready(): boolean {
    return this.current === 'ready';
  }

  /** Connects; rejects when the first attempt fails (ioredis keeps retrying in the background). */
  async start(): Promise<void> {
    if (this.current !== 'idle') return;
    this.current = 'connecting';
    await this.connection.connect();
  }

  /** Subscribes to `channel`; rejects (and forgets it) when the link is down or Redis refuses. */
  async add(channel: string): Promise<void> {
    if (this.current !== 'ready' && this.current !== 'restoring') {
      throw new Error(`redis subscriber link to ${this.opts.label} is ${this.current}`);
    }
    this.channels.add(channel);
    try {
      await this.subscribe([channel]);
    } catch (err) {
      this.channels.delete(channel);
      throw err;
    }
  }

  /** Unsubscribes; when the link is down there is nothing to undo in Redis. */
  async remove(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    if (this.current !== 'ready' && this.current !== 'restoring') return;
    try {
      if (this.opts.mode === 'sharded') await this.connection.sunsubscribe(channel);
      else await this.connection.unsubscribe(channel);
    } catch (err) {
      // The connection dropped: its subscriptions went with it.
      this.opts.logger.debug({ err, channel }, 'redis unsubscribe failed');
    }
  }

  /** Drops the connection now (ioredis reconnects): used when Redis refused a resubscription. */
  reconnect(): void {
    if (this.current !== 'closed') this.connection.disconnect(true);
  }

  close(): void {
    if (this.current === 'closed') return;
    this.current = 'closed';
    this.channels.clear();
    this.connection.disconnect();
  }

  private subscribe(channels: readonly string[]): Promise<unknown> {
    // One command per channel: on a cluster, channels of different slots may not share a command.
    return Promise.all(
      channels.map((c) =>
        this.opts.mode === 'sharded' ? this.connection.ssubscribe(c) : this.connection.subscribe(c),
      ),
    );
  }

  private onReady(): void {
    if (this.current === 'closed') return;
    this.errorLogged = false;
    if (this.current === 'connecting') {
      this.current = 'ready';
      return;
    }
    // Back after a loss: resubscribe everything, then report what may have been missed.
    const run = ++this.restoreRun;
    this.current = 'restoring';
    const channels = [...this.channels];
    this.opts.logger.info({ redis: this.opts.label, channels: channels.length }, 'redis subscriber link restored');
    this.subscribe(channels).then(
      () => {
        if (run !== this.restoreRun || this.current !== 'restoring') return;
        this.current = 'ready';
        this.opts.onRestored(channels);
      },
      (err: unknown) => {
        if (run !== this.restoreRun || this.current !== 'restoring') return;
        // Still connected but Redis refused (a cluster slot moved, ...): start over.
        this.opts.logger.warn({ err, redis: this.opts.label }, 'redis resubscribe failed; reconnecting');
        this.reconnect();
      },
    );
  }

  private onClose(): void {
    if (this.current === 'closed' || this.current === 'idle') return;
    if (this.current !== 'down' && this.current !== 'connecting') {
      this.opts.logger.warn({ redis: this.opts.label }, 'redis subscriber link lost');
    }
    if (this.current !== 'connecting') this.current = 'down';
  }
}
