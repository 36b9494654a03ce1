/**
 * One pub/sub connection to one Redis server: the node's subscriptions to the streams that live
 * there (one Redis subscription per stream per node, however many clients read it).
 *
 * The link keeps the set of channels it is asked to hold (`channels`) and makes Redis hold them:
 * a channel added while the link is connecting or reconnecting is subscribed as soon as it is
 * connected; after a reconnect every channel is subscribed again. Each confirmation from Redis is
 * reported (`onSubscribed`): its owner (the topology) tells first confirmations from renewed ones,
 * and turns the renewed ones into `sink.onGap(streams)` so the hub re-reads history. Pub/sub is
 * fire-and-forget: whatever Redis sent while a channel was not subscribed is gone, and reading
 * history after the subscription is confirmed again is what makes the catch-up complete.
 *
 * Redis may end a subscription itself: when a Redis Cluster slot leaves a master (resharding, a
 * failover seen by the old master), the master sends `sunsubscribe <channel>` for each of that
 * slot's shard channels. The link forgets such a channel and reports it (`onDropped`) so that it is
 * subscribed again where the slot lives now. A refusal (`-MOVED ...` for a slot that is elsewhere)
 * is reported with `onRefused`. The link speaks RESP2 itself (resp.ts): ioredis reads every
 * unsubscribe push as the reply to the next command it waits for.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsOptions } from 'node:tls';
import type { Logger } from '../../core/logger.js';
import { encodeCommand, RespError, RespReader, type RespValue } from './resp.js';

/** `classic`: SUBSCRIBE/PUBLISH (one Redis, or independent shards); `sharded`: SSUBSCRIBE/SPUBLISH (Redis Cluster). */
export type LinkMode = 'classic' | 'sharded';

/**
 * - `idle`: not started; `connecting`: first connection in progress (channels added meanwhile are
 *   subscribed once connected);
 * - `ready`: connected, and every channel it held before a reconnect is subscribed again;
 * - `restoring`: reconnected after a loss, resubscribing; `down`: disconnected, reconnecting with
 *   backoff; `closed`: closed for good.
 */
export type LinkState = 'idle' | 'connecting' | 'ready' | 'restoring' | 'down' | 'closed';

export interface LinkTarget {
  readonly host: string;
  readonly port: number;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** TLS options (servername, CA, ...); absent for plain TCP. */
  readonly tls?: TlsOptions | undefined;
  /** CLIENT SETNAME of the connection. */
  readonly connectionName: string;
  /** How long connecting (TCP, TLS, AUTH) may take, in ms. */
  readonly connectTimeout: number;
  /** How long Redis may take to confirm a subscription before the connection is deemed broken, in ms. */
  readonly commandTimeout: number;
  /** Delay before reconnect attempt `times` (1, 2, ...), in ms. */
  retryStrategy(times: number): number;
}

export interface SubscriberLinkOptions {
  readonly target: LinkTarget;
  readonly mode: LinkMode;
  /** Names the server in logs and errors (an address, never a password). */
  readonly label: string;
  readonly logger: Logger;
  onMessage(channel: string, payload: string): void;
  /** Redis confirmed that `channel` is subscribed (the first time, or again after a reconnect). */
  onSubscribed(link: SubscriberLink, channel: string): void;
  /** Redis ended the subscription to `channel` itself (a Cluster slot moved); the link forgot it. */
  onDropped(link: SubscriberLink, channel: string): void;
  /** Redis refused to subscribe `channel` (`MOVED`, ACL, ...); the link forgot it. */
  onRefused(link: SubscriberLink, channel: string, err: RespError): void;
  /** The connection was lost (its subscriptions with it); the link reconnects. */
  onLost?(link: SubscriberLink): void;
  /** The link became `ready` (connected, and every channel it held is subscribed again). */
  onReady?(link: SubscriberLink): void;
}

type Pending =
  | { readonly kind: 'ok'; readonly command: 'auth' | 'setname' }
  | { readonly kind: 'sub' | 'unsub'; readonly channel: string; readonly sent: number };

export class SubscriberLink {
  private current: LinkState = 'idle';
  /** Channels this link holds (subscribed, being subscribed, or to be subscribed once connected). */
  readonly channels = new Set<string>();
  /** Channels Redis confirmed on the current connection. */
  private readonly active = new Set<string>();
  /**
   * Channels with commands in flight on the current connection: how many, and the last one sent
   * (what Redis will hold once they are all answered).
   */
  private readonly inflight = new Map<string, { n: number; last: 'sub' | 'unsub' }>();
  /** Channels to confirm before a reconnected link is `ready` again. */
  private restoring = new Set<string>();
  private socket: Socket | undefined;
  /** The socket's handshake (AUTH, CLIENT SETNAME) is done. */
  private connected = false;
  private pending: Pending[] = [];
  private readonly reader: RespReader;
  private attempts = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private errorLogged = false;
  private firstConnect: { resolve(): void; reject(err: Error): void } | undefined;
  private readonly subCmd: string;
  private readonly unsubCmd: string;
  private readonly messageType: string;

  constructor(private readonly opts: SubscriberLinkOptions) {
    const sharded = opts.mode === 'sharded';
    this.subCmd = sharded ? 'ssubscribe' : 'subscribe';
    this.unsubCmd = sharded ? 'sunsubscribe' : 'unsubscribe';
    this.messageType = sharded ? 'smessage' : 'message';
    this.reader = new RespReader((reply) => this.onReply(reply));
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

  /** Whether Redis confirmed `channel` on the current connection. */
  holds(channel: string): boolean {
    return this.active.has(channel);
  }

  /**
   * Connects. Resolves once connected; rejects when the first attempt fails (the link keeps
   * reconnecting in the background until closed).
   */
  start(): Promise<void> {
    if (this.current === 'closed')
      return Promise.reject(new Error(`redis subscriber link to ${this.opts.label} is closed`));
    if (this.started === undefined) {
      this.current = 'connecting';
      this.started = new Promise<void>((resolve, reject) => {
        this.firstConnect = { resolve, reject };
        this.open();
      });
    }
    return this.started;
  }

  private started: Promise<void> | undefined;

  /** Holds `channel`: subscribes now when connected, else as soon as the link is. */
  add(channel: string): void {
    if (this.current === 'closed') return;
    this.channels.add(channel);
    if (this.connected && !this.willHold(channel)) this.sendFor(channel, 'sub');
  }

  /** Lets `channel` go (unsubscribes when connected; a lost connection took its subscriptions). */
  remove(channel: string): void {
    if (!this.channels.delete(channel)) return;
    this.restoring.delete(channel);
    const held = this.willHold(channel);
    this.active.delete(channel);
    if (this.connected && held) this.sendFor(channel, 'unsub');
    this.checkRestored();
  }

  /** Drops the connection now (it reconnects at once). */
  reconnect(): void {
    if (this.current === 'closed' || this.current === 'idle') return;
    this.socket?.destroy();
  }

  close(): void {
    if (this.current === 'closed') return;
    this.current = 'closed';
    this.channels.clear();
    clearTimeout(this.retryTimer);
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    const s = this.socket;
    this.socket = undefined;
    this.connected = false;
    s?.destroy();
    this.firstConnect?.reject(new Error(`redis subscriber link to ${this.opts.label} was closed`));
    this.firstConnect = undefined;
  }

  // ---- connection ------------------------------------------------------------------------------

  private open(): void {
    if (this.current === 'closed') return;
    const t = this.opts.target;
    const socket =
      t.tls !== undefined
        ? tlsConnect({ ...t.tls, host: t.host, port: t.port })
        : tcpConnect({ host: t.host, port: t.port });
    this.socket = socket;
    this.pending = [];
    this.reader.reset();
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    const timer = setTimeout(() => {
      this.fail(socket, new Error(`connection to Redis timed out after ${t.connectTimeout} ms`));
    }, t.connectTimeout);
    socket.once(t.tls !== undefined ? 'secureConnect' : 'connect', () => {
      if (t.password !== undefined) {
        const auth = t.username !== undefined ? ['auth', t.username, t.password] : ['auth', t.password];
        this.send({ kind: 'ok', command: 'auth' }, auth);
      }
      this.send({ kind: 'ok', command: 'setname' }, ['client', 'setname', t.connectionName]);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.socket !== socket) return;
      try {
        this.reader.push(chunk);
      } catch (err) {
        this.fail(socket, err instanceof Error ? err : new Error(String(err)));
      }
    });
    socket.on('error', (err: Error) => this.fail(socket, err));
    socket.on('close', () => {
      clearTimeout(timer);
      this.onClose(socket);
    });
    this.handshakeTimer = timer;
  }

  private handshakeTimer: NodeJS.Timeout | undefined;

  /** Logs `err` (the first of an outage at warn level) and drops the socket. */
  private fail(socket: Socket, err: Error): void {
    if (this.socket !== socket || this.current === 'closed') return;
    if (!this.errorLogged) {
      this.opts.logger.warn({ err: err.message, redis: this.opts.label }, 'redis subscriber link error');
    } else {
      this.opts.logger.debug({ err: err.message, redis: this.opts.label }, 'redis subscriber link error');
    }
    this.errorLogged = true;
    socket.destroy();
  }

  private onConnected(): void {
    clearTimeout(this.handshakeTimer);
    this.connected = true;
    this.attempts = 0;
    this.errorLogged = false;
    // A subscription that Redis does not confirm within the command timeout means a broken link.
    this.watchdog ??= setInterval(() => this.checkPending(), Math.max(100, this.opts.target.commandTimeout / 4));
    this.watchdog.unref();
    const first = this.firstConnect;
    this.firstConnect = undefined;
    const wasConnecting = this.current === 'connecting';
    this.restoring = new Set(this.channels);
    if (!wasConnecting) {
      this.opts.logger.info({ redis: this.opts.label, channels: this.channels.size }, 'redis subscriber link restored');
    }
    if (!wasConnecting) this.current = 'restoring';
    for (const c of this.channels) this.sendFor(c, 'sub');
    if (wasConnecting) this.restoring.clear();
    this.checkRestored();
    first?.resolve();
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    const wasConnected = this.connected;
    this.connected = false;
    this.pending = [];
    this.active.clear();
    this.inflight.clear();
    this.restoring.clear();
    clearInterval(this.watchdog);
    this.watchdog = undefined;
    if (this.current === 'closed') return;
    const first = this.firstConnect;
    if (first !== undefined) {
      this.firstConnect = undefined;
      first.reject(new Error(`cannot connect to Redis at ${this.opts.label}`));
    }
    if (wasConnected) {
      this.opts.logger.warn({ redis: this.opts.label }, 'redis subscriber link lost');
      if (this.current !== 'connecting') this.current = 'down';
      this.opts.onLost?.(this);
    } else if (this.current === 'ready' || this.current === 'restoring') {
      this.current = 'down';
    }
    this.attempts += 1;
    this.retryTimer = setTimeout(() => this.open(), this.opts.target.retryStrategy(this.attempts));
    this.retryTimer.unref();
  }

  private send(p: Pending, args: readonly string[]): void {
    const s = this.socket;
    if (s === undefined) return;
    this.pending.push(p);
    s.write(encodeCommand(args));
  }

  /** Whether Redis holds `channel` once the commands in flight are answered. */
  private willHold(channel: string): boolean {
    const f = this.inflight.get(channel);
    return f !== undefined ? f.last === 'sub' : this.active.has(channel);
  }

  private sendFor(channel: string, kind: 'sub' | 'unsub'): void {
    const f = this.inflight.get(channel);
    if (f !== undefined) {
      f.n += 1;
      f.last = kind;
    } else {
      this.inflight.set(channel, { n: 1, last: kind });
    }
    this.send({ kind, channel, sent: Date.now() }, [kind === 'sub' ? this.subCmd : this.unsubCmd, channel]);
  }

  /** One command on `channel` was answered: the last one sent when none is left in flight. */
  private settle(channel: string): 'sub' | 'unsub' | undefined {
    const f = this.inflight.get(channel);
    if (f === undefined) return undefined;
    f.n -= 1;
    if (f.n > 0) return undefined;
    this.inflight.delete(channel);
    return f.last;
  }

  /** Drops a connection on which a command waited for its reply longer than the command timeout. */
  private checkPending(): void {
    const head = this.pending[0];
    const s = this.socket;
    if (head === undefined || head.kind === 'ok' || s === undefined) return;
    if (Date.now() - head.sent > this.opts.target.commandTimeout) {
      this.fail(s, new Error(`Redis did not answer ${this.subCmd} within ${this.opts.target.commandTimeout} ms`));
    }
  }

  private checkRestored(): void {
    if (this.current !== 'restoring' && this.current !== 'connecting') return;
    if (!this.connected || this.restoring.size > 0) return;
    this.current = 'ready';
    this.opts.onReady?.(this);
  }

  // ---- replies ---------------------------------------------------------------------------------

  private onReply(reply: RespValue): void {
    if (Array.isArray(reply) && typeof reply[0] === 'string') {
      const type = reply[0].toLowerCase();
      const channel = typeof reply[1] === 'string' ? reply[1] : '';
      if (type === this.messageType) {
        this.opts.onMessage(channel, typeof reply[2] === 'string' ? reply[2] : '');
        return;
      }
      if (type === this.subCmd) return this.onSubscribeReply(channel);
      if (type === this.unsubCmd) return this.onUnsubscribe(channel);
      if (type === 'pong') {
        this.pending.shift();
        return;
      }
    }
    const head = this.pending.shift();
    if (head === undefined) {
      this.opts.logger.warn({ redis: this.opts.label, reply: String(reply) }, 'unexpected reply on a subscriber link');
      return;
    }
    if (reply instanceof RespError) {
      if (head.kind === 'sub') return this.onRefused(head.channel, reply);
      if (head.kind === 'unsub') {
        this.settle(head.channel);
        return;
      }
      if (head.kind === 'ok') {
        if (head.command === 'auth' && !/without any password configured/i.test(reply.message)) {
          // Wrong credentials: log, and try again later (they may be fixed on the server).
          this.fail(this.socket as Socket, new Error(reply.message));
          return;
        }
        // A password given to a server that wants none, or a name Redis refused: go on.
        this.opts.logger.debug({ err: reply.message, redis: this.opts.label }, 'redis subscriber link handshake');
        if (this.pending.length === 0 && !this.connected) this.onConnected();
      }
      return;
    }
    if (head.kind === 'ok' && this.pending.length === 0 && !this.connected) this.onConnected();
  }

  private onSubscribeReply(channel: string): void {
    const head = this.pending[0];
    if (head?.kind !== 'sub' || head.channel !== channel) return; // not ours (cannot happen)
    this.pending.shift();
    // Confirmed only when it is the last command sent for the channel (subscribe, unsubscribe and
    // subscribe again in flight: Redis holds it once the third is answered).
    if (this.settle(channel) !== 'sub' || !this.channels.has(channel)) return;
    this.active.add(channel);
    this.restoring.delete(channel);
    this.opts.onSubscribed(this, channel);
    this.checkRestored();
  }

  private onUnsubscribe(channel: string): void {
    const head = this.pending[0];
    if (head?.kind === 'unsub' && head.channel === channel) {
      this.pending.shift();
      this.settle(channel);
      return;
    }
    // Not asked for: Redis ended this subscription itself (its slot left this server).
    this.active.delete(channel);
    if (!this.channels.delete(channel)) return;
    this.restoring.delete(channel);
    this.opts.onDropped(this, channel);
    this.checkRestored();
  }

  private onRefused(channel: string, err: RespError): void {
    this.settle(channel);
    this.active.delete(channel);
    if (!this.channels.delete(channel)) return;
    this.restoring.delete(channel);
    this.opts.onRefused(this, channel, err);
    this.checkRestored();
  }
}
