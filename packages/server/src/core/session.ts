/**
 * A session is one client connection as the hub sees it, whatever its transport: its client id, its
 * subscriptions, and a bounded send queue. Frames queued in one tick go out as one write; when the
 * bytes queued here plus those the transport has not yet flushed pass `maxQueueBytes`, the client is
 * too slow and is disconnected with `SLOW` (it then recovers from its cursors).
 */
import {
  DisconnectCodes,
  HeraldError,
  splitFrames,
  decodeCommand,
  type DisconnectName,
  type ErrorBody,
} from '@herald/protocol';
import type { EncodeCache, FrameEncoder, NonPubPush } from './encoder.js';
import type { Publication } from './engine.js';
import type { Hub } from './hub.js';
import type { Logger } from './logger.js';
import { ANONYMOUS_IDENTITY, type SessionIdentity } from './authorizer.js';
import type { TimerHandle } from './clock.js';
import type { TransportConnection } from './transport.js';
import { SmallMap } from './small-map.js';
import type { Subscription } from './subscription.js';
import { runCommand } from './commands.js';

export type SessionState = 'open' | 'closing' | 'closed';

export interface SessionInit {
  readonly id: string;
  /** Who the client is (anonymous when absent). */
  readonly identity?: SessionIdentity;
  readonly remoteAddress?: string;
  /**
   * A detached session is not registered with the hub and holds no subscriptions: it runs the
   * commands of `POST /send` for a stateless long-poll client (subscribe answers with a snapshot).
   */
  readonly detached?: boolean;
}

export interface DisconnectOptions {
  reason?: string;
  retryAfterMs?: number;
  /** Write what is queued before the disconnect push (graceful); otherwise drop it. */
  flushFirst?: boolean;
}

export class Session {
  readonly id: string;
  /** Who the client is; replaced by a token refresh. */
  identity: SessionIdentity;
  private expiry: TimerHandle | undefined;
  readonly remoteAddress: string | undefined;
  readonly detached: boolean;
  /** By stream. */
  readonly subscriptions = new SmallMap<Subscription>();
  private log: Logger | undefined;
  state: SessionState = 'open';
  /**
   * Frames waiting for this tick's write, dropped after it (idle sessions hold none): the first in
   * `head`, all of them in `queue` once there is a second (most ticks carry one frame per
   * connection, which then costs no array).
   */
  private head: Uint8Array | undefined;
  private queue: Uint8Array[] | undefined;
  private queuedBytes = 0;
  private scheduled = false;
  /** Extra queue room granted to large replies still draining (see `enqueue`). */
  private burst = 0;
  /**
   * What the transport held unsent right after this session's last write. Only this session's
   * writes add to that (besides a few bytes of heartbeat or stream preamble), and the transport
   * drains it, so it is an upper bound of what the transport holds now.
   */
  private sentBacklog = 0;
  /** Ids of commands still running (made on first command: most subscribers send one or two). */
  private inflight: Set<number> | undefined;

  constructor(
    private readonly hub: Hub,
    readonly transport: TransportConnection,
    readonly encoder: FrameEncoder,
    init: SessionInit,
  ) {
    this.id = init.id;
    // Detached sessions take their identity as is; others get it through setIdentity (expiry timers).
    this.identity = init.detached === true ? (init.identity ?? ANONYMOUS_IDENTITY) : ANONYMOUS_IDENTITY;
    this.remoteAddress = init.remoteAddress;
    this.detached = init.detached === true;
  }

  /** A child logger with the client id, made on first use (most sessions never log). */
  get logger(): Logger {
    this.log ??= this.hub.logger.child({ client: this.id, transport: this.transport.name });
    return this.log;
  }

  get userId(): string {
    return this.identity.userId;
  }

  get anonymous(): boolean {
    return this.identity.anonymous;
  }

  /**
   * Sets who the client is, and arms its token's expiry: a `refresh` push shortly before (the
   * SDK then refreshes in place), and a disconnect with TOKEN_EXPIRED (3511, do not reconnect
   * without a new token) at the expiry itself if no refresh came. Never silently anonymous.
   */
  setIdentity(identity: SessionIdentity): void {
    this.identity = identity;
    this.expiry?.cancel();
    this.expiry = undefined;
    const at = identity.expiresAt;
    if (at === undefined || this.detached) return;
    const clock = this.hub.clock;
    const left = at - clock.now();
    if (left <= 0) {
      this.disconnect('TOKEN_EXPIRED', { reason: 'the token expired' });
      return;
    }
    const lead = Math.min(30_000, Math.floor(left / 10));
    const warn = (): void => {
      this.sendPush({ push: 'refresh', expiresAt: at });
      this.expiry = clock.setTimeout(
        () => this.disconnect('TOKEN_EXPIRED', { reason: 'the token expired' }),
        at - clock.now(),
      );
    };
    if (lead > 0) this.expiry = clock.setTimeout(warn, left - lead);
    else warn();
  }

  /** Whether the token has expired (commands other than `refresh` are refused then). */
  expired(): boolean {
    const at = this.identity.expiresAt;
    return at !== undefined && at <= this.hub.clock.now();
  }

  /** Handles one incoming transport message: one or more `\n`-separated JSON commands. */
  handleMessage(text: string): void {
    void this.dispatch(text, (bytes) => this.enqueue(bytes, 'reply'), this.encoder);
  }

  /**
   * Runs the commands of one message; each reply (or error) goes to `sink`, encoded by `encoder`.
   * Resolves once every command has replied. Never rejects.
   */
  dispatch(text: string, sink: (bytes: Uint8Array) => void, encoder: FrameEncoder): Promise<void> {
    if (this.state !== 'open') return Promise.resolve();
    const running: Promise<void>[] = [];
    const fail = (id: number | undefined, error: ErrorBody): void => sink(encoder.error(id, error));
    for (const frame of splitFrames(text)) {
      let value: unknown;
      try {
        value = JSON.parse(frame);
      } catch {
        this.hub.stats.badFrames += 1;
        this.logger.info({ code: 'HERALD_ERR_PROTOCOL_MALFORMED' }, 'malformed frame');
        fail(undefined, { code: 'HERALD_ERR_PROTOCOL_MALFORMED', message: 'frame is not valid JSON' });
        continue;
      }
      const decoded = decodeCommand(value);
      if (!decoded.ok) {
        this.hub.stats.badFrames += 1;
        this.logger.info({ code: decoded.code, id: decoded.id }, decoded.message);
        fail(decoded.id, { code: decoded.code, message: decoded.message });
        continue;
      }
      const cmd = decoded.command;
      if (cmd.cmd !== 'refresh' && this.expired()) {
        fail(cmd.id, {
          code: 'HERALD_ERR_AUTH_TOKEN_EXPIRED',
          message: 'the token expired: send refresh with a new one',
        });
        continue;
      }
      const inflight = (this.inflight ??= new Set());
      if (inflight.has(cmd.id)) {
        fail(cmd.id, { code: 'HERALD_ERR_PROTOCOL_DUPLICATE_ID', message: `command ${cmd.id} is still in flight` });
        continue;
      }
      inflight.add(cmd.id);
      running.push(
        runCommand(this.hub, this, cmd, sink, encoder).then(
          (reply) => {
            inflight.delete(cmd.id);
            if (inflight.size === 0 && this.inflight === inflight) this.inflight = undefined;
            if (reply !== undefined) sink(reply);
          },
          (err: unknown) => {
            inflight.delete(cmd.id);
            if (inflight.size === 0 && this.inflight === inflight) this.inflight = undefined;
            fail(cmd.id, this.hub.toErrorBody(err, this.logger));
          },
        ),
      );
    }
    return Promise.all(running).then(() => undefined);
  }

  sendError(id: number | undefined, error: ErrorBody): void {
    this.enqueue(this.encoder.error(id, error));
  }

  sendPush(push: NonPubPush): void {
    this.enqueue(this.encoder.push(push));
  }

  deliver(pub: Publication, cache: EncodeCache): void {
    this.enqueue(this.encoder.publication(pub, cache));
  }

  /**
   * Queues one encoded frame. A large reply (history, recovery, backlog) may legitimately exceed
   * maxQueueBytes on its own: `reply` frames raise the limit by their size until the connection has
   * drained below the normal limit again, so a client is called slow only when it does not read.
   */
  enqueue(bytes: Uint8Array, kind: 'reply' | 'push' = 'push'): void {
    if (this.state !== 'open') return;
    this.push(bytes);
    this.queuedBytes += bytes.byteLength;
    const limit = this.hub.limits.maxQueueBytes;
    if (kind === 'reply') this.burst += bytes.byteLength;
    // The transport is asked what it still holds only when the answer can matter: `sentBacklog` is
    // an upper bound of it (see there), so below the limit with it, the exact figure is too. This
    // keeps the fan-out loop from touching every subscriber's socket twice per publication.
    if (this.burst > 0 || this.queuedBytes + this.sentBacklog > limit) {
      const pending = this.queuedBytes + this.transport.bufferedAmount();
      if (kind !== 'reply' && this.burst > 0 && pending - bytes.byteLength <= limit) this.burst = 0;
      if (pending > limit + this.burst) {
        this.hub.stats.slowDisconnects += 1;
        this.disconnect('SLOW', { reason: 'send queue overflow' });
        return;
      }
    }
    if (!this.scheduled) {
      this.scheduled = true;
      this.hub.scheduleFlush(this);
    }
  }

  private push(bytes: Uint8Array): void {
    if (this.head === undefined) this.head = bytes;
    else (this.queue ??= [this.head]).push(bytes);
  }

  private clearQueue(): void {
    this.head = undefined;
    this.queue = undefined;
    this.queuedBytes = 0;
  }

  /** Writes everything queued as one batch. Called by the hub's flush loop. */
  flush(): void {
    this.scheduled = false;
    const head = this.head;
    if (head === undefined) return;
    const data = this.queue === undefined ? head : this.encoder.join(this.queue);
    this.clearQueue();
    if (this.state === 'closed') return;
    this.transport.write(data);
    this.sentBacklog = this.transport.bufferedAmount();
  }

  /** Tells the client why and closes the transport. Idempotent. */
  disconnect(name: DisconnectName, opts: DisconnectOptions = {}): void {
    if (this.state !== 'open') return;
    const info = DisconnectCodes[name];
    const reason = opts.reason ?? name.toLowerCase();
    if (opts.flushFirst !== true) this.clearQueue();
    const push: NonPubPush = { push: 'disconnect', code: info.code, reason, reconnect: info.reconnect };
    if (opts.retryAfterMs !== undefined) push.retryAfterMs = opts.retryAfterMs;
    this.push(this.encoder.push(push));
    this.flush();
    this.state = 'closing';
    this.expiry?.cancel();
    this.logger.debug({ code: info.code, reason }, 'disconnect');
    this.transport.close(info.code, reason);
    this.hub.detach(this);
  }

  /** The transport reports that the connection is gone (closed by either side). */
  transportClosed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.expiry?.cancel();
    this.clearQueue();
    this.hub.detach(this);
  }
}

export function isHeraldError(err: unknown): err is HeraldError {
  return err instanceof HeraldError;
}
