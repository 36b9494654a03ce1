/**
 * Requests between nodes over NATS request/reply: the NATS engine's `EngineControl`. Each node
 * subscribes to its own subject, `<prefix>.n.<node id>`; a request is a NATS request to that
 * subject, and its answer comes back on the requester's inbox. NATS itself tells when nobody
 * serves a subject (no responders): the request fails at once instead of at the timeout.
 *
 * An answer is `ok\n<answer>` or `err\n<message>`. Anyone who may publish on the deployment's NATS
 * subjects can send requests; NATS access is trusted like the data it holds.
 */
import { HeraldError } from '@herald/protocol';
import { errors, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { EngineControl } from '../../core/engine.js';
import type { Logger } from '../../core/logger.js';

export interface NatsControlStats {
  /** Requests this node sent that reached a node. */
  requests: number;
  /** Requests this node answered. */
  served: number;
  /** Requests this node sent that found no node, or got no answer in time. */
  unreachable: number;
}

/** A node id becomes one token of a NATS subject. */
const NODE_ID = /^[^\s.*>]{1,64}$/;

export class NatsControl implements EngineControl {
  readonly stats: NatsControlStats = { requests: 0, served: 0, unreachable: 0 };
  private node: string | undefined;
  private sub: Subscription | undefined;

  constructor(
    private readonly connection: () => NatsConnection,
    private readonly subjectPrefix: string,
    private readonly logger: Logger,
  ) {}

  async serve(node: string, handler: (message: string) => Promise<string>): Promise<void> {
    if (!NODE_ID.test(node)) throw new Error(`invalid node id ${JSON.stringify(node)}`);
    if (this.node !== undefined) throw new Error(`this engine already serves node ${this.node}`);
    const nc = this.connection();
    this.node = node;
    this.sub = nc.subscribe(`${this.subjectPrefix}${node}`, {
      callback: (err, msg) => {
        if (err === null) this.serveOne(handler, msg);
      },
    });
    // The server has the subscription once a round trip after it came back.
    await nc.flush();
  }

  async request(node: string, message: string, timeoutMs: number): Promise<string> {
    if (this.node === undefined) throw new Error('the engine serves no node yet: serve() must come before request()');
    if (!NODE_ID.test(node)) throw unreachable(node, 'it is not a node id');
    let reply: Msg;
    try {
      reply = await this.connection().request(`${this.subjectPrefix}${node}`, message, { timeout: timeoutMs });
    } catch (err) {
      if (err instanceof errors.NoRespondersError || isNoResponders(err)) {
        this.stats.unreachable += 1;
        throw unreachable(node, 'no node serves it any more');
      }
      if (err instanceof errors.TimeoutError) {
        this.stats.unreachable += 1;
        throw unreachable(node, `it did not answer within ${timeoutMs} ms`);
      }
      this.logger.warn({ err, node }, 'control request could not be sent');
      throw new HeraldError(
        'HERALD_ERR_ENGINE_UNAVAILABLE',
        `cannot reach NATS to forward the request to node ${node}`,
      );
    }
    this.stats.requests += 1;
    const text = reply.string();
    if (text.startsWith('ok\n')) return text.slice(3);
    throw new HeraldError('HERALD_ERR_INTERNAL', text.startsWith('err\n') ? text.slice(4) : 'unreadable answer');
  }

  /** Takes no more requests. */
  close(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  private serveOne(handler: (message: string) => Promise<string>, msg: Msg): void {
    this.stats.served += 1;
    handler(msg.string()).then(
      (answer) => this.answer(msg, `ok\n${answer}`),
      (err: unknown) => {
        this.logger.error({ err }, 'control request failed');
        this.answer(msg, 'err\nthe node could not run the request');
      },
    );
  }

  private answer(msg: Msg, body: string): void {
    try {
      msg.respond(body);
    } catch (err) {
      // The requester times out and reports the node unreachable.
      this.logger.warn({ err }, 'control answer could not be sent');
    }
  }
}

function isNoResponders(err: unknown): boolean {
  return err instanceof errors.RequestError && err.isNoResponders();
}

function unreachable(node: string, why: string): HeraldError {
  return new HeraldError('HERALD_ERR_NODE_UNREACHABLE', `the session's node ${node} is unreachable: ${why}`);
}
