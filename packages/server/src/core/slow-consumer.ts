/**
 * What a namespace does with a subscriber that reads too slowly (`slowConsumer`, docs/reliability.md).
 * `disconnect` is the session's bounded queue as it always was: past `maxQueueBytes` the client is
 * closed with SLOW and recovers from its cursor. With `drop-oldest` and `latest-only`, once the
 * connection's output is over half its bound, a subscription's publications are no longer queued
 * but held here, at most `keep` of them: the newest ones (`drop-oldest`), or the newest of each
 * channel (`latest-only`). When the output has drained they are written in offset order, and every
 * run of offsets dropped in between is announced first by a `skip` push, so the client's cursor
 * moves on knowingly and it can read what it missed from history.
 *
 * What one connection holds is bounded in bytes by the session, across all its subscriptions (half
 * its `maxQueueBytes`; `keep` bounds the count per subscription): past it the oldest publication of
 * the subscription holding the most is dropped. Held publications are kept encoded (the fan-out's
 * shared bytes, so holding them costs no copy) and written back only as far as the output has room,
 * so releasing them can never overflow the send queue: a held subscription is never disconnected.
 */
import type { SkipPush } from '@herald/protocol';
import type { FrameEncoder } from './encoder.js';
import type { Publication } from './engine.js';
import type { SlowConsumerOptions } from './policy.js';

interface Entry {
  readonly pub: Publication;
  /** Its encoded frame: the fan-out's shared bytes (see EncodeCache), not a copy. */
  readonly bytes: Uint8Array;
}

/** The publications one subscription holds while its connection is behind. */
export abstract class Held {
  /** Offset of the last publication that went out (or was announced skipped). */
  private last: number;
  /** Offset of the newest publication held or dropped. */
  private top: number;
  private epoch: string;
  /** Bytes of the frames held. */
  bytes = 0;

  constructor(
    first: Publication,
    protected readonly keep: number,
  ) {
    this.last = first.offset - 1;
    this.top = this.last;
    this.epoch = first.epoch;
  }

  /** Holds `pub` (the next offset of the stream) encoded as `bytes`; returns how many held ones it pushed out. */
  add(pub: Publication, bytes: Uint8Array): number {
    this.top = pub.offset;
    this.epoch = pub.epoch;
    this.bytes += bytes.byteLength;
    const out = this.put({ pub, bytes });
    for (const e of out) this.bytes -= e.bytes.byteLength;
    return out.length;
  }

  /** Drops the oldest publication held (its offset is announced skipped on release); false when none is. */
  dropOldest(): boolean {
    const e = this.shift();
    if (e === undefined) return false;
    this.bytes -= e.bytes.byteLength;
    return true;
  }

  /** Whether nothing is left to write (no publication, no skip owed). */
  get empty(): boolean {
    return this.peek() === undefined && this.top === this.last;
  }

  /**
   * Writes what is held, in offset order, as long as it fits in `room` bytes, each run of offsets
   * that was dropped announced by a `skip` push before what follows it (or at the end, when the
   * newest ones were dropped). What does not fit stays held. Returns the bytes written.
   */
  release(
    stream: string,
    encoder: FrameEncoder,
    room: number,
    out: (bytes: Uint8Array) => void,
    /** The first frame goes even when bigger than `room` (an empty output: it would never get more). */
    force = false,
  ): number {
    let written = 0;
    for (;;) {
      const e = this.peek();
      const next = e === undefined ? this.top + 1 : e.pub.offset;
      let skip: Uint8Array | undefined;
      if (next > this.last + 1) {
        const push: SkipPush = {
          push: 'skip',
          stream,
          since: { epoch: e?.pub.epoch ?? this.epoch, offset: this.last },
          count: next - this.last - 1,
        };
        skip = encoder.push(push);
      }
      const size = (skip?.byteLength ?? 0) + (e?.bytes.byteLength ?? 0);
      if (size === 0 || (written + size > room && !(force && written === 0))) return written;
      if (skip !== undefined) out(skip);
      if (e !== undefined) {
        out(e.bytes);
        this.shift();
        this.bytes -= e.bytes.byteLength;
      }
      written += size;
      this.last = next - (e === undefined ? 1 : 0);
    }
  }

  /** Adds an entry; returns the ones it pushed out. */
  protected abstract put(e: Entry): readonly Entry[];
  /** The oldest entry. */
  protected abstract peek(): Entry | undefined;
  /** Removes and returns the oldest entry. */
  protected abstract shift(): Entry | undefined;

  static create(opts: SlowConsumerOptions, first: Publication): Held {
    return opts.policy === 'latest-only' ? new LatestPerChannel(first, opts.keep) : new Newest(first, opts.keep);
  }
}

const NONE: readonly Entry[] = [];

/**
 * Releases wait their turn: the connections whose output drained are served one after the other in
 * `setImmediate`, for at most RELEASE_BUDGET_MS per event-loop turn, the rest in the next turn. Slow
 * readers' sockets tend to drain together (their clients read on the same timer, or the network
 * frees them at once), and releasing 64 KiB to each of 25 of them in one turn held every fast
 * subscriber's delivery for as long (the fan-out runs on the same thread): between two slices,
 * the event loop takes new publications and writes them.
 */
const RELEASE_BUDGET_MS = 1;
const releases: (() => void)[] = [];
let releasing = false;

/** Runs `release` in a later turn, after the releases queued before it (see RELEASE_BUDGET_MS). */
export function queueRelease(release: () => void): void {
  releases.push(release);
  if (!releasing) {
    releasing = true;
    setImmediate(runReleases);
  }
}

function runReleases(): void {
  const end = performance.now() + RELEASE_BUDGET_MS;
  let i = 0;
  try {
    while (i < releases.length) {
      (releases[i++] as () => void)();
      if (performance.now() >= end) break;
    }
  } finally {
    releases.splice(0, i);
    if (releases.length > 0) setImmediate(runReleases);
    else releasing = false;
  }
}

/** `drop-oldest`: the newest `keep` publications, a queue (an array and the index of its head). */
class Newest extends Held {
  private list: Entry[] = [];
  private head = 0;

  protected put(e: Entry): readonly Entry[] {
    this.list.push(e);
    if (this.list.length - this.head <= this.keep) return NONE;
    return [this.shift() as Entry];
  }

  protected peek(): Entry | undefined {
    return this.list[this.head];
  }

  protected shift(): Entry | undefined {
    const e = this.list[this.head];
    if (e === undefined) return undefined;
    this.head++;
    // Compacted now and then, so the array does not grow with what went out.
    if (this.head === this.list.length) {
      this.list = [];
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.list.length) {
      this.list = this.list.slice(this.head);
      this.head = 0;
    }
    return e;
  }
}

/**
 * `latest-only`: the newest publication of each channel (a subtree stream has several), of `keep`
 * channels at most (the one whose publication is oldest goes first). A Map keeps insertion order, and
 * a channel's entry is re-inserted with each publication, so it iterates in offset order.
 */
class LatestPerChannel extends Held {
  private readonly byChannel = new Map<string, Entry>();

  protected put(e: Entry): readonly Entry[] {
    const m = this.byChannel;
    const out: Entry[] = [];
    const prev = m.get(e.pub.channel);
    if (prev !== undefined) {
      m.delete(e.pub.channel);
      out.push(prev);
    }
    m.set(e.pub.channel, e);
    if (m.size > this.keep) out.push(this.shift() as Entry);
    return out;
  }

  protected peek(): Entry | undefined {
    return this.byChannel.values().next().value;
  }

  protected shift(): Entry | undefined {
    const e = this.peek();
    if (e !== undefined) this.byChannel.delete(e.pub.channel);
    return e;
  }
}
