/**
 * The connection layer of the client: one logical connection over the first transport that works,
 * reconnecting with capped exponential backoff and full jitter (or the server's `retryAfterMs`),
 * make-before-break replacement (upgrade to WebSocket, token renewal), liveness, and the commands
 * in flight. `Herald` adds the subscriptions on top.
 *
 * Connection state: `disconnected | connecting | connected | closed`, changed only by `setState`,
 * which emits `state` with the reason. `connecting` includes the wait between attempts;
 * `disconnected` means nothing happens until `connect()` (the server said not to reconnect).
 */
import {
  HeraldError,
  shouldReconnect,
  type ConnectedPush,
  type DisconnectPush,
  type Push,
  type RefreshPush,
  type StreamPosition,
} from '@herald/protocol';
import { Emitter } from './emitter.js';
import { backoff, resolveOptions, type CallOptions, type HeraldOptions, type ResolvedOptions } from './options.js';
import { lost, Requests, type OutCommand } from './requests.js';
import { httpStream } from './transports/http-stream.js';
import { longPoll } from './transports/long-poll.js';
import { sse } from './transports/sse.js';
import type { InFrame, Transport, TransportFactory, TransportName } from './transports/transport.js';
import { websocket } from './transports/websocket.js';

export type ConnectionState = 'disconnected' | 'connecting' | 'connected' | 'closed';

export interface StateEvent {
  state: ConnectionState;
  prev: ConnectionState;
  reason: string;
  /** The close or disconnect code that caused the change, when there is one. */
  code?: number;
  /** `connecting` after a loss: the next attempt starts in this many ms (backoff, or the server's hint). */
  retryIn?: number;
}

export interface ConnectedEvent {
  client: string;
  transport: TransportName;
}

export interface HeraldEvents {
  state: StateEvent;
  /** A transport is connected: after each (re)connect, and after an upgrade or a token renewal. */
  connected: ConnectedEvent;
  /** A problem no caller can be told about (getToken failed, the server refused a frame). */
  error: unknown;
}

const FACTORIES: Record<TransportName, TransportFactory> = {
  websocket,
  'http-stream': httpStream,
  sse,
  'long-poll': longPoll,
};

type Timer = ReturnType<typeof setTimeout>;

export interface Conn {
  tr: Transport;
  readonly name: TransportName;
  /** Index of the transport to try if this one fails to connect. */
  readonly next: number;
  dis?: DisconnectPush;
}

/** The `exp` of a JWT in ms, if the token is one. */
function expiry(token: string): number | undefined {
  try {
    const part = (token.split('.')[1] ?? '').replace(/-/g, '+').replace(/_/g, '/');
    const exp = (JSON.parse(atob(part)) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

export abstract class Connection extends Emitter<HeraldEvents> {
  state: ConnectionState = 'disconnected';
  /** The client id the server gave this connection. */
  client: string | undefined;
  /** The transport in use while connected. */
  transport: TransportName | undefined;
  protected readonly o: ResolvedOptions;
  private readonly base: string;
  private token: string | undefined;
  protected conn: Conn | undefined;
  /** A transport being tried while connecting. */
  private cand: Conn | undefined;
  /** A transport being opened while connected, to replace `conn` (upgrade, token renewal). */
  private probe: Conn | undefined;
  /** The replaced HTTP transport, whose commands in flight may still answer. */
  private old: Conn | undefined;
  protected readonly requests = new Requests<Conn>(
    () => this.conn,
    (c, frames) => c.tr.send(frames),
  );
  private gen = 0;
  private attempts = 0;
  private lastSeen = 0;
  /** Backoff wait or connect timeout (never both). */
  private timer: Timer | undefined;
  private liveTimer: Timer | undefined;
  private probeTimer: Timer | undefined;
  private tokenTimer: Timer | undefined;

  /** `url`: the server's base URL, `https://rt.example.com` (`ws(s)://` works too). */
  constructor(url: string, options: HeraldOptions = {}) {
    super();
    const page = (globalThis as { location?: { href: string } }).location?.href;
    this.base = new URL(url, page).href.replace(/\/+$/, '').replace(/^ws/, 'http');
    this.o = resolveOptions(options);
    this.token = options.token;
    if (this.o.autoConnect) {
      // Listeners added right after `new` see every event from the first attempt on.
      this.state = 'connecting';
      queueMicrotask(() => {
        if (this.state === 'connecting' && this.gen === 0) this.cycle();
      });
    }
  }

  /** Connects (when `disconnected`). */
  connect(): void {
    if (this.state !== 'disconnected') return;
    this.setState('connecting', 'connect()');
    this.cycle();
  }

  /** Ends everything: connection, timers, requests; commands reject, subscriptions end. Final. */
  close(): void {
    if (this.state === 'closed') return;
    this.gen++;
    for (const t of [this.timer, this.liveTimer, this.probeTimer, this.tokenTimer]) clearTimeout(t);
    for (const c of [this.conn, this.cand, this.probe, this.old]) c?.tr.close(true);
    this.conn = this.cand = this.probe = this.old = undefined;
    this.requests.fail(undefined, new HeraldError('HERALD_ERR_CLIENT_CLOSED', 'the client was closed'));
    this.setState('closed', 'close()');
  }

  // ---- hooks of the subscriptions layer (`Herald`) ---------------------------------------------

  /** Connected (or moved to a new connection): subscribe everything on `conn`. */
  protected abstract resubscribe(): void;
  /** The connection is gone: every subscription waits for the next one. */
  protected abstract suspend(): void;
  /** A push of the current connection (publications, subscription changes). */
  protected abstract push(c: Conn, f: Exclude<Push, ConnectedPush | DisconnectPush | RefreshPush>): void;
  /** Cursors of the live subscriptions (what a long-poll asks for). */
  protected abstract cursors(): Map<string, StreamPosition>;

  private setState(state: ConnectionState, reason: string, code?: number, retryIn?: number): void {
    const prev = this.state;
    if (prev === state) return;
    this.state = state;
    this.emit('state', { state, prev, reason, code, retryIn });
  }

  // ---- connecting ------------------------------------------------------------------------------

  /** One connect cycle: a fresh token, then each transport in order until one connects. */
  private cycle(): void {
    const gen = ++this.gen;
    const get = this.o.getToken;
    if (get === undefined) return void this.attempt(gen, 0);
    get().then(
      (token) => {
        if (gen !== this.gen) return;
        this.token = token;
        this.attempt(gen, 0);
      },
      (err: unknown) => {
        if (gen !== this.gen) return;
        this.emit('error', err);
        this.wait();
      },
    );
  }

  private attempt(gen: number, i: number): void {
    if (gen !== this.gen) return;
    const name = (this.o.upgrade ? ['long-poll' as const] : this.o.transports)[i];
    if (name === undefined) return void this.wait();
    const c = (this.cand = this.open(name, i + 1));
    this.timer = setTimeout(
      () => this.drop(c, 1006, `${name}: no connected push within ${this.o.connectTimeout} ms`),
      this.o.connectTimeout,
    );
  }

  /** Waits, then starts a new cycle: `delay` (the server's hint) or the backoff. Returns the wait. */
  private wait(delay = backoff(this.attempts++, this.o.minReconnectDelay, this.o.maxReconnectDelay)): number {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.cycle(), delay);
    return delay;
  }

  private open(name: TransportName, next: number): Conn {
    const c = { name, next } as Conn;
    c.tr = FACTORIES[name](
      {
        base: this.base,
        token: () => this.token,
        fetch: this.o.fetch,
        WebSocket: this.o.WebSocket,
        credentials: this.o.credentials,
        pollTimeout: this.o.pollTimeout,
        cursors: () => this.cursors(),
      },
      {
        frame: (f) => this.frame(c, f),
        alive: () => {
          if (c === this.conn) this.lastSeen = Date.now();
        },
        closed: (code, reason) => this.closed(c, code, reason),
      },
    );
    return c;
  }

  private startProbe(name: TransportName): void {
    const c = (this.probe = this.open(name, 0));
    this.probeTimer = setTimeout(() => this.drop(c, 1006, 'probe timed out'), this.o.connectTimeout);
  }

  private connected(c: Conn, push: ConnectedPush): void {
    if (c === this.cand) {
      clearTimeout(this.timer);
      this.cand = undefined;
      this.attempts = 0;
    } else if (c === this.probe && this.conn !== undefined) {
      // Make before break: the new transport takes over; every subscription resumes from its cursor.
      clearTimeout(this.probeTimer);
      this.probe = undefined;
      const old = this.conn;
      this.old?.tr.close(true);
      this.old = old.name === 'websocket' ? undefined : old;
      old.tr.close(old.name === 'websocket');
      // Replies to what was sent on a closed WebSocket will not come.
      if (this.old === undefined) this.requests.fail(old, lost(1000, 'replaced'));
    } else return;
    this.conn = c;
    this.client = push.client;
    this.transport = c.name;
    this.lastSeen = Date.now();
    this.live(push.pingInterval);
    this.planRenewal();
    this.resubscribe();
    this.requests.flush();
    this.setState('connected', `connected over ${c.name}`);
    this.emit('connected', { client: push.client, transport: c.name });
    if (this.o.upgrade && c.name === 'long-poll' && this.o.transports.includes('websocket'))
      this.startProbe('websocket');
  }

  /** A transport ended by itself (or was dropped): try the next, or reconnect, or stop. */
  private closed(c: Conn, code: number, reason: string): void {
    if (c.dis !== undefined) ({ code, reason } = c.dis);
    const final = !shouldReconnect(code) && !((code === 3510 || code === 3511) && this.o.getToken !== undefined);
    if (c === this.cand) {
      clearTimeout(this.timer);
      this.cand = undefined;
      if (final) return this.stop(code, reason);
      // A refused token: other transports would refuse it too; wait, then start over with a new one.
      if (code === 3510 || code === 3511) return void this.wait();
      return this.attempt(this.gen, c.next);
    }
    if (c === this.probe) {
      clearTimeout(this.probeTimer);
      this.probe = undefined;
      return;
    }
    if (c !== this.conn) return;
    this.conn = this.client = this.transport = undefined;
    for (const t of [this.liveTimer, this.probeTimer, this.tokenTimer]) clearTimeout(t);
    this.probe?.tr.close(true);
    this.probe = undefined;
    this.requests.fail(c, lost(code, reason));
    this.suspend();
    if (final) return this.stop(code, reason);
    this.setState('connecting', reason, code, this.wait(c.dis?.retryAfterMs));
  }

  private stop(code: number, reason: string): void {
    this.setState('disconnected', reason, code);
    this.requests.fail('queued', lost(code, reason));
  }

  /** Closes a transport from this side, and handles it as if it had ended by itself. */
  protected drop(c: Conn, code: number, reason: string): void {
    c.tr.close(true);
    this.closed(c, code, reason);
  }

  /**
   * Liveness: ping when the server has been quiet for `interval` (its ping or heartbeat interval);
   * give the connection up after `2 * interval + timeout` without a byte.
   */
  private live(interval: number): void {
    const step = Math.max(50, interval / 2);
    clearTimeout(this.liveTimer);
    this.liveTimer = setTimeout(() => {
      const c = this.conn;
      if (c === undefined) return;
      const idle = Date.now() - this.lastSeen;
      if (idle > 2 * interval + this.o.timeout) return this.drop(c, 3003, `no data from the server for ${idle} ms`);
      if (idle >= interval) this.requests.add({ cmd: 'ping' }, () => undefined, this.o.timeout);
      this.live(interval);
    }, step);
  }

  /** Plans a token renewal at 90% of the JWT's lifetime (the server may also ask: `refresh` push). */
  private planRenewal(): void {
    const exp = this.token === undefined ? undefined : expiry(this.token);
    clearTimeout(this.tokenTimer);
    if (this.o.getToken !== undefined && exp !== undefined) {
      this.tokenTimer = setTimeout(() => this.renew(), Math.max(0, (exp - Date.now()) * 0.9));
    }
  }

  /** Gets a new token and sends `refresh`; if the server refuses, a new connection takes over. */
  private renew(): void {
    const c = this.conn;
    const get = this.o.getToken;
    clearTimeout(this.tokenTimer);
    if (c === undefined || get === undefined) return;
    get().then(
      (token) => {
        if (c !== this.conn) return;
        this.token = token;
        this.requests.add(
          { cmd: 'refresh', token },
          (err) => {
            if (err === undefined) {
              this.planRenewal();
              // A held long-poll carries the old token: poll again with the new one.
              if (c === this.conn) c.tr.refresh?.();
            } else if (c === this.conn && this.probe === undefined) this.startProbe(c.name);
          },
          this.o.timeout,
        );
      },
      (err: unknown) => this.emit('error', err),
    );
  }

  // ---- frames and commands ----------------------------------------------------------------------

  private frame(c: Conn, f: InFrame): void {
    if (!('push' in f)) {
      const err = 'error' in f ? new HeraldError(f.error.code, f.error.message) : undefined;
      if (f.id === undefined) return this.emit('error', err);
      this.requests.settle(f.id, err, 'result' in f ? f.result : undefined, c);
      if (err?.code === 'HERALD_ERR_AUTH_TOKEN_EXPIRED' && c === this.conn) this.drop(c, 3511, err.message);
      return;
    }
    if (f.push === 'connected') return this.connected(c, f);
    if (f.push === 'disconnect') {
      c.dis = f;
      return;
    }
    if (c !== this.conn) return;
    if (f.push === 'refresh') this.renew();
    else this.push(c, f);
  }

  protected call<R>(cmd: OutCommand, opts: CallOptions): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const { signal } = opts;
      if (this.state === 'closed' || this.state === 'disconnected') {
        return reject(
          new HeraldError(
            this.state === 'closed' ? 'HERALD_ERR_CLIENT_CLOSED' : 'HERALD_ERR_CLIENT_DISCONNECTED',
            `the client is ${this.state}`,
          ),
        );
      }
      if (signal?.aborted === true) return reject(signal.reason);
      const abort = (): void => this.requests.settle(id, signal?.reason);
      const id = this.requests.add(
        cmd,
        (err, result) => {
          signal?.removeEventListener('abort', abort);
          if (err === undefined) resolve(result as R);
          else reject(err as Error);
        },
        opts.timeout ?? this.o.timeout,
      );
      signal?.addEventListener('abort', abort, { once: true });
    });
  }
}
