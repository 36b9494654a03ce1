/**
 * A worker's end of the IPC channel to its supervisor (docs/scaling.md, "Workers"). Requests are
 * numbered and answered in any order; everything a worker says within one tick leaves in one
 * `process.send` (see messages.ts), and what the supervisor sends arrives the same way, in the
 * order it was made: per stream, publications in offset order, and an answer after the publications
 * made before it.
 */
import { HeraldError } from '@herald/protocol';
import type { Publication } from '../../core/engine.js';
import type { PresenceEvent } from '../../core/presence.js';
import type { ClusterOp, SupervisorMessage, WorkerMessage } from './messages.js';

/** The IPC channel (a cluster worker's `process`). */
export interface IpcPort {
  send?(message: unknown): boolean;
  readonly connected?: boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
}

/** Where the link hands what the supervisor sends on its own. */
export interface WorkerLinkHandlers {
  publication?(pub: Publication): void;
  presence?(event: PresenceEvent): void;
  /** A control request for this worker's node; resolves with the answer (see EngineControl). */
  control?(message: string): Promise<string>;
  /** This worker's metrics as prom-client JSON, for the supervisor's sum. */
  metrics?(): Promise<unknown>;
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

export class WorkerLink {
  readonly handlers: WorkerLinkHandlers = {};
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private out: WorkerMessage[] = [];
  private flushing = false;
  private closed = false;
  /** Plain-object (lifecycle) messages go here. */
  onControl: ((message: unknown) => void) | undefined;

  constructor(private readonly port: IpcPort) {
    port.on('message', (m) => {
      if (Array.isArray(m)) for (const one of m as SupervisorMessage[]) this.receive(one);
      else this.onControl?.(m);
    });
    port.on('disconnect', () => this.fail(new HeraldError('HERALD_ERR_ENGINE_UNAVAILABLE', 'the supervisor is gone')));
  }

  get connected(): boolean {
    return !this.closed && this.port.connected === true;
  }

  /** Asks the supervisor; rejects with its HeraldError, or ENGINE_UNAVAILABLE once it is gone. */
  request<T>(op: ClusterOp, a: unknown): Promise<T> {
    if (!this.connected) {
      return Promise.reject(new HeraldError('HERALD_ERR_ENGINE_UNAVAILABLE', 'the supervisor is gone'));
    }
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.push({ k: 'req', id, op, a });
    });
  }

  /** Sends a lifecycle message at once (not batched). */
  sendNow(message: object): void {
    if (this.connected) this.port.send?.(message);
  }

  /** Rejects what is still waiting; sends nothing more. */
  fail(err: Error): void {
    this.closed = true;
    this.out = [];
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private push(m: WorkerMessage): void {
    this.out.push(m);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    const batch = this.out;
    this.out = [];
    if (batch.length > 0 && this.connected) this.port.send?.(batch);
  }

  private receive(m: SupervisorMessage): void {
    switch (m.k) {
      case 'pub':
        this.handlers.publication?.(m.p);
        return;
      case 'res': {
        const p = this.pending.get(m.id);
        if (p === undefined) return;
        this.pending.delete(m.id);
        if (m.e !== undefined) p.reject(new HeraldError(m.e.code, m.e.message));
        else p.resolve(m.v);
        return;
      }
      case 'presence':
        this.handlers.presence?.(m.e);
        return;
      case 'ctl': {
        const handler = this.handlers.control;
        if (handler === undefined) {
          this.push({ k: 'ctl-res', id: m.id, ok: false, body: 'this worker serves no node' });
          return;
        }
        handler(m.m).then(
          (body) => this.push({ k: 'ctl-res', id: m.id, ok: true, body }),
          () => this.push({ k: 'ctl-res', id: m.id, ok: false, body: 'the node could not run the request' }),
        );
        return;
      }
      case 'metrics': {
        const collect = this.handlers.metrics ?? (() => Promise.resolve([]));
        collect().then(
          (json) => this.push({ k: 'metrics-res', id: m.id, json }),
          () => this.push({ k: 'metrics-res', id: m.id, json: [] }),
        );
        return;
      }
      default: {
        const never: never = m;
        void never;
      }
    }
  }
}
