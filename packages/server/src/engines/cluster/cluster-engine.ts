/**
 * The memory engine seen from a worker of `herald serve --workers N` (docs/scaling.md): the streams,
 * offsets, history, idempotency keys and presence live in the supervisor's one `MemoryEngine`
 * (engine-host.ts), so every worker reads one history and a worker that crashes takes none of it
 * along (no epoch changes). This engine forwards each call over IPC; the supervisor hands each worker
 * the publications of the streams it subscribed to, and the worker fans them out to its own
 * connections, as one process does. It keeps the guarantees of core/engine.ts because the
 * supervisor runs every call in the order it arrives and answers `subscribe` only after it
 * registered the worker for the stream.
 *
 * Between workers, `control` carries forwarded `POST /send` requests and admin queries (each worker
 * is a node with its own id) and `nodes` their figures for the admin page.
 */
import type {
  Engine,
  EngineControl,
  EngineNodes,
  HistoryOutcome,
  HistoryRequest,
  PublicationSink,
  PublishOutcome,
  PublishRequest,
} from '../../core/engine.js';
import type {
  EnginePresence,
  PresenceCounts,
  PresenceEntry,
  PresenceEvent,
  PresenceJoin,
  PresenceOptions,
} from '../../core/presence.js';
import type { WorkerLink } from './worker-link.js';

export interface ClusterEngineOptions {
  readonly link: WorkerLink;
}

export class ClusterEngine implements Engine {
  readonly name = 'memory';
  readonly control: EngineControl;
  readonly presence: EnginePresence;
  readonly nodes: EngineNodes;
  private readonly link: WorkerLink;
  private started = false;

  constructor(opts: ClusterEngineOptions) {
    const link = (this.link = opts.link);
    this.control = {
      serve: async (node, handler) => {
        link.handlers.control = handler;
        await link.request('control.serve', node);
      },
      request: (node, message, timeoutMs) => link.request('control.request', [node, message, timeoutMs]),
    };
    this.presence = new ClusterPresence(link);
    this.nodes = {
      report: (node, report, ttlMs) => link.request('nodes.report', [node, report, ttlMs]),
      list: async () => new Map(await link.request<Array<[string, string]>>('nodes.list', null)),
    };
  }

  start(sink: PublicationSink): Promise<void> {
    this.link.handlers.publication = (pub) => sink.onPublication(pub);
    this.started = true;
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.started = false;
    this.link.handlers.publication = undefined;
    return Promise.resolve();
  }

  ready(): boolean {
    return this.started && this.link.connected;
  }

  publish(req: PublishRequest): Promise<PublishOutcome> {
    return this.link.request('publish', req);
  }

  history(req: HistoryRequest): Promise<HistoryOutcome> {
    return this.link.request('history', req);
  }

  subscribe(stream: string): Promise<void> {
    return this.link.request('subscribe', stream);
  }

  unsubscribe(stream: string): Promise<void> {
    return this.link.request('unsubscribe', stream);
  }
}

/** Presence in the supervisor's `MemoryPresence`: one list per channel across every worker. */
class ClusterPresence implements EnginePresence {
  constructor(private readonly link: WorkerLink) {}

  onEvent(handler: (event: PresenceEvent) => void): void {
    this.link.handlers.presence = handler;
  }

  join(stream: string, entries: readonly PresenceJoin[], opts: PresenceOptions & { max: number }): Promise<void> {
    return this.link.request('presence.join', [stream, entries, opts]);
  }

  leave(stream: string, client: string, opts: PresenceOptions): Promise<void> {
    return this.link.request('presence.leave', [stream, client, opts]);
  }

  list(stream: string, opts: PresenceOptions): Promise<PresenceEntry[]> {
    return this.link.request('presence.list', [stream, opts]);
  }

  count(stream: string, opts: PresenceOptions): Promise<PresenceCounts> {
    return this.link.request('presence.count', [stream, opts]);
  }

  channels(
    namespace: string,
    prefix: string,
    limit: number,
    opts: PresenceOptions,
  ): Promise<Array<{ readonly stream: string } & PresenceCounts>> {
    return this.link.request('presence.channels', [namespace, prefix, limit, opts]);
  }
}
