/**
 * Commands for a session held by another node. An SSE or HTTP-stream session lives on the node
 * that streams its response; a `POST /send` for it may reach any node behind a load balancer. That
 * node forwards the body through the engine's control channel (`Engine.control`) to the node named
 * in the client id, which runs the commands on the live session, as if the request had come to it
 * (so `subscribe` adds a stream to the open response), and answers with the replies. This is
 * Centrifugo's HTTP emulation without sticky sessions.
 *
 * Client ids tell their node: `<nodeId>-<seq>` for a session held by that node (WebSocket, SSE,
 * HTTP stream), `<nodeId>~<seq>` for a long-poll client, which no node holds (its `/send` runs on
 * whichever node gets it).
 *
 * Only the signed session id is checked by the forwarding node; the node holding the session
 * trusts its engine's control channel, like the rest of what the engine tells it.
 *
 * Answers are bounded (docs/security.md: a 13 KB body of `history` commands once made a 587 MB answer, which
 * Redis would not carry as one pub/sub message and dropped the node's subscriber link instead): the
 * node holding the session builds the replies within `limits.maxReplyBytes`, as for a local
 * `/send`, and never publishes an answer larger than `maxForwardBytes` (what those replies can take
 * once JSON-escaped).
 */
import { HeraldError, isErrorCode, splitFrames, type ErrorBody } from '@herald/protocol';
import { jsonEncoder } from './encoder.js';
import type { Engine } from './engine.js';
import { toErrorBody } from './errors.js';
import type { Logger } from './logger.js';
import { noMetrics, type Counter, type Metrics } from './metrics.js';
import type { HubLimits } from './policy.js';
import { SMALL_REPLY, SendResponse } from './replies.js';
import type { Session } from './session.js';

/**
 * What node control needs of the node it serves (the `Hub` implements it). It depends on this, not on
 * the hub, so the hub can own a `NodeControl`.
 */
export interface NodeControlHost {
  /** Its `control` reaches the other nodes (absent: this node is alone). */
  readonly engine: Engine;
  readonly nodeId: string;
  readonly logger: Logger;
  readonly limits: HubLimits;
  /** The sessions this node holds, by client id. */
  readonly sessions: ReadonlyMap<string, Session>;
}

/**
 * The node holding the session of a client id made by `Hub.newClientId()`, or undefined when no
 * node holds it (a long-poll client's id).
 */
export function nodeOfClientId(clientId: string): string | undefined {
  if (clientId.includes('~')) return undefined;
  const dash = clientId.lastIndexOf('-');
  return dash > 0 ? clientId.slice(0, dash) : undefined;
}

/** Whether the session takes `POST /send` commands itself (a streaming response it writes to). */
export function takesSendCommands(session: Session): boolean {
  return session.transport.traits.sendCommands;
}

/**
 * Runs the commands of a `/send` body (`\n`-separated JSON) on a session; resolves with their
 * replies, one JSON object per line, in the order they completed, at most `limits.maxReplyBytes` of
 * them besides small ones (see `SendResponse`). Rejects with HERALD_ERR_TOO_MANY_COMMANDS, before
 * running any, when the body holds more commands than one connection may have on their way.
 */
export async function runSendCommands(session: Session, body: string): Promise<Uint8Array> {
  const limits = session.host.limits;
  const most = limits.maxCommandsInFlight + limits.maxCommandsWaiting;
  const count = splitFrames(body).length;
  if (count > most) {
    throw new HeraldError(
      'HERALD_ERR_TOO_MANY_COMMANDS',
      `the body holds ${count} commands; at most ${most} (limits.maxCommandsInFlight + limits.maxCommandsWaiting)`,
    );
  }
  const response = new SendResponse(limits.maxReplyBytes);
  await session.dispatch(body, response, jsonEncoder);
  return response.body();
}

/**
 * The largest answer a node publishes for a forwarded `/send`: its replies (see `runSendCommands`)
 * JSON-escaped, which at most doubles them, and the envelope.
 */
export function maxForwardBytes(host: { readonly limits: HubLimits }): number {
  const limits = host.limits;
  return 2 * (limits.maxReplyBytes + (limits.maxCommandsInFlight + limits.maxCommandsWaiting) * SMALL_REPLY) + 1024;
}

/** What one node asks another: run `/send` commands for a client. */
interface SendRequest {
  readonly op: 'send';
  readonly client: string;
  readonly body: string;
}

/** The answer: the NDJSON replies, or why the commands did not run. */
type SendAnswer = { readonly replies: string } | { readonly error: ErrorBody };

/** A request of another kind (the admin page's queries): its op and arguments. */
interface OtherRequest {
  readonly op: string;
  readonly args?: unknown;
}

/** Serves one kind of request from other nodes (see `NodeControl.handle`). */
export type ControlHandler = (args: unknown) => Promise<unknown>;

export class NodeControl {
  /** Handlers of the other kinds of requests, by op. */
  private readonly handlers = new Map<string, ControlHandler>();
  /** `/send` requests this node forwarded to the node holding their session. */
  private readonly forwarded: Counter;
  /** Forwarded `/send` requests this node ran for other nodes. */
  private readonly served: Counter;

  constructor(
    private readonly host: NodeControlHost,
    metrics: Metrics = noMetrics,
  ) {
    this.forwarded = metrics.counter(
      'herald_send_forwarded_total',
      '/send requests forwarded to the node holding the session',
    );
    this.served = metrics.counter('herald_send_served_total', 'Forwarded /send requests run for other nodes');
  }

  /** Whether the engine can reach other nodes (the Redis engine can; the memory engine serves one node). */
  get available(): boolean {
    return this.host.engine.control !== undefined;
  }

  /** Takes requests from other nodes. Called by `Hub.start` once the engine has started. */
  async start(): Promise<void> {
    await this.host.engine.control?.serve(this.host.nodeId, (message) => this.serve(message));
  }

  /**
   * Runs `/send` commands on the node that holds `clientId`'s session and resolves with its replies
   * (NDJSON). Rejects with `HERALD_ERR_NODE_UNREACHABLE` when that node does not answer within
   * `timeoutMs`, and with the other node's error (`HERALD_ERR_SESSION_NOT_FOUND`: the session ended).
   */
  async send(clientId: string, body: string, timeoutMs: number): Promise<Uint8Array> {
    const control = this.host.engine.control;
    const node = nodeOfClientId(clientId);
    if (control === undefined || node === undefined) {
      throw new HeraldError('HERALD_ERR_SESSION_NOT_FOUND', 'the session is not held by a node this one can reach');
    }
    const request: SendRequest = { op: 'send', client: clientId, body };
    this.forwarded.inc();
    let text: string;
    try {
      text = await control.request(node, JSON.stringify(request), timeoutMs);
    } catch (err) {
      if (err instanceof HeraldError) this.host.logger.info({ code: err.code, node }, err.message);
      throw err;
    }
    const answer = parseAnswer(text);
    if ('error' in answer) throw new HeraldError(answer.error.code, answer.error.message);
    return Buffer.from(answer.replies, 'utf8');
  }

  /**
   * Serves requests of kind `op` from other nodes (`ask`): `handler` gets their arguments and
   * resolves with a JSON-serializable answer; a HeraldError it throws reaches the asking node.
   */
  handle(op: string, handler: ControlHandler): void {
    if (op === 'send') throw new Error('"send" is the op of forwarded /send requests');
    this.handlers.set(op, handler);
  }

  /**
   * Asks `node` (which serves `op` with `handle`) and resolves with its answer. Rejects with
   * HERALD_ERR_NODE_UNREACHABLE when it does not answer within `timeoutMs`, and with its error.
   */
  async ask(node: string, op: string, args: unknown, timeoutMs: number): Promise<unknown> {
    const control = this.host.engine.control;
    if (control === undefined) throw new HeraldError('HERALD_ERR_NODE_UNREACHABLE', 'this node is alone');
    const text = await control.request(node, JSON.stringify({ op, args }), timeoutMs);
    let a: { result?: unknown; error?: { code?: unknown; message?: unknown } } | undefined;
    try {
      a = JSON.parse(text) as typeof a;
    } catch {
      a = undefined;
    }
    const code = a?.error?.code;
    if (isErrorCode(code)) {
      throw new HeraldError(code, typeof a?.error?.message === 'string' ? a.error.message : code);
    }
    if (a === undefined || !('result' in a))
      throw new HeraldError('HERALD_ERR_INTERNAL', `unreadable answer from ${node}`);
    return a.result;
  }

  /** A request of another kind than `send`, or undefined when it is a `send`. */
  private async other(message: string): Promise<string | undefined> {
    let r: OtherRequest | undefined;
    try {
      r = JSON.parse(message) as OtherRequest;
    } catch {
      return undefined;
    }
    if (typeof r !== 'object' || r === null || typeof r.op !== 'string' || r.op === 'send') return undefined;
    const handler = this.handlers.get(r.op);
    try {
      if (handler === undefined)
        throw new HeraldError('HERALD_ERR_API_NOT_FOUND', `this node does not serve "${r.op}"`);
      return this.bounded(JSON.stringify({ result: (await handler(r.args)) ?? null }));
    } catch (err) {
      return JSON.stringify({ error: toErrorBody(err, this.host.logger) });
    }
  }

  /** A request from another node. Resolves with the answer; errors are part of the answer. */
  private async serve(message: string): Promise<string> {
    const other = await this.other(message);
    if (other !== undefined) return other;
    let answer: SendAnswer;
    try {
      const request = parseRequest(message);
      const session = this.host.sessions.get(request.client);
      if (session === undefined || session.state !== 'open' || !takesSendCommands(session)) {
        throw new HeraldError('HERALD_ERR_SESSION_NOT_FOUND', 'the session is closed');
      }
      this.served.inc();
      const replies = await runSendCommands(session, request.body);
      answer = { replies: Buffer.from(replies).toString('utf8') };
    } catch (err) {
      answer = { error: toErrorBody(err, this.host.logger) };
    }
    return this.bounded(JSON.stringify(answer));
  }

  /** `text`, unless it is larger than the bound of a forwarded answer: then an error says so. */
  private bounded(text: string): string {
    const max = maxForwardBytes(this.host);
    const size = Buffer.byteLength(text);
    if (size <= max) return text;
    this.host.logger.warn({ code: 'HERALD_ERR_REPLY_TOO_LARGE', size, max }, 'forwarded answer too large: refused');
    const error: ErrorBody = {
      code: 'HERALD_ERR_REPLY_TOO_LARGE',
      message: `the replies (${size} bytes) are larger than a node forwards (${max}): send fewer commands at once`,
    };
    return JSON.stringify({ error });
  }
}

function parseRequest(message: string): SendRequest {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    value = undefined;
  }
  const r = value as Partial<SendRequest> | undefined;
  if (r?.op !== 'send' || typeof r.client !== 'string' || typeof r.body !== 'string') {
    throw new HeraldError('HERALD_ERR_PROTOCOL_MALFORMED', 'unreadable request from another node');
  }
  return { op: 'send', client: r.client, body: r.body };
}

function parseAnswer(text: string): SendAnswer {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const a = value as { replies?: unknown; error?: { code?: unknown; message?: unknown } } | undefined;
  if (typeof a?.replies === 'string') return { replies: a.replies };
  const code = a?.error?.code;
  if (isErrorCode(code)) {
    return { error: { code, message: typeof a?.error?.message === 'string' ? a.error.message : code } };
  }
  throw new HeraldError('HERALD_ERR_INTERNAL', 'unreadable answer from the node holding the session');
}
