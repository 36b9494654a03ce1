/**
 * The client: subscriptions on top of one logical connection (`Connection`). Each subscription
 * keeps its cursor and is resubscribed from it on every new connection; publications of a
 * subscription whose subscribe is in flight on that connection wait for the reply. Commands are
 * promises with timeouts, error codes and AbortSignal support. `close()` frees everything.
 */
import {
  HeraldError,
  checkChannel,
  type ConnectedPush,
  type DisconnectPush,
  type HistoryResult,
  type PublishResult,
  type Push,
  type RefreshPush,
  type StreamPosition,
  type SubscribeResult,
} from '@herald/protocol';
import { Connection, type Conn } from './connection.js';
import type { CallOptions, HistoryOptions, PublishOptions, SubscribeOptions } from './options.js';
import { transient } from './requests.js';
import { Subscription, type SubscriptionHost } from './subscription.js';

export type { ConnectedEvent, ConnectionState, HeraldEvents, StateEvent } from './connection.js';

export class Herald extends Connection implements SubscriptionHost {
  private readonly subs = new Map<string, Subscription>();
  private tokenFetches = 0;

  /** Subscribes to a channel or a subtree (`radio.**`). Throws on an invalid name or a duplicate. */
  subscribe<T = unknown>(channel: string, opts: SubscribeOptions = {}): Subscription<T> {
    if (this.state === 'closed') throw new HeraldError('HERALD_ERR_CLIENT_CLOSED', 'the client is closed');
    const check = checkChannel(channel);
    if (!check.ok) throw new HeraldError('HERALD_ERR_CHANNEL_INVALID', check.reason);
    if (this.subs.has(channel)) {
      throw new HeraldError('HERALD_ERR_SUBSCRIBE_ALREADY', `already subscribed to "${channel}"`);
    }
    const sub = new Subscription<T>(this, channel, opts);
    this.subs.set(channel, sub as Subscription);
    sub._set('subscribing', 'subscribe()');
    this.sendSubscribe(sub as Subscription);
    if (opts.signal?.aborted === true) sub.unsubscribe();
    opts.signal?.addEventListener('abort', () => sub.unsubscribe(), { once: true });
    return sub;
  }

  /** Every subscription of this client, by stream. */
  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.subs;
  }

  getSubscription<T = unknown>(channel: string): Subscription<T> | undefined {
    return this.subs.get(channel) as Subscription<T> | undefined;
  }

  /** @internal Called by `Subscription.unsubscribe()`. */
  removeSubscription(sub: Subscription): void {
    if (this.subs.get(sub.channel) !== sub) return;
    this.subs.delete(sub.channel);
    sub._id = 0;
    sub._set('unsubscribed', 'unsubscribe()');
    const c = this.conn;
    if (c === undefined) return;
    this.requests.add({ cmd: 'unsubscribe', channel: sub.channel }, () => undefined, this.o.timeout);
    c.tr.refresh?.();
  }

  publish(channel: string, data: unknown, opts: PublishOptions = {}): Promise<PublishResult> {
    return this.call({ cmd: 'publish', channel, data, idempotencyKey: opts.idempotencyKey }, opts);
  }

  history<T = unknown>(channel: string, opts: HistoryOptions = {}): Promise<HistoryResult<T>> {
    const { limit, since, reverse } = opts;
    return this.call({ cmd: 'history', channel, limit, since, reverse }, opts);
  }

  /** Calls the application backend through the server (`auth.hooks.rpc`); resolves with its answer. */
  async rpc<R = unknown>(method: string, data?: unknown, opts: CallOptions = {}): Promise<R> {
    return (await this.call<{ data: R }>({ cmd: 'rpc', method, data }, opts)).data;
  }

  /** A round trip to the server; resolves with the time it took, in ms. */
  async ping(opts: CallOptions = {}): Promise<number> {
    const start = Date.now();
    await this.call({ cmd: 'ping' }, opts);
    return Date.now() - start;
  }

  override close(): void {
    if (this.state === 'closed') return;
    for (const sub of this.subs.values()) {
      sub._id = 0;
      sub._set('unsubscribed', 'close()');
    }
    this.subs.clear();
    super.close();
  }

  protected resubscribe(): void {
    for (const sub of this.subs.values()) this.sendSubscribe(sub);
  }

  protected suspend(): void {
    for (const sub of this.subs.values()) sub._set('subscribing', 'disconnected');
  }

  protected push(c: Conn, f: Exclude<Push, ConnectedPush | DisconnectPush | RefreshPush>): void {
    const sub = this.subs.get(f.stream);
    if (sub === undefined) return;
    if (f.push === 'pub') {
      const p = { stream: f.stream, channel: f.channel, epoch: f.epoch, offset: f.offset, data: f.data };
      if (sub._on === c) sub._held.push(p);
      else if (sub.state === 'subscribed') sub._deliver(p);
    } else if (f.push === 'subscribed') sub._apply(f);
    else if (f.code !== undefined) {
      // A stream refused for now (the engine unavailable, a node unreachable: 5xx) is retried like a
      // subscribe reply with that code: the connection is dropped and every stream resubscribes from
      // its cursor after the backoff. Only a final refusal ends the subscription.
      const err = new HeraldError(f.code, f.reason);
      if (transient(err)) {
        if (c === this.conn) this.drop(c, 3000, `stream "${sub.channel}" refused for now: ${f.reason}`);
      } else this.refuse(sub, err);
    }
  }

  /** Subscribes `sub` on the current connection (first getting its subscription token, if it has a getter). */
  private sendSubscribe(sub: Subscription): void {
    const c = this.conn;
    if (c === undefined) return;
    sub._on = c;
    sub._held = [];
    const send = (token?: string): void => {
      const cmd = { cmd: 'subscribe' as const, channel: sub.channel, since: sub.cursor, backlog: sub.backlog, token };
      const id = (sub._id = this.requests.add(
        cmd,
        (err, result, via) => {
          if (sub._id !== id) return;
          sub._on = undefined;
          if (err === undefined) {
            sub._apply(result as SubscribeResult);
            via?.tr.refresh?.();
          } else if (!transient(err)) this.refuse(sub, err);
          else if (c === this.conn) this.drop(c, 3000, `subscribe to "${sub.channel}" failed: ${String(err)}`);
        },
        this.o.timeout,
      ));
    };
    const get = sub.getToken;
    if (get === undefined) return send();
    // While the token is fetched, `_id` marks this attempt: a newer one (or an unsubscribe) wins.
    const mark = (sub._id = -++this.tokenFetches);
    get(sub.channel).then(
      (token) => {
        if (sub._id === mark && c === this.conn) send(token);
      },
      (err: unknown) => {
        if (sub._id === mark) this.refuse(sub, err);
      },
    );
  }

  private refuse(sub: Subscription, err: unknown): void {
    const e =
      err instanceof HeraldError ? err : new HeraldError('HERALD_ERR_AUTH_SUBSCRIPTION_TOKEN_REQUIRED', String(err));
    this.subs.delete(sub.channel);
    sub._id = 0;
    sub._set('unsubscribed', e.message, e);
  }

  /** Cursors of the subscriptions that are live (what a long-poll asks for). */
  protected cursors(): Map<string, StreamPosition> {
    const out = new Map<string, StreamPosition>();
    for (const [stream, sub] of this.subs) {
      if (sub.state === 'subscribed' && sub._on === undefined && sub.cursor !== undefined) out.set(stream, sub.cursor);
    }
    return out;
  }
}
