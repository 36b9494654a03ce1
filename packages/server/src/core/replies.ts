/**
 * Where the replies of client commands go, and how big they may get. A cheap command can ask for a
 * large reply (`history` of a stream of large publications; a `subscribe` with a backlog or a
 * recovery), so replies are the lever of an amplification attack (docs/security.md): a few bytes in, megabytes
 * buffered out. Three rules bound them:
 *
 * - A reply carries at most `limits.maxReplyBytes` of publications: `history` and a backlog are cut
 *   short (history says `truncated`), a recovery larger than that is answered `recovered: false`.
 * - Replies that carry publications are read and queued one at a time per reply target (`turn`); a
 *   WebSocket session also waits until its output is under half its bound (see `Session.turn`).
 * - A `POST /send` response (`SendResponse`) holds at most `maxReplyBytes` of replies in all (small
 *   replies always fit); once a history had to be cut, later ones carry no publications, and any
 *   other reply that does not fit is refused and answered `HERALD_ERR_REPLY_TOO_LARGE`.
 */
import { HeraldError } from '@herald/protocol';
import type { Publication } from './engine.js';

/** Where the encoded replies of a batch of commands go: a session's own queue, or one `/send` response. */
export interface ReplyOut {
  /** Takes one encoded reply (or error); false when it does not fit, and then nothing was taken. */
  put(bytes: Uint8Array): boolean;
  /** Bytes of publications the next reply may carry. */
  room(): number;
  /**
   * Waits for this target's turn to read and queue a reply that carries publications; resolves
   * with the function that ends the turn (call it once the reply is queued, or the command failed).
   */
  turn(): Promise<() => void>;
  /** A reply had to be cut to `room()`: the target may give later replies no room at all. */
  cut(): void;
}

/** A reply of at most this many bytes always fits in a `/send` response (results without publications, errors). */
export const SMALL_REPLY = 1024;

/** What a reply's frame adds around its publications (`{"id":..,"result":{stream, epoch, ...}}`), at most. */
const REPLY_ENVELOPE = 1024;

/** Bytes `p` takes in a reply's `publications` array: `{"channel":..,"offset":..,"data":..},`, rounded up. */
export function publicationBytes(p: Publication): number {
  return 64 + p.channel.length + Buffer.byteLength(p.data);
}

/** Bytes `pubs` take in a reply (see `publicationBytes`). */
export function replyBytes(pubs: readonly Publication[]): number {
  let used = 0;
  for (const p of pubs) used += publicationBytes(p);
  return used;
}

/** How many of `pubs`, from the first, fit in `maxBytes` (see `publicationBytes`). */
export function fitCount(pubs: readonly Publication[], maxBytes: number): number {
  let used = 0;
  for (let i = 0; i < pubs.length; i++) {
    used += publicationBytes(pubs[i] as Publication);
    if (used > maxBytes) return i;
  }
  return pubs.length;
}

/** The refusal of a reply that does not fit where it should go (`ReplyOut.put` returned false). */
export function replyTooLarge(id: number, size: number): HeraldError {
  return new HeraldError(
    'HERALD_ERR_REPLY_TOO_LARGE',
    `the reply to command ${id} (${size} bytes) does not fit in what is left of the response: send it again on its own`,
  );
}

const NL = Buffer.from('\n');

/**
 * The replies of one `POST /send`, one JSON object per line, at most `maxBytes` of them besides the
 * small ones (so that a command with a side effect, say `publish`, always gets its reply). Replies
 * carrying publications take their turn one after the other, so a request reads one history at a
 * time from the engine, and each is cut to what is left.
 */
export class SendResponse implements ReplyOut {
  private readonly parts: Uint8Array[] = [];
  private left: number;
  private last: Promise<void> = Promise.resolve();

  constructor(maxBytes: number) {
    this.left = maxBytes;
  }

  put(bytes: Uint8Array): boolean {
    const size = bytes.byteLength;
    if (size > SMALL_REPLY && size > this.left) return false;
    this.left -= size;
    this.parts.push(bytes, NL);
    return true;
  }

  room(): number {
    return Math.max(0, this.left - REPLY_ENVELOPE);
  }

  /** The response is full: later replies carry no publications (and cost the engine no read of them). */
  cut(): void {
    this.left = Math.min(this.left, 0);
  }

  turn(): Promise<() => void> {
    let end: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => (end = resolve));
    const prev = this.last;
    this.last = mine;
    return prev.then(() => end);
  }

  /** The response body (NDJSON). */
  body(): Buffer {
    return Buffer.concat(this.parts);
  }
}
