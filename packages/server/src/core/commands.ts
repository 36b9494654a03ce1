/** Runs one decoded client command against the hub and encodes its reply. */
import { HeraldError, type Command } from '@herald/protocol';
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
        const snap = await hub.snapshot(session, cmd.channel, {
          since: cmd.since,
          backlog: cmd.backlog,
          token: cmd.token,
        });
        return enc.reply(cmd.id, snap.result, snap.publications);
      }
      const opts = { since: cmd.since, backlog: cmd.backlog, token: cmd.token };
      await hub.subscribe(session, cmd.channel, opts, (result, pubs) => {
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
      const data = await hub.authorizer.publish(session, cmd.channel, cmd.data);
      const result = await hub.publish(cmd.channel, data, { idempotencyKey: cmd.idempotencyKey });
      return enc.reply(cmd.id, result);
    }
    case 'history': {
      hub.authorizer.history(session, cmd.channel);
      const { result, publications } = await hub.history(cmd.channel, {
        since: cmd.since,
        limit: cmd.limit,
        reverse: cmd.reverse,
      });
      return enc.reply(cmd.id, result, publications);
    }
    case 'refresh': {
      const identity = await hub.authorizer.refresh(session, cmd.token);
      session.setIdentity(identity);
      return enc.reply(cmd.id, identity.expiresAt !== undefined ? { expiresAt: identity.expiresAt } : {});
    }
    case 'rpc': {
      const data = await hub.authorizer.rpc(session, cmd.method, cmd.data);
      return enc.reply(cmd.id, data === undefined ? {} : { data });
    }
    default: {
      const never: never = cmd;
      throw new HeraldError('HERALD_ERR_PROTOCOL_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(never)}`);
    }
  }
}
