/**
 * What a namespace does with a subscriber that reads too slowly (`slowConsumer`, docs/reliability.md).
 * `disconnect` is the session's bounded queue as it always was: past `maxQueueBytes` the client is
 * closed with SLOW and recovers from its cursor. With `drop-oldest` and `latest-only`, once the
 * connection's output is over half its bound, a subscription's publications are no longer queued
 * but held here, at most `keep` of them: the newest ones (`drop-oldest`), or the newest of each
 * channel (`latest-only`). When the output has drained they are written in offset order, and every
 * run of offsets dropped in between is announced first by a `skip` push, so the client's cursor
 * moves on knowingly and it can read what it missed from history.
 */
import type { SkipPush } from '@herald/protocol';
import type { EncodeCache, FrameEncoder } from './encoder.js';
import type { Publication } from './engine.js';
import type { SlowConsumerOptions } from './policy.js';

interface Entry {
  readonly pub: Publication;
  /** The fan-out's shared encodings (encoded once for every subscriber, held ones included). */
  readonly cache: EncodeCache;
}

/** The publications one subscription holds while its connection is behind. */
export abstract class Held {
  /** Offset of the last publication that went out before holding began. */
  private readonly base: number;

  constructor(
    first: Publication,
    protected readonly keep: number,
  ) {
    this.base = first.offset - 1;
  }

  /** Holds `pub` (the next offset of the stream); returns how many held ones it pushed out (0 or 1). */
  abstract add(pub: Publication, cache: EncodeCache): number;

  /** What is held, in offset order. */
  protected abstract entries(): Iterable<Entry>;

  /**
   * Encodes what is held, in offset order, each run of offsets that was dropped announced by a
   * `skip` push before the publication that follows it.
   */
  frames(stream: string, encoder: FrameEncoder, out: (bytes: Uint8Array) => void): void {
    let last = this.base;
    for (const { pub, cache } of this.entries()) {
      if (pub.offset > last + 1) {
        const skip: SkipPush = {
          push: 'skip',
          stream,
          since: { epoch: pub.epoch, offset: last },
          count: pub.offset - last - 1,
        };
        out(encoder.push(skip));
      }
      out(encoder.publication(pub, cache));
      last = pub.offset;
    }
  }

  static create(opts: SlowConsumerOptions, first: Publication): Held {
    return opts.policy === 'latest-only' ? new LatestPerChannel(first, opts.keep) : new Newest(first, opts.keep);
  }
}

/** `drop-oldest`: a ring of the newest `keep` publications. */
class Newest extends Held {
  private readonly ring: Entry[] = [];
  private start = 0;

  add(pub: Publication, cache: EncodeCache): number {
    const entry = { pub, cache };
    if (this.ring.length < this.keep) {
      this.ring.push(entry);
      return 0;
    }
    this.ring[this.start] = entry;
    this.start = (this.start + 1) % this.keep;
    return 1;
  }

  protected *entries(): Iterable<Entry> {
    const n = this.ring.length;
    for (let i = 0; i < n; i++) yield this.ring[(this.start + i) % n] as Entry;
  }
}

/**
 * `latest-only`: the newest publication of each channel (a subtree stream has several), of `keep`
 * channels at most (the one whose publication is oldest goes first). A Map keeps insertion order, and
 * a channel's entry is re-inserted with each publication, so it iterates in offset order.
 */
class LatestPerChannel extends Held {
  private readonly byChannel = new Map<string, Entry>();

  add(pub: Publication, cache: EncodeCache): number {
    const m = this.byChannel;
    let dropped = m.delete(pub.channel) ? 1 : 0;
    m.set(pub.channel, { pub, cache });
    if (m.size > this.keep) {
      m.delete(m.keys().next().value as string);
      dropped++;
    }
    return dropped;
  }

  protected entries(): Iterable<Entry> {
    return this.byChannel.values();
  }
}
