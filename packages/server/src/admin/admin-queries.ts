/**
 * What the admin page shows and does, across the nodes of a deployment: the figures every node
 * samples (`NodeStats`), the busiest channels, a channel's history tail and presence, the
 * connections of every node and disconnecting them, publishing. Connections live on the node that
 * holds them: this node asks the others over the engine's control channel (`NodeControl.ask`, Redis
 * only), each of which serves the same `admin.*` requests for its own sessions. With the memory
 * engine there is this node only.
 */
import { HeraldError, isValidStream, type ErrorBody, type PublishResult } from '@herald/protocol';
import type { Hub } from '../core/hub.js';
import type { Logger } from '../core/logger.js';
import { toErrorBody } from '../core/errors.js';
import { isBinary } from '../core/payload.js';
import { nodeOfClientId } from '../core/node-control.js';
import type { ChannelCount, NodeSample, NodeSeries, NodeStats } from '../core/node-stats.js';
import type { Session } from '../core/session.js';

/** How long this node waits for another node's answer. */
const ASK_TIMEOUT_MS = 2_000;
/** Most connections one listing returns. */
export const MAX_CONNECTIONS_LISTED = 500;
/** Subscriptions listed per connection (the count says how many there are). */
const SUBSCRIPTIONS_LISTED = 20;
/** Publications of the channel inspector's history tail. */
const HISTORY_TAIL = 20;
/** Presence entries the channel inspector lists. */
const PRESENCE_LISTED = 100;
/** Channels in each top list of the page. */
const TOP = 10;

/** What the admin queries need of the server (`HeraldServer` has all of it). */
export interface AdminQueryHost {
  readonly hub: Hub;
  readonly logger: Logger;
  readonly nodeStats: NodeStats | undefined;
}

/** One connection as the connection inspector lists it. */
export interface AdminConnection {
  readonly node: string;
  readonly client: string;
  /** '' for an anonymous client. */
  readonly user: string;
  readonly transport: string;
  /** Its first `SUBSCRIPTIONS_LISTED` streams. */
  readonly subscriptions: readonly string[];
  readonly subscriptionCount: number;
  /** Bytes queued for it and not yet handed to the operating system. */
  readonly queuedBytes: number;
  readonly remoteAddress: string | null;
  /** When it connected, ms since the epoch. */
  readonly connectedAt: number;
}

export interface ConnectionFilter {
  /** Exact client id. */
  readonly client?: string | undefined;
  /** Exact user id. */
  readonly user?: string | undefined;
  /** Part of the client id, the user id, the address or a subscribed stream (case-insensitive). */
  readonly q?: string | undefined;
  readonly limit: number;
}

/** A node that did not answer, and why. */
export interface NodeError {
  readonly node: string;
  readonly error: ErrorBody;
}

/** A sample as the charts need it (no channel lists). */
export type ChartSample = Omit<NodeSample, 'topBySubscribers' | 'topByRate'>;

export interface ChannelRow {
  readonly channel: string;
  /** Summed over the nodes that list it. */
  readonly subscribers: number;
  /** Publications per second: the highest any node received (every node gets every publication it has subscribers for). */
  readonly rate: number;
}

export class AdminQueries {
  constructor(private readonly host: AdminQueryHost) {}

  /** Serves the other nodes' admin requests for this node's sessions (see the class comment). */
  serveOtherNodes(): void {
    const { hub } = this.host;
    hub.control.handle('admin.connections', (args) =>
      Promise.resolve(this.localConnections(parseFilter(args as Record<string, unknown>))),
    );
    hub.control.handle('admin.disconnect', (args) => {
      const a = args as { client?: unknown; user?: unknown; reconnect?: unknown };
      return Promise.resolve(this.localDisconnect(parseTarget(a)));
    });
    hub.control.handle('admin.subscribers', (args) => {
      const channel = (args as { channel?: unknown }).channel;
      if (typeof channel !== 'string') throw new HeraldError('HERALD_ERR_API_BAD_REQUEST', 'give "channel"');
      return Promise.resolve(this.localSubscribers(channel));
    });
  }

  /** Every node's series; chart samples newer than `since` (ms) only, the latest one always. */
  nodes(since: number): Array<Omit<NodeSeries, 'samples'> & { latest: ChartSample | null; samples: ChartSample[] }> {
    const series = this.host.nodeStats?.series() ?? [];
    return series.map((s) => {
      const latest = s.samples[s.samples.length - 1];
      return {
        node: s.node,
        self: s.self,
        up: s.up,
        latest: latest === undefined ? null : chartSample(latest),
        samples: s.samples.filter((x) => x.t > since).map(chartSample),
      };
    });
  }

  /** The busiest channels of every node's latest sample, merged. */
  channels(): { bySubscribers: ChannelRow[]; byRate: ChannelRow[]; at: number | null } {
    const merged = new Map<string, { subscribers: number; rate: number }>();
    let at: number | null = null;
    for (const s of this.host.nodeStats?.series() ?? []) {
      if (!s.up) continue;
      const latest = s.samples[s.samples.length - 1];
      if (latest === undefined) continue;
      at = Math.max(at ?? 0, latest.t);
      const seen = new Map<string, ChannelCount>();
      for (const c of [...latest.topBySubscribers, ...latest.topByRate]) seen.set(c.channel, c);
      for (const c of seen.values()) {
        const m = merged.get(c.channel) ?? { subscribers: 0, rate: 0 };
        m.subscribers += c.subscribers;
        m.rate = Math.max(m.rate, c.rate);
        merged.set(c.channel, m);
      }
    }
    const rows: ChannelRow[] = [...merged].map(([channel, m]) => ({ channel, ...m }));
    const by = (key: 'subscribers' | 'rate', other: 'subscribers' | 'rate'): ChannelRow[] =>
      rows
        .filter((r) => r[key] > 0)
        .sort((a, b) => b[key] - a[key] || b[other] - a[other] || (a.channel < b.channel ? -1 : 1))
        .slice(0, TOP);
    return { bySubscribers: by('subscribers', 'rate'), byRate: by('rate', 'subscribers'), at };
  }

  /** The channel inspector: subscribers per node, the history tail, presence. */
  async channel(name: string): Promise<Record<string, unknown>> {
    if (!isValidStream(name)) {
      throw new HeraldError('HERALD_ERR_CHANNEL_INVALID', 'not a channel or stream name');
    }
    const { hub } = this.host;
    const [perNode, history, presence] = await Promise.all([
      this.everyNode(
        () => Promise.resolve(this.localSubscribers(name)),
        (node) => hub.control.ask(node, 'admin.subscribers', { channel: name }, ASK_TIMEOUT_MS) as Promise<number>,
      ),
      this.historyTail(name),
      this.presence(name),
    ]);
    const subscribers = perNode.answers.reduce((n, a) => n + a.value, 0);
    return {
      channel: name,
      subscribers,
      nodes: perNode.answers.map((a) => ({ node: a.node, subscribers: a.value })),
      nodeErrors: perNode.errors,
      history,
      presence,
    };
  }

  private async historyTail(name: string): Promise<Record<string, unknown>> {
    try {
      const { result, publications } = await this.host.hub.history(name, { limit: HISTORY_TAIL, reverse: true });
      return {
        epoch: result.epoch,
        offset: result.offset,
        publications: publications.map((p) => ({
          channel: p.channel,
          offset: p.offset,
          time: p.time,
          data: parseData(p.data),
        })),
      };
    } catch (err) {
      return { error: toErrorBody(err, this.host.logger) };
    }
  }

  private async presence(name: string): Promise<Record<string, unknown>> {
    const { hub } = this.host;
    try {
      const [list, stats] = await Promise.all([hub.presenceList(name), hub.presenceStats(name)]);
      return {
        clients: stats.clients,
        users: stats.users,
        entries: list.presence.slice(0, PRESENCE_LISTED).map((e) => ({
          client: e.client,
          user: e.user,
          ...(e.info !== undefined ? { info: e.info } : {}),
        })),
      };
    } catch (err) {
      return { error: toErrorBody(err, this.host.logger) };
    }
  }

  /** The connections of every node that match. */
  async connections(filter: ConnectionFilter): Promise<{
    connections: AdminConnection[];
    matched: number;
    nodeErrors: NodeError[];
  }> {
    const { hub } = this.host;
    // A client id names its node: only that one is asked.
    const only = filter.client !== undefined ? nodeOfClientId(filter.client) : undefined;
    const r = await this.everyNode(
      () => Promise.resolve(this.localConnections(filter)),
      (node) =>
        hub.control.ask(node, 'admin.connections', filter, ASK_TIMEOUT_MS) as Promise<{
          connections: AdminConnection[];
          matched: number;
        }>,
      only,
    );
    const all = r.answers.flatMap((a) => a.value.connections);
    all.sort((a, b) => b.connectedAt - a.connectedAt || (a.client < b.client ? -1 : 1));
    return {
      connections: all.slice(0, filter.limit),
      matched: r.answers.reduce((n, a) => n + a.value.matched, 0),
      nodeErrors: r.errors,
    };
  }

  /** Disconnects a client (on its node) or every connection of a user (on every node). */
  async disconnect(target: {
    client?: string | undefined;
    user?: string | undefined;
    reconnect: boolean;
  }): Promise<{ disconnected: number; nodeErrors: NodeError[] }> {
    const { hub } = this.host;
    const only = target.user === undefined && target.client !== undefined ? nodeOfClientId(target.client) : undefined;
    const r = await this.everyNode(
      () => Promise.resolve(this.localDisconnect(target)),
      (node) => hub.control.ask(node, 'admin.disconnect', target, ASK_TIMEOUT_MS) as Promise<number>,
      only,
    );
    return { disconnected: r.answers.reduce((n, a) => n + a.value, 0), nodeErrors: r.errors };
  }

  publish(channel: unknown, data: unknown): Promise<PublishResult> {
    return this.host.hub.publish(channel, data);
  }

  localConnections(filter: ConnectionFilter): { connections: AdminConnection[]; matched: number } {
    const { hub } = this.host;
    const q = filter.q?.toLowerCase();
    const out: AdminConnection[] = [];
    let matched = 0;
    const consider = (s: Session): void => {
      if (s.state !== 'open') return;
      if (filter.user !== undefined && s.userId !== filter.user) return;
      if (q !== undefined && q !== '' && !matches(s, q)) return;
      matched++;
      out.push(describe(hub.nodeId, s));
    };
    if (filter.client !== undefined) {
      const s = hub.sessions.get(filter.client);
      if (s !== undefined) consider(s);
    } else {
      for (const s of hub.sessions.values()) consider(s);
    }
    // The newest first: what an operator looks for is usually what just connected.
    out.sort((a, b) => b.connectedAt - a.connectedAt);
    return { connections: out.slice(0, filter.limit), matched };
  }

  localDisconnect(target: { client?: string | undefined; user?: string | undefined; reconnect: boolean }): number {
    return this.host.hub.disconnect({ client: target.client, user: target.user }, target.reconnect);
  }

  localSubscribers(channel: string): number {
    for (const c of this.host.hub.channels()) if (c.stream === channel) return c.subscribers;
    return 0;
  }

  /**
   * Runs `local` here and `remote` on every other node that is up (or on `only`, when given),
   * together; a node that fails is reported, not fatal.
   */
  private async everyNode<T>(
    local: () => Promise<T>,
    remote: (node: string) => Promise<T>,
    only?: string,
  ): Promise<{ answers: Array<{ node: string; value: T }>; errors: NodeError[] }> {
    const { hub } = this.host;
    const self = hub.nodeId;
    let nodes: string[];
    if (only !== undefined) nodes = [only];
    else {
      nodes = [self];
      if (hub.control.available) {
        // The list as the store has it now: a node started within the last interval counts too.
        await this.host.nodeStats?.refresh();
        for (const s of this.host.nodeStats?.series() ?? []) if (s.up && s.node !== self) nodes.push(s.node);
      }
    }
    const settled = await Promise.allSettled(
      nodes.map((node) => (node === self ? local() : hub.control.available ? remote(node) : Promise.reject(alone()))),
    );
    const answers: Array<{ node: string; value: T }> = [];
    const errors: NodeError[] = [];
    settled.forEach((r, i) => {
      const node = nodes[i] as string;
      if (r.status === 'fulfilled') answers.push({ node, value: r.value });
      else errors.push({ node, error: toErrorBody(r.reason, this.host.logger) });
    });
    return { answers, errors };
  }
}

function alone(): HeraldError {
  return new HeraldError('HERALD_ERR_NODE_UNREACHABLE', 'this node cannot reach other nodes (memory engine)');
}

function chartSample(s: NodeSample): ChartSample {
  return {
    t: s.t,
    connections: s.connections,
    subscriptions: s.subscriptions,
    streams: s.streams,
    published: s.published,
    delivered: s.delivered,
    bytesOut: s.bytesOut,
    rssBytes: s.rssBytes,
    heapUsedBytes: s.heapUsedBytes,
    loopLagMs: s.loopLagMs,
  };
}

function describe(node: string, s: Session): AdminConnection {
  const subscriptions: string[] = [];
  s.subscriptions.forEach((_sub, stream) => {
    if (subscriptions.length < SUBSCRIPTIONS_LISTED) subscriptions.push(stream);
  });
  return {
    node,
    client: s.id,
    user: s.userId,
    transport: s.transport.name,
    subscriptions,
    subscriptionCount: s.subscriptions.size,
    queuedBytes: s.outputBytes(),
    remoteAddress: s.remoteAddress ?? null,
    connectedAt: s.openedAt,
  };
}

function matches(s: Session, q: string): boolean {
  if (s.id.toLowerCase().includes(q) || s.userId.toLowerCase().includes(q)) return true;
  if (s.remoteAddress?.toLowerCase().includes(q) === true) return true;
  if (s.transport.name.includes(q)) return true;
  let found = false;
  s.subscriptions.forEach((_sub, stream) => {
    if (!found && stream.toLowerCase().includes(q)) found = true;
  });
  return found;
}

/** A connection filter from query parameters or another node's request; throws on a bad one. */
export function parseFilter(p: Record<string, unknown>): ConnectionFilter {
  const str = (name: string): string | undefined => {
    const v = p[name];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string' || v.length > 1000) throw bad(`"${name}" must be a string`);
    return v;
  };
  const rawLimit = p['limit'];
  const limit = rawLimit === undefined || rawLimit === null || rawLimit === '' ? 100 : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_CONNECTIONS_LISTED) {
    throw bad(`"limit" must be an integer from 1 to ${MAX_CONNECTIONS_LISTED}`);
  }
  return { client: str('client'), user: str('user'), q: str('q'), limit };
}

/** What to disconnect, from a request body; throws on a bad one. */
export function parseTarget(b: { client?: unknown; user?: unknown; reconnect?: unknown }): {
  client?: string | undefined;
  user?: string | undefined;
  reconnect: boolean;
} {
  const { client, user } = b;
  const reconnect = b.reconnect ?? false;
  if (client !== undefined && (typeof client !== 'string' || client === '')) throw bad('"client" must be a client id');
  if (user !== undefined && (typeof user !== 'string' || user === '')) {
    throw bad('"user" must be a non-empty user id (anonymous clients are disconnected by "client")');
  }
  if (client === undefined && user === undefined) throw bad('give "client" or "user"');
  if (typeof reconnect !== 'boolean') throw bad('"reconnect" must be a boolean');
  return { client, user, reconnect };
}

function bad(message: string): HeraldError {
  return new HeraldError('HERALD_ERR_API_BAD_REQUEST', message);
}

function parseData(text: string): unknown {
  // Bytes are shown as the JSON transports carry them.
  if (isBinary(text)) return { b64data: text.slice(1) };
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
