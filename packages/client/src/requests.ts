/**
 * Commands in flight: ids, a timeout each, and the outbox of those not sent yet. Everything queued
 * in one turn of the event loop is sent as one batch (one WebSocket message, one `POST /send`) on
 * the current connection; commands made while connecting wait for it. Each command settles once:
 * with its reply, its timeout, or an error given by the client (connection lost, closed, aborted).
 */
import { HeraldError, isServerFault } from '@herald/protocol';
import type { OutFrame } from './transports/transport.js';

export type OutCommand = OutFrame extends infer F ? (F extends OutFrame ? Omit<F, 'id'> : never) : never;

/** Called once per command: `err` undefined means `result` is the reply's result. */
export type Settled<C> = (err: unknown, result: unknown, via: C | undefined) => void;

interface Pending<C> {
  readonly frame: OutFrame;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly done: Settled<C>;
  /** The connection it was sent on (undefined while in the outbox). */
  conn?: C;
}

export class Requests<C> {
  readonly #pending = new Map<number, Pending<C>>();
  #outbox: Pending<C>[] = [];
  #nextId = 1;
  #flushQueued = false;

  /** The connection to send on now, if any. */
  readonly #current: () => C | undefined;
  readonly #send: (conn: C, frames: OutFrame[]) => void;

  constructor(current: () => C | undefined, send: (conn: C, frames: OutFrame[]) => void) {
    this.#current = current;
    this.#send = send;
  }

  /** Queues a command; returns its id. */
  add(cmd: OutCommand, done: Settled<C>, timeout: number): number {
    const id = this.#nextId++;
    const timer = setTimeout(
      () => this.settle(id, new HeraldError('HERALD_ERR_TIMEOUT', `${cmd.cmd}: no reply within ${timeout} ms`)),
      timeout,
    );
    const p: Pending<C> = { frame: { ...cmd, id } as OutFrame, timer, done };
    this.#pending.set(id, p);
    this.#outbox.push(p);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.flush());
    }
    return id;
  }

  /** Sends everything queued, if there is a connection. */
  flush(): void {
    this.#flushQueued = false;
    const c = this.#current();
    if (c === undefined || this.#outbox.length === 0) return;
    const batch = this.#outbox;
    this.#outbox = [];
    for (const p of batch) p.conn = c;
    this.#send(
      c,
      batch.map((p) => p.frame),
    );
  }

  settle(id: number, err: unknown, result?: unknown, via?: C): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#unqueue(id, p);
    p.done(err, result, via);
  }

  /** Takes back a command that is still in the outbox, without settling it; says whether it was there. */
  unsend(id: number): boolean {
    const p = this.#pending.get(id);
    if (p === undefined || p.conn !== undefined) return false;
    this.#unqueue(id, p);
    return true;
  }

  #unqueue(id: number, p: Pending<C>): void {
    this.#pending.delete(id);
    clearTimeout(p.timer);
    const i = this.#outbox.indexOf(p);
    if (i !== -1) this.#outbox.splice(i, 1);
  }

  /** Settles with `err` every command sent on `conn` (all: undefined), or still queued (`'queued'`). */
  fail(which: C | 'queued' | undefined, err: unknown): void {
    for (const [id, p] of [...this.#pending]) {
      if (which === undefined || (which === 'queued' ? p.conn === undefined : p.conn === which)) this.settle(id, err);
    }
  }
}

/** Errors after which the connection, not the request, is at fault: reconnect and resubscribe. */
export function transient(err: unknown): boolean {
  const code = (err as HeraldError).code;
  return code === 'HERALD_ERR_SESSION_NOT_FOUND' || code === 'HERALD_ERR_AUTH_TOKEN_EXPIRED' || isServerFault(code);
}

/** The connection closed (before a command's reply, or for good). */
export function lost(code: number, reason: string): HeraldError {
  return new HeraldError('HERALD_ERR_CLIENT_DISCONNECTED', `the connection closed (${code} ${reason})`);
}
