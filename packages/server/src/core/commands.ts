/** Runs one decoded client command against the hub and encodes its reply. */
import { HeraldError, namespaceOf, type Command } from '@herald/protocol';
import type { FrameEncoder } from './encoder.js';
import type { Hub } from './hub.js';
import type { Session } from './session.js';

/** Where a command's encoded reply goes: the session's own queue (WebSocket) or a `/send` response. */
export type ReplySink = (bytes: Uint8Array) => void;

/**
 * Returns the encoded reply, or undefined when the reply was already handed to `sink` (subscribe
 * replies from inside the hub, so that the reply goes out before any live publication of the new
 * subscription). Rejects with a HeraldError for a refused command.
 */
export async function runCommand(
  hub: Hub,
  session: Session,
  cmd: Command,
  sink: ReplySink,
  enc: FrameEncoder,
): Promise<Uint8Array | undefined> {
  switch (cmd.cmd) {
    case 'ping':
      return enc.reply(cmd.id, {});
    case 'subscribe': {
      if (session.detached) {
        const snap = await hub.snapshot(session, cmd.channel, { since: cmd.since, backlog: cmd.backlog });
        return enc.reply(cmd.id, snap.result, snap.publications);
      }
      await hub.subscribe(session, cmd.channel, { since: cmd.since, backlog: cmd.backlog }, (result, pubs) => {
        sink(enc.reply(cmd.id, result, pubs));
        session.transport.subscribed?.(result);
      });
      return undefined;
    }
    case 'unsubscribe':
      if (session.detached) return enc.reply(cmd.id, {});
      hub.unsubscribe(session, cmd.channel);
      session.transport.unsubscribed?.(cmd.channel);
      return enc.reply(cmd.id, {});
    case 'publish': {
      const policy = hub.policy(namespaceOf(cmd.channel));
      if (!policy.clientPublish) {
        throw new HeraldError(
          'HERALD_ERR_PERMISSION_DENIED',
          `clients may not publish to namespace "${namespaceOf(cmd.channel)}"`,
        );
      }
      const result = await hub.publish(cmd.channel, cmd.data, { idempotencyKey: cmd.idempotencyKey });
      return enc.reply(cmd.id, result);
    }
    case 'history': {
      const policy = hub.policy(namespaceOf(cmd.channel));
      if (!policy.clientHistory) {
        throw new HeraldError(
          'HERALD_ERR_PERMISSION_DENIED',
          `clients may not read history of namespace "${namespaceOf(cmd.channel)}"`,
        );
      }
      const { result, publications } = await hub.history(cmd.channel, {
        since: cmd.since,
        limit: cmd.limit,
        reverse: cmd.reverse,
      });
      return enc.reply(cmd.id, result, publications);
    }
    default: {
      const never: never = cmd;
      throw new HeraldError('HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(never)}`);
    }
  }
}
