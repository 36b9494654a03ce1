/**
 * Requests between nodes over Redis pub/sub: the Redis engine's `EngineControl`. Each node
 * subscribes to its own control channel, `<prefix>:node:{<nodeId>}`. A request is sent on the
 * target node's channel with an id and the sender's node id; the answer comes back on the sender's
 * channel. Pending requests wait at most their timeout.
 *
 * - Independent shards: the node id is the shard key of its channel (jump hashing, as for
 *   namespaces); PUBLISH and SUBSCRIBE on that shard's connections.
 * - Redis Cluster: sharded pub/sub (SPUBLISH, and SSUBSCRIBE on the node's existing subscriber link
 *   to the master that owns the slot). The node id is the channel's hash tag, so a request and its
 *   answer each touch one master. A plain PUBLISH would also work on a cluster, but the cluster bus
 *   copies it to every cluster node, the cost that sharded pub/sub exists to avoid (and the node's
 *   subscriber links are sharded ones already).
 *
 * PUBLISH answers with the number of receivers. 0 means that no node serves that id (it stopped,
 * and its subscriber connection went with it): the request fails at once instead of at the
 * timeout. A node that is subscribed but does not answer (hung, overloaded, half-open link) costs
 * the timeout. Either way the caller gets `HERALD_ERR_NODE_UNREACHABLE`.
 *
 * Wire format of one pub/sub message: `q\n<id>\n<from node>\n<message>` (a request) and
 * `a\n<id>\n<ok|err>\n<answer>` (its answer). Anyone who can publish on the deployment's Redis can
 * send requests; Redis access is trusted like the data it holds.
 */
import { HeraldError } from '@herald/protocol';
import type { EngineControl } from '../../core/engine.js';
import type { Logger } from '../../core/logger.js';
import type { KeySpace } from './keys.js';
import type { Topology } from './topology.js';

export interface RedisControlOptions {
  readonly topology: Topology;
  readonly keys: KeySpace;
  readonly logger: Logger;
  /** Makes request ids unique per engine instance. */
  readonly idPrefix: string;
}

export interface RedisControlStats {
  /** Requests this node sent that reached a node. */
  requests: number;
  /** Requests this node answered. */
  served: number;
  /** Requests this node sent that found no node, or got no answer in time. */
  unreachable: number;
  /** Messages on this node's control channel that could not be read. */
  badMessages: number;
}

interface Pending {
  resolve(answer: string): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** A node id becomes part of a channel name, a hash tag and a `\n`-separated message. */
const NODE_ID = /^[^\s{}]{1,64}$/;

export class RedisControl implements EngineControl {
  readonly stats: RedisControlStats = { requests: 0, served: 0, unreachable: 0, badMessages: 0 };
  private node: string | undefined;
  private channel: string | undefined;
  private handler: ((message: string) => Promise<string>) | undefined;
  private readonly pending = new Map<string, Pending>();
  private seq = 0;

  constructor(private readonly opts: RedisControlOptions) {}

  /** The control channel of the node this engine serves, once `serve` was called. */
  get servedChannel(): string | undefined {
    return this.channel;
  }

  async serve(node: string, handler: (message: string) => Promise<string>): Promise<void> {
    if (!NODE_ID.test(node)) throw new Error(`invalid node id ${JSON.stringify(node)}`);
    if (this.node !== undefined) throw new Error(`this engine already serves node ${this.node}`);
    const channel = this.opts.keys.node(node);
    // Set before subscribing: a request may arrive in the same read as the subscription's reply.
    this.node = node;
    this.channel = channel;
    this.handler = handler;
    try {
      await this.opts.topology.subscribe(node, channel);
    } catch (err) {
      this.node = this.channel = this.handler = undefined;
      throw err;
    }
  }

  async request(node: string, message: string, timeoutMs: number): Promise<string> {
    const from = this.node;
    if (from === undefined) throw new Error('the engine serves no node yet: serve() must come before request()');
    if (!NODE_ID.test(node)) throw unreachable(node, 'it is not a node id');
    const id = `${this.opts.idPrefix}.${(++this.seq).toString(36)}`;
    const answer = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.stats.unreachable += 1;
        reject(unreachable(node, `it did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    // The timeout may fire while the request is being sent; the caller awaits `answer` after that.
    answer.catch(() => undefined);
    let receivers: number;
    try {
      receivers = await this.opts.topology.publish(node, this.opts.keys.node(node), `q\n${id}\n${from}\n${message}`);
    } catch (err) {
      this.drop(id);
      this.opts.logger.warn({ err, node }, 'control request could not be sent');
      throw new HeraldError(
        'HERALD_ERR_ENGINE_UNAVAILABLE',
        `cannot reach Redis to forward the request to node ${node}`,
      );
    }
    if (receivers === 0 && this.drop(id)) {
      this.stats.unreachable += 1;
      throw unreachable(node, 'no node serves it any more');
    }
    this.stats.requests += 1;
    return answer;
  }

  /** A message on this node's control channel (routed here by the engine). */
  onMessage(payload: string): void {
    const a = payload.indexOf('\n', 2);
    const b = a === -1 ? -1 : payload.indexOf('\n', a + 1);
    const kind = payload.slice(0, 2);
    if (b === -1 || (kind !== 'q\n' && kind !== 'a\n')) {
      this.stats.badMessages += 1;
      if (this.stats.badMessages === 1) this.opts.logger.warn({ channel: this.channel }, 'unreadable control message');
      return;
    }
    const id = payload.slice(2, a);
    const third = payload.slice(a + 1, b);
    const body = payload.slice(b + 1);
    if (kind === 'q\n') this.serveOne(id, third, body);
    else this.settle(id, third === 'ok', body);
  }

  /** Fails every request still waiting; takes no more requests. */
  close(): void {
    this.handler = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'this node is shutting down'));
      this.pending.delete(id);
    }
  }

  private serveOne(id: string, from: string, message: string): void {
    const handler = this.handler;
    if (handler === undefined || !NODE_ID.test(from)) return;
    this.stats.served += 1;
    handler(message).then(
      (answer) => this.answer(from, id, 'ok', answer),
      (err: unknown) => {
        this.opts.logger.error({ err, from }, 'control request failed');
        this.answer(from, id, 'err', 'the node could not run the request');
      },
    );
  }

  private answer(to: string, id: string, status: 'ok' | 'err', body: string): void {
    this.opts.topology.publish(to, this.opts.keys.node(to), `a\n${id}\n${status}\n${body}`).catch((err: unknown) => {
      // The requester times out and reports the node unreachable.
      this.opts.logger.warn({ err, to }, 'control answer could not be sent');
    });
  }

  private settle(id: string, ok: boolean, body: string): void {
    const p = this.pending.get(id);
    if (p === undefined) return; // answered after its timeout
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (ok) p.resolve(body);
    else p.reject(new HeraldError('HERALD_ERR_INTERNAL', body));
  }

  /** Forgets a pending request without settling it; false when it already settled. */
  private drop(id: string): boolean {
    const p = this.pending.get(id);
    if (p === undefined) return false;
    clearTimeout(p.timer);
    this.pending.delete(id);
    return true;
  }
}

function unreachable(node: string, why: string): HeraldError {
  return new HeraldError('HERALD_ERR_NODE_UNREACHABLE', `the session's node ${node} is unreachable: ${why}`);
}
