/**
 * What the supervisor and its workers (`herald serve --workers N`, docs/scaling.md) say to each other
 * over the IPC channel of node:cluster. Engine traffic is batched: one `process.send` carries an
 * array of the messages made in one tick, so a publication fanned out to many connections costs a
 * worker one message, and a burst of publishes one send each way. Lifecycle messages (the config,
 * listening, shutdown) go alone, as plain objects.
 */
import type { ErrorBody } from '@herald/protocol';
import type { Publication } from '../../core/engine.js';
import type { PresenceEvent } from '../../core/presence.js';

/** The engine operations a worker asks of the supervisor (see `ClusterEngine`). */
export type ClusterOp =
  | 'publish'
  | 'history'
  | 'subscribe'
  | 'unsubscribe'
  | 'presence.join'
  | 'presence.leave'
  | 'presence.list'
  | 'presence.count'
  | 'presence.channels'
  | 'control.serve'
  | 'control.request'
  | 'nodes.report'
  | 'nodes.list'
  | 'metrics';

/** Worker → supervisor, in a batch. */
export type WorkerMessage =
  /** An operation; answered by a `res` with the same id. */
  | { readonly k: 'req'; readonly id: number; readonly op: ClusterOp; readonly a: unknown }
  /** The answer to a `ctl` (a forwarded control request) this worker served. */
  | { readonly k: 'ctl-res'; readonly id: number; readonly ok: boolean; readonly body: string }
  /** This worker's metrics (prom-client JSON) for a `metrics` collection. */
  | { readonly k: 'metrics-res'; readonly id: number; readonly json: unknown };

/** Supervisor → worker, in a batch. */
export type SupervisorMessage =
  | { readonly k: 'res'; readonly id: number; readonly v?: unknown; readonly e?: ErrorBody }
  /** A publication of a stream this worker subscribed to; per stream in offset order. */
  | { readonly k: 'pub'; readonly p: Publication }
  | { readonly k: 'presence'; readonly e: PresenceEvent }
  /** A control request for the node this worker serves. */
  | { readonly k: 'ctl'; readonly id: number; readonly m: string }
  | { readonly k: 'metrics'; readonly id: number };

/** What a worker needs besides its config to run: sent once, first. */
export interface WorkerSetup {
  readonly k: 'setup';
  /** The resolved config, the same for every worker (shared secrets and generated keys included). */
  readonly config: unknown;
  /** 1..count; a restarted worker keeps its slot. */
  readonly slot: number;
  readonly count: number;
  /** The demos the supervisor runs, and the loopback port it serves them on. */
  readonly demos?: { readonly names: readonly string[]; readonly port: number };
}

/** Lifecycle: supervisor → worker. */
export type SupervisorControl = WorkerSetup | { readonly k: 'shutdown' };

/** Lifecycle: worker → supervisor. */
export type WorkerControl =
  /** The worker listens for IPC messages: the supervisor may send its setup. */
  | { readonly k: 'hello' }
  | { readonly k: 'listening'; readonly port: number; readonly address: string; readonly family: string }
  | { readonly k: 'failed'; readonly message: string };
