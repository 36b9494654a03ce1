/**
 * Runs one decoded client command against the hub and encodes its reply. Replies that carry
 * publications (history, a subscribe with a backlog or a recovery) are read in their reply target's
 * turn and cut to its room (see `replies.ts`).
 */
import {
  HeraldError,
  type Command,
  type HistoryResult,
  type PublishResult,
  type StreamPosition,
  type SubscribeCommand,
  type SubscribeResult,
} from '@herald/protocol';
import type { Authorizer } from './authorizer.js';
import type { FrameEncoder } from './encoder.js';
import type { Publication } from './engine.js';
import type { PresenceCounts, PresenceEntry } from './presence.js';
import { replyTooLarge, type ReplyOut } from './replies.js';
import type { Session } from './session.js';

export interface SubscribeOptions {
  readonly since?: StreamPosition | undefined;
  readonly backlog?: number | undefined;
  /** A subscription token, for namespaces that require one. */
  readonly token?: string | undefined;
  /** Bytes of publications a backlog may carry now; `limits.maxReplyBytes` when not given (see `replies.ts`). */
  readonly room?: (() => number) | undefined;
  /** Waits for the turn to read and reply with publications (`ReplyOut.turn`); none when not given. */
  readonly turn?: (() => Promise<() => void>) | undefined;
}

export interface HistoryOptions {
  readonly since?: StreamPosition | undefined;
  readonly limit?: number | undefined;
  /** Newest first. */
  readonly reverse?: boolean | undefined;
  /**
   * The newest `limit` publications (after `since`) instead of the oldest, in offset order: read
   * newest first like `reverse`, so that a reply cut to `maxBytes` keeps the newest. Not with `reverse`.
   */
  readonly latest?: boolean | undefined;
  /** Bytes of publications the result may carry; the rest is cut (`truncated`). No bound when not given. */
  readonly maxBytes?: number | undefined;
}

export type SubscribeReply = (
  result: Omit<SubscribeResult, 'publications'>,
  publications: readonly Publication[],
) => void;

/**
 * What commands need of the node that runs them (the `Hub` implements it; see there for what each
 * does). Commands depend on this, not on the hub, so the hub can import them.
 */
export interface CommandHost {
  readonly authorizer: Authorizer;
  publish(channel: unknown, data: unknown, opts?: { idempotencyKey?: string | undefined }): Promise<PublishResult>;
  history(
    stream: unknown,
    opts?: HistoryOptions,
  ): Promise<{ result: Omit<HistoryResult, 'publications'>; publications: Publication[] }>;
  subscribe(session: Session, stream: string, opts: SubscribeOptions, reply: SubscribeReply): Promise<void>;
  unsubscribe(session: Session, stream: string): void;
  presenceList(channel: unknown): Promise<{ channel: string; presence: PresenceEntry[] }>;
  presenceStats(channel: unknown): Promise<{ channel: string } & PresenceCounts>;
}

/**
 * Returns the encoded reply, or undefined when the reply was already handed to `out` (subscribe
 * replies from inside the hub, so that the reply goes out before any live publication of the new
 * subscription, and replies read in a turn). Rejects with a HeraldError for a refused command.
 */
export async function runCommand(
  hub: CommandHost,
  session: Session,
  cmd: Command,
  out: ReplyOut,
  enc: FrameEncoder,
  /** Called once a subscribe has taken effect (replied); see channel-lanes.ts. */
  effected?: () => void,
): Promise<Uint8Array | undefined> {
  switch (cmd.cmd) {
    case 'ping':
      return enc.reply(cmd.id, {});
    case 'subscribe':
      return subscribe(hub, session, cmd, out, enc, effected);
    case 'unsubscribe':
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
      const end = await out.turn();
      try {
        // The connection may have closed while the command waited for its turn.
        if (session.state !== 'open') throw new HeraldError('HERALD_ERR_SESSION_NOT_FOUND', 'the session closed');
        const opts = {
          since: cmd.since,
          limit: cmd.limit,
          reverse: cmd.reverse,
          latest: cmd.latest,
          maxBytes: out.room(),
        };
        const { result, publications } = await hub.history(cmd.channel, opts);
        putReply(out, cmd.id, enc.reply(cmd.id, result, publications));
        if (result.truncated === true) out.cut();
      } finally {
        end();
      }
      return undefined;
    }
    case 'presence': {
      hub.authorizer.presence(session, cmd.channel);
      return enc.reply(cmd.id, await hub.presenceList(cmd.channel));
    }
    case 'presenceStats': {
      hub.authorizer.presence(session, cmd.channel);
      return enc.reply(cmd.id, await hub.presenceStats(cmd.channel));
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

/** Whether a subscribe reads publications for its reply (a recovery or a backlog). */
function readsPublications(cmd: SubscribeCommand): boolean {
  return cmd.since !== undefined || (cmd.backlog ?? 0) > 0;
}

/** Hands a reply to `out`; throws HERALD_ERR_REPLY_TOO_LARGE when it does not fit there. */
function putReply(out: ReplyOut, id: number, bytes: Uint8Array): void {
  if (!out.put(bytes)) throw replyTooLarge(id, bytes.byteLength);
}

/**
 * A subscribe: the hub hands the reply over before the subscription goes live (for a detached
 * session, whose subscribe only reads where it would start, that is the whole of it).
 */
async function subscribe(
  hub: CommandHost,
  session: Session,
  cmd: SubscribeCommand,
  out: ReplyOut,
  enc: FrameEncoder,
  effected: (() => void) | undefined,
): Promise<undefined> {
  const opts = {
    since: cmd.since,
    backlog: cmd.backlog,
    token: cmd.token,
    room: () => out.room(),
    turn: readsPublications(cmd) ? () => out.turn() : undefined,
  };
  // A reply that does not fit throws inside the hub, which then undoes the subscription.
  await hub.subscribe(session, cmd.channel, opts, (result, pubs) => {
    putReply(out, cmd.id, enc.reply(cmd.id, result, pubs));
    session.transport.subscribed?.(result);
    effected?.();
  });
  return undefined;
}
