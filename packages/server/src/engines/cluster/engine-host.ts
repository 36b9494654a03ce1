/**
 * The supervisor's side of the workers' engine (cluster-engine.ts): it owns every stream. One
 * `MemoryEngine` assigns offsets, keeps history, idempotency keys and presence for all workers; it
 * lives as long as the supervisor, so a worker that crashes and comes back finds the same epochs
 * and history, and its clients resume by cursor. The host remembers which worker subscribed to
 * which stream and hands each publication only to those workers, batched per tick (worker-port.ts);
 * each worker fans it out to its own connections.
 *
 * It also routes control requests between workers (each worker is a node: `/send` for a session
 * another worker streams, the admin page's queries), keeps every worker's admin-page figures, and
 * answers `/metrics` with the sum of every worker's (through `metrics`).
 *
 * A worker that exits is detached: its subscriptions and node go, and the control requests it was
 * serving fail with HERALD_ERR_NODE_UNREACHABLE. Its presence entries expire as a dead node's do.
 */
import { HeraldError } from '@herald/protocol';
import type { HistoryRequest, Publication, PublishRequest } from '../../core/engine.js';
import { toErrorBody } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { PresenceJoin, PresenceOptions } from '../../core/presence.js';
import type { MemoryEngine } from '../memory/memory-engine.js';
import type { ClusterOp, SupervisorMessage, WorkerMessage } from './messages.js';

/** One worker as the host sees it: a batched sender, and what the worker holds here. */
export class WorkerPort {
  /** Streams this worker subscribed to. */
  readonly streams = new Set<string>();
  /** The node id this worker serves control requests for. */
  node: string | undefined;
  private out: SupervisorMessage[] = [];
  private flushing = false;
  attached = true;

  constructor(
    readonly slot: number,
    private readonly send: (batch: SupervisorMessage[]) => void,
  ) {}

  push(m: SupervisorMessage): void {
    if (!this.attached) return;
    this.out.push(m);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    const batch = this.out;
    this.out = [];
    if (batch.length > 0 && this.attached) this.send(batch);
  }
}

interface Relay {
  readonly target: WorkerPort;
  resolve(answer: string): void;
  reject(err: Error): void;
  readonly timer: NodeJS.Timeout;
}

interface Collection {
  readonly results: unknown[];
  waiting: Set<WorkerPort>;
  done(): void;
}

export interface EngineHostOptions {
  /** The engine workers share (memory); absent when each worker runs its own (Redis). */
  readonly engine?: MemoryEngine;
  readonly logger: Logger;
  /** The text of `/metrics` for the whole server (the supervisor sums `collectMetrics()`). */
  readonly metrics: () => Promise<string>;
}

export class EngineHost {
  private readonly ports = new Set<WorkerPort>();
  /** Workers subscribed to each stream. */
  private readonly subscribers = new Map<string, Set<WorkerPort>>();
  private readonly servers = new Map<string, WorkerPort>();
  private readonly relays = new Map<number, Relay>();
  private readonly collections = new Map<number, Collection>();
  /** Every worker's latest admin-page figures, by node id. */
  private readonly figures = new Map<string, { until: number; report: string }>();
  private seq = 0;

  constructor(private readonly opts: EngineHostOptions) {}

  async start(): Promise<void> {
    const engine = this.opts.engine;
    if (engine === undefined) return;
    await engine.start({ onPublication: (pub) => this.onPublication(pub) });
    engine.presence.onEvent((e) => {
      const ports = this.subscribers.get(e.stream);
      if (ports !== undefined) for (const port of ports) port.push({ k: 'presence', e });
    });
  }

  close(): Promise<void> {
    return this.opts.engine?.close() ?? Promise.resolve();
  }

  attach(port: WorkerPort): void {
    this.ports.add(port);
  }

  /** The worker is gone: forget what it held, fail what waits on it. */
  detach(port: WorkerPort): void {
    port.attached = false;
    this.ports.delete(port);
    for (const stream of port.streams) this.unsubscribe(port, stream);
    if (port.node !== undefined && this.servers.get(port.node) === port) this.servers.delete(port.node);
    for (const [id, r] of this.relays) {
      if (r.target !== port) continue;
      clearTimeout(r.timer);
      this.relays.delete(id);
      r.reject(unreachable(port.node ?? '?', 'its worker exited'));
    }
    for (const c of this.collections.values()) {
      if (c.waiting.delete(port) && c.waiting.size === 0) c.done();
    }
  }

  /** A batch from a worker. */
  receive(port: WorkerPort, batch: readonly WorkerMessage[]): void {
    for (const m of batch) {
      switch (m.k) {
        case 'req':
          this.run(port, m.op, m.a).then(
            (v) => port.push({ k: 'res', id: m.id, v: v ?? null }),
            (err: unknown) => port.push({ k: 'res', id: m.id, e: toErrorBody(err, this.opts.logger) }),
          );
          break;
        case 'ctl-res': {
          const r = this.relays.get(m.id);
          if (r === undefined) break; // answered after its timeout
          this.relays.delete(m.id);
          clearTimeout(r.timer);
          if (m.ok) r.resolve(m.body);
          else r.reject(new HeraldError('HERALD_ERR_INTERNAL', m.body));
          break;
        }
        case 'metrics-res': {
          const c = this.collections.get(m.id);
          if (c === undefined || !c.waiting.delete(port)) break;
          c.results.push(m.json);
          if (c.waiting.size === 0) c.done();
          break;
        }
        default: {
          const never: never = m;
          void never;
        }
      }
    }
  }

  /** Every worker's metrics (prom-client JSON), as many as answer within `timeoutMs`. */
  collectMetrics(timeoutMs: number): Promise<unknown[]> {
    const id = ++this.seq;
    return new Promise((resolve) => {
      const results: unknown[] = [];
      const timer = setTimeout(() => c.done(), timeoutMs);
      const c: Collection = {
        results,
        waiting: new Set(this.ports),
        done: () => {
          clearTimeout(timer);
          this.collections.delete(id);
          resolve(results);
        },
      };
      this.collections.set(id, c);
      if (c.waiting.size === 0) c.done();
      for (const port of this.ports) port.push({ k: 'metrics', id });
    });
  }

  private onPublication(pub: Publication): void {
    const ports = this.subscribers.get(pub.stream);
    if (ports !== undefined) for (const port of ports) port.push({ k: 'pub', p: pub });
  }

  private get engine(): MemoryEngine {
    const e = this.opts.engine;
    if (e === undefined) throw new HeraldError('HERALD_ERR_ENGINE_UNAVAILABLE', 'the workers run their own engine');
    return e;
  }

  private async run(port: WorkerPort, op: ClusterOp, a: unknown): Promise<unknown> {
    switch (op) {
      case 'publish':
        return this.engine.publish(a as PublishRequest);
      case 'history':
        return this.engine.history(a as HistoryRequest);
      case 'subscribe':
        await this.subscribe(port, a as string);
        return null;
      case 'unsubscribe':
        this.unsubscribe(port, a as string);
        return null;
      case 'presence.join': {
        const [stream, entries, o] = a as [string, PresenceJoin[], PresenceOptions & { max: number }];
        return this.engine.presence.join(stream, entries, o);
      }
      case 'presence.leave': {
        const [stream, client, o] = a as [string, string, PresenceOptions];
        return this.engine.presence.leave(stream, client, o);
      }
      case 'presence.list': {
        const [stream, o] = a as [string, PresenceOptions];
        return this.engine.presence.list(stream, o);
      }
      case 'presence.count': {
        const [stream, o] = a as [string, PresenceOptions];
        return this.engine.presence.count(stream, o);
      }
      case 'presence.channels': {
        const [ns, prefix, limit, o] = a as [string, string, number, PresenceOptions];
        return this.engine.presence.channels(ns, prefix, limit, o);
      }
      case 'control.serve': {
        const node = a as string;
        port.node = node;
        this.servers.set(node, port);
        return null;
      }
      case 'control.request': {
        const [node, message, timeoutMs] = a as [string, string, number];
        return this.relay(node, message, timeoutMs);
      }
      case 'nodes.report': {
        const [node, report, ttlMs] = a as [string, string, number];
        this.figures.set(node, { until: Date.now() + ttlMs, report });
        return null;
      }
      case 'nodes.list': {
        const now = Date.now();
        const out: Array<[string, string]> = [];
        for (const [node, f] of this.figures) {
          if (f.until >= now) out.push([node, f.report]);
          else this.figures.delete(node);
        }
        return out;
      }
      case 'metrics':
        return this.opts.metrics();
      default: {
        const never: never = op;
        throw new HeraldError('HERALD_ERR_INTERNAL', `unknown operation ${String(never)}`);
      }
    }
  }

  private async subscribe(port: WorkerPort, stream: string): Promise<void> {
    let ports = this.subscribers.get(stream);
    if (ports === undefined) {
      this.subscribers.set(stream, (ports = new Set()));
      await this.engine.subscribe(stream);
    }
    ports.add(port);
    port.streams.add(stream);
  }

  private unsubscribe(port: WorkerPort, stream: string): void {
    port.streams.delete(stream);
    const ports = this.subscribers.get(stream);
    if (ports === undefined || !ports.delete(port) || ports.size > 0) return;
    this.subscribers.delete(stream);
    this.opts.engine?.unsubscribe(stream).catch(() => undefined); // the memory engine never rejects
  }

  private relay(node: string, message: string, timeoutMs: number): Promise<string> {
    const target = this.servers.get(node);
    if (target === undefined) return Promise.reject(unreachable(node, 'no worker serves it'));
    const id = ++this.seq;
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.relays.delete(id);
        reject(unreachable(node, `it did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.relays.set(id, { target, resolve, reject, timer });
      target.push({ k: 'ctl', id, m: message });
    });
  }
}

function unreachable(node: string, why: string): HeraldError {
  return new HeraldError('HERALD_ERR_NODE_UNREACHABLE', `the session's node ${node} is unreachable: ${why}`);
}
