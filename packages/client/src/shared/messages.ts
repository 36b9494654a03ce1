/**
 * What tabs and the owner of the shared connection (a SharedWorker, or the leader tab) say to each
 * other. Every message is structured-cloneable: errors travel as `{code, message}` and are rebuilt.
 */
import { HeraldError, type ErrorCode, type PresenceInfo, type StreamPosition } from '@herald/protocol';
import type {
  ConnectionState,
  HeraldOptions,
  Publication,
  SubscribedEvent,
  SubscriptionState,
  TransportName,
} from '../index.js';

export interface WireError {
  code?: string;
  name?: string;
  message: string;
}

/** The commands a tab forwards; the owner calls the `Herald` method of that name. */
export type Method = 'publish' | 'history' | 'presence' | 'presenceStats' | 'rpc' | 'ping';

/**
 * A command's options as sent (no `signal`: the tab handles it). `timeout` is what is left of the
 * tab's: a command sent again to a new owner has less.
 */
export interface CallOpts {
  timeout: number;
  idempotencyKey?: string;
  limit?: number;
  since?: StreamPosition;
  reverse?: boolean;
  latest?: boolean;
}

/** A tab to the owner. */
export type ToOwner =
  /** First message of a tab on a (new) owner. `opts`: the tab's options without functions. */
  | { t: 'hello'; tab: string; name: string; url: string; opts: HeraldOptions; token: boolean }
  | { t: 'sub'; ch: string; since?: StreamPosition; backlog?: number; token: boolean }
  | { t: 'unsub'; ch: string }
  /** The owner calls `herald[m](...a, o)` and answers with a `result`. */
  | { t: 'call'; id: number; m: Method; a: unknown[]; o: CallOpts }
  /** `setToken()` in a tab. */
  | { t: 'token'; v: string }
  /** The reply to an `ask` (a token from the tab's `getToken`). */
  | { t: 'answer'; id: number; v?: string; e?: WireError }
  | { t: 'connect' }
  | { t: 'bye' };

/** The owner to a tab. */
export type ToTab =
  | {
      t: 'state';
      state: ConnectionState;
      reason: string;
      code?: number;
      retryIn?: number;
      client?: string;
      transport?: TransportName;
      /** Why, when a failure caused it (the `state` event's `error`). */
      e?: WireError;
    }
  | { t: 'connected'; client: string; transport: TransportName }
  | { t: 'error'; e: WireError }
  /** The state of the owner's subscription to `ch`. */
  | { t: 'sstate'; ch: string; state: SubscriptionState; reason: string; e?: WireError }
  | { t: 'subscribed'; ch: string; ev: SubscribedEvent }
  /** The owner's subscription to `ch` is at `at`: everything after it comes live. */
  | { t: 'pos'; ch: string; at: StreamPosition }
  | { t: 'pub'; p: Publication }
  /** A join or leave on `ch` (the owner's subscription's `join` / `leave` event). */
  | { t: 'pres'; ch: string; k: 'join' | 'leave'; v: PresenceInfo }
  | { t: 'result'; id: number; v?: unknown; e?: WireError }
  /** The connection's latest token (from `token` or `setToken()`): a next owner starts with it. */
  | { t: 'token'; v: string }
  /** Asks the tab for a token: the connection's (no `ch`), or a subscription's. */
  | { t: 'ask'; id: number; ch?: string };

export function toWire(err: unknown): WireError {
  if (typeof (err as HeraldError | undefined)?.code === 'string') {
    return { code: (err as HeraldError).code, message: (err as HeraldError).message };
  }
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { message: String(err) };
}

export function fromWire(w: WireError): Error {
  if (w.code !== undefined) return new HeraldError(w.code as ErrorCode, w.message);
  const err = new Error(w.message);
  if (w.name !== undefined) err.name = w.name;
  return err;
}

/** Web Locks names: the leader's, and the one each tab holds while it lives. */
export function lockName(name: string, tab?: string): string {
  return tab === undefined ? `herald:${name}:leader` : `herald:${name}:tab:${tab}`;
}

/** Calls `fn` once the holder of the lock `name` releases it (its tab closed). */
export function whenGone(locks: LockManager, name: string, fn: () => void, signal?: AbortSignal): void {
  locks.request(name, signal === undefined ? {} : { signal }, fn).catch(() => undefined);
}
