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
 * a subscription holding more than its share is dropped (the one that just got one, or else the one
 * holding the most). Held publications are kept encoded (the fan-out's shared bytes, so holding them
 * costs no copy) and written back only as far as the output has room,
 * so releasing them can never overflow the send queue: a held subscription is never disconnected.
 */
import type { SkipPush } from '@herald/protocol';
import type { FrameEncoder } from './encoder.js';
import type { Publication } from './engine.js';
import type { SlowConsumerOptions } from './policy.js';

/** The publications one subscription holds while its connection is behind. */
export abstract class Held {
  /** Offset of the last publication that went out (or was announced skipped). */
  private last: number;
  /** Offset of the newest publication held or dropped. */
  private top: number;
  private epoch: string;
  /** Bytes of the frames held. */
  bytes = 0;
  /**
   * Whether its subscription's publications come here (false once all it held went out: it waits,
   * with its memory, for the next time the connection falls behind; see `restart`).
   */
  active = true;

  constructor(
    first: Publication,
    protected readonly keep: number,
  ) {
    this.last = first.offset - 1;
    this.top = this.last;
    this.epoch = first.epoch;
  }

  /** Holds again from `first` on (it was empty: everything went out). */
  restart(first: Publication): void {
    this.last = first.offset - 1;
    this.top = this.last;
    this.epoch = first.epoch;
    this.active = true;
  }

  /**
   * Holds `pub` (the next offset of the stream) encoded as `bytes` (the fan-out's shared frame, not
   * a copy); returns how many held ones it pushed out.
   */
  add(pub: Publication, bytes: Uint8Array): number {
    this.top = pub.offset;
    this.epoch = pub.epoch;
    this.bytes += bytes.byteLength;
    return this.put(pub, bytes);
  }

  /** Whether nothing is left to write (no publication, no skip owed). */
  get empty(): boolean {
    return this.oldest() === undefined && this.top === this.last;
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
      const pub = this.oldest();
      const bytes = pub === undefined ? undefined : this.oldestBytes();
      const next = pub === undefined ? this.top + 1 : pub.offset;
      let skip: Uint8Array | undefined;
      if (next > this.last + 1) {
        const push: SkipPush = {
          push: 'skip',
          stream,
          since: { epoch: pub?.epoch ?? this.epoch, offset: this.last },
          count: next - this.last - 1,
        };
        skip = encoder.push(push);
      }
      const size = (skip?.byteLength ?? 0) + (bytes?.byteLength ?? 0);
      if (size === 0 || (written + size > room && !(force && written === 0))) return written;
      if (skip !== undefined) out(skip);
      if (bytes !== undefined) {
        out(bytes);
        this.dropOldest();
      }
      written += size;
      this.last = next - (pub === undefined ? 1 : 0);
    }
  }

  /** Holds `pub` as `bytes` (already counted in `bytes`); drops what `keep` allows no more; returns how many. */
  protected abstract put(pub: Publication, bytes: Uint8Array): number;
  /** The oldest publication held. */
  protected abstract oldest(): Publication | undefined;
  /** The frame of `oldest()`. */
  protected abstract oldestBytes(): Uint8Array | undefined;
  /**
   * Drops the oldest publication held (its offset is announced skipped on release, unless it was
   * written) and takes its frame off `bytes`; false when none is held.
   */
  abstract dropOldest(): boolean;

  static create(opts: SlowConsumerOptions, first: Publication): Held {
    return opts.policy === 'latest-only' ? new LatestPerChannel(first, opts.keep) : new Newest(first, opts.keep);
  }
}

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

/**
 * `drop-oldest`: the newest `keep` publications, in a ring of two arrays (publications, frames) that
 * grows to what the subscription holds at most and is then reused: no allocation per publication
 * held. A dashboard at its bound holds one on every publication of every channel, for about as long
 * as a scavenge takes to come round, and objects (or array stores, grown again after each trim) that
 * live that long are copied by the scavenges and promoted, and the old generation filled faster
 * (more mark-compacts, each one a pause for every subscriber).
 */
class Newest extends Held {
  private pubs: (Publication | undefined)[] = new Array<Publication | undefined>(4).fill(undefined);
  private frames: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(4).fill(undefined);
  private head = 0;
  private count = 0;

  protected put(pub: Publication, bytes: Uint8Array): number {
    let dropped = 0;
    if (this.count >= this.keep && this.dropOldest()) dropped = 1;
    if (this.count === this.pubs.length) this.grow();
    const at = (this.head + this.count) & (this.pubs.length - 1);
    this.pubs[at] = pub;
    this.frames[at] = bytes;
    this.count++;
    return dropped;
  }

  /** Twice the room, the held ones first (the capacity stays a power of two). */
  private grow(): void {
    const n = this.pubs.length;
    const pubs = new Array<Publication | undefined>(n * 2).fill(undefined);
    const frames = new Array<Uint8Array | undefined>(n * 2).fill(undefined);
    for (let i = 0; i < this.count; i++) {
      pubs[i] = this.pubs[(this.head + i) & (n - 1)];
      frames[i] = this.frames[(this.head + i) & (n - 1)];
    }
    this.pubs = pubs;
    this.frames = frames;
    this.head = 0;
  }

  protected oldest(): Publication | undefined {
    return this.count === 0 ? undefined : this.pubs[this.head];
  }

  protected oldestBytes(): Uint8Array | undefined {
    return this.count === 0 ? undefined : this.frames[this.head];
  }

  dropOldest(): boolean {
    if (this.count === 0) return false;
    const h = this.head;
    this.bytes -= (this.frames[h] as Uint8Array).byteLength;
    this.pubs[h] = undefined;
    this.frames[h] = undefined;
    this.head = (h + 1) & (this.pubs.length - 1);
    this.count--;
    return true;
  }
}

/** One channel's place in `LatestPerChannel`: reused for each publication of the channel. */
interface Slot {
  readonly channel: string;
  pub: Publication | undefined;
  bytes: Uint8Array | undefined;
  prev: Slot | undefined;
  next: Slot | undefined;
}

/**
 * `latest-only`: the newest publication of each channel (a subtree stream has several), of `keep`
 * channels at most (the one whose publication is oldest goes first). Each channel has a slot, kept
 * in a list in the order of its publication's offset: a new publication of a channel replaces the
 * slot's and moves it to the end. No allocation per publication (a slot per channel, reused; at most
 * about `keep` slots are kept), for the same reason as `Newest`.
 */
class LatestPerChannel extends Held {
  private readonly slots = new Map<string, Slot>();
  private head: Slot | undefined;
  private tail: Slot | undefined;
  /** Slots holding a publication. */
  private live = 0;

  protected put(pub: Publication, bytes: Uint8Array): number {
    let dropped = 0;
    let slot = this.slots.get(pub.channel);
    if (slot === undefined) {
      slot = { channel: pub.channel, pub: undefined, bytes: undefined, prev: undefined, next: undefined };
      this.slots.set(pub.channel, slot);
    }
    if (slot.bytes !== undefined) {
      this.bytes -= slot.bytes.byteLength;
      this.unlink(slot);
      dropped++;
    } else this.live++;
    slot.pub = pub;
    slot.bytes = bytes;
    slot.prev = this.tail;
    if (this.tail === undefined) this.head = slot;
    else this.tail.next = slot;
    this.tail = slot;
    if (this.live > this.keep && this.dropOldest()) dropped++;
    return dropped;
  }

  private unlink(slot: Slot): void {
    if (slot.prev === undefined) this.head = slot.next;
    else slot.prev.next = slot.next;
    if (slot.next === undefined) this.tail = slot.prev;
    else slot.next.prev = slot.prev;
    slot.prev = slot.next = undefined;
  }

  protected oldest(): Publication | undefined {
    return this.head?.pub;
  }

  protected oldestBytes(): Uint8Array | undefined {
    return this.head?.bytes;
  }

  dropOldest(): boolean {
    const slot = this.head;
    if (slot === undefined) return false;
    this.bytes -= (slot.bytes as Uint8Array).byteLength;
    this.unlink(slot);
    slot.pub = slot.bytes = undefined;
    this.live--;
    // Slots of channels that stopped publishing are not kept past `keep` of them.
    if (this.slots.size > this.keep) this.slots.delete(slot.channel);
    return true;
  }
}
