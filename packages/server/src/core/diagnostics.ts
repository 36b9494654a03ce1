/**
 * `node:diagnostics_channel` events for APM tools and tracers (docs/operations.md, "Diagnostics
 * channels for APM tools"). Free when nobody listens: every publisher checks `hasSubscribers` first,
 * so the hot path pays one property read and builds no message.
 */
import diagnostics_channel from 'node:diagnostics_channel';

export const PUBLISH_CHANNEL = 'herald:publish';
export const CONNECT_CHANNEL = 'herald:connect';
export const DISCONNECT_CHANNEL = 'herald:disconnect';

/** A publish call the engine accepted (on the node that made the call). */
export interface PublishDiagnostic {
  channel: string;
  offset: number;
  epoch: string;
  /** The node that made the call (`HubOptions.nodeId`). */
  node: string;
  idempotencyKey?: string;
  /** The idempotency key matched an earlier publication: nothing new was published. */
  duplicate: boolean;
}

/** A session was created (a client connected). */
export interface ConnectDiagnostic {
  client: string;
  /** `''` for an anonymous client. */
  user: string;
  transport: string;
  remoteAddress: string | undefined;
}

/** A session ended; reported once per session. */
export interface DisconnectDiagnostic {
  client: string;
  user: string;
  transport: string;
  /** The disconnect code sent to the client, or 0 when the connection just closed. */
  code: number;
  /** Why the server disconnected the client, or `'closed'` when the connection just closed. */
  reason: string;
}

export const publishChannel = diagnostics_channel.channel(PUBLISH_CHANNEL);
export const connectChannel = diagnostics_channel.channel(CONNECT_CHANNEL);
export const disconnectChannel = diagnostics_channel.channel(DISCONNECT_CHANNEL);

/** What the reports read of a session (structurally: this module imports nothing of the core). */
interface SessionLike {
  readonly id: string;
  readonly userId: string;
  readonly remoteAddress: string | undefined;
  readonly transport: { readonly name: string };
}

// The reports below are called under `if (channel.hasSubscribers)`, so no message is built otherwise.

export function reportPublish(
  channel: string,
  position: { epoch: string; offset: number },
  duplicate: boolean,
  node: string,
  idempotencyKey: string | undefined,
): void {
  const msg: PublishDiagnostic = { channel, offset: position.offset, epoch: position.epoch, node, duplicate };
  if (idempotencyKey !== undefined) msg.idempotencyKey = idempotencyKey;
  publishChannel.publish(msg);
}

export function reportConnect(s: SessionLike): void {
  const msg: ConnectDiagnostic = {
    client: s.id,
    user: s.userId,
    transport: s.transport.name,
    remoteAddress: s.remoteAddress,
  };
  connectChannel.publish(msg);
}

export function reportDisconnect(s: SessionLike, code: number, reason: string): void {
  const msg: DisconnectDiagnostic = { client: s.id, user: s.userId, transport: s.transport.name, code, reason };
  disconnectChannel.publish(msg);
}
