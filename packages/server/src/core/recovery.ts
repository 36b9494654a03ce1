/**
 * Recovery: how a subscription catches up with its stream without a gap or a duplicate. A new
 * subscription starts from what `initialRead` finds (the publications after the client's cursor, a
 * backlog, or just the position); a subscription that fell behind (it subscribed while publications
 * raced with its read, the engine reported a gap, or a new epoch began) is `recovering` and `drain`
 * brings it back to `live` from history. One rule, `covers`, decides whether history still holds
 * everything after a position.
 */
import type { StreamPosition } from '@herald/protocol';
import type { HistoryOutcome, HistoryRequest, Publication } from './engine.js';
import type { Counter } from './metrics.js';
import type { HubLimits, NamespacePolicy } from './policy.js';
import { fitCount } from './replies.js';
import { NO_BUFFER, type Subscription } from './subscription.js';

/** What recovery needs of the node (the hub provides it). */
export interface RecoveryHost {
  readonly limits: HubLimits;
  /** Reads history; a failure is a HeraldError (HERALD_ERR_ENGINE_UNAVAILABLE when the engine failed). */
  history(req: HistoryRequest): Promise<HistoryOutcome>;
  /** Counts each publication delivered by recovery. */
  readonly deliveries: Counter;
  /** Subscribes with a cursor answered `recovered: true`, and `false`. */
  readonly recovered: Counter;
  readonly notRecovered: Counter;
  /** Live subscriptions that fell behind (a gap, a new epoch, a lost link) and re-read history. */
  readonly catchUps: Counter;
}

/** How a subscription starts: from a client's cursor (`since`), with a backlog, or from now. */
export interface StartOptions {
  readonly since?: StreamPosition | undefined;
  readonly backlog?: number | undefined;
  /** Bytes of publications a backlog may carry now; `limits.maxReplyBytes` when not given. */
  readonly room?: (() => number) | undefined;
}

/** What a subscription starts with. `recovered` is set when a cursor was given. */
export interface Start {
  readonly position: StreamPosition;
  readonly publications: Publication[];
  readonly recovered?: boolean;
}

/**
 * Whether `h`, a history read of publications after `since` (with a limit of at least what was
 * missed), holds every publication after `since`: the same epoch, nothing trimmed in between.
 */
export function covers(h: HistoryOutcome, since: StreamPosition): boolean {
  const missed = h.position.offset - since.offset;
  return (
    h.position.epoch === since.epoch &&
    missed >= 0 &&
    (missed === 0 || (h.oldest <= since.offset + 1 && h.publications.length === missed))
  );
}

export class Recovery {
  constructor(private readonly host: RecoveryHost) {}

  /** What a new subscription starts with: recovered publications, a backlog, or just a position. */
  async start(stream: string, policy: NamespacePolicy, opts: StartOptions): Promise<Start> {
    const history = (req: HistoryRequest): Promise<HistoryOutcome> => this.host.history(req);
    const limits = this.host.limits;
    let recovered: boolean | undefined;
    let fallback: HistoryOutcome | undefined;
    if (opts.since !== undefined) {
      const h = await history({ stream, since: opts.since, limit: policy.historySize });
      // A recovery is whole or not at all (no gap); one larger than a reply may carry is refused as
      // if the cursor were outside history: the client is told (`recovered: false`), never cut short.
      if (covers(h, opts.since) && fitsWhole(h.publications, policy, limits.maxReplyBytes)) {
        this.host.recovered.inc();
        return { position: h.position, publications: h.publications, recovered: true };
      }
      this.host.notRecovered.inc();
      recovered = false;
      fallback = h;
    }
    const backlog = Math.min(opts.backlog ?? 0, policy.historySize);
    if (backlog > 0) {
      const h = await history({ stream, limit: backlog, reverse: true });
      // The newest publications that fit in a reply.
      const fit = fitCount(h.publications, opts.room?.() ?? limits.maxReplyBytes);
      const publications = h.publications.slice(0, fit).reverse();
      return { position: h.position, publications, ...(recovered !== undefined ? { recovered } : {}) };
    }
    const h = fallback ?? (await history({ stream, limit: 0 }));
    return { position: h.position, publications: [], ...(recovered !== undefined ? { recovered } : {}) };
  }

  /**
   * Delivers what a recovering subscription buffered, re-reading history when the buffer shows a
   * gap or overflowed, until the buffer is empty; then the subscription is live. A subscriber whose
   * missed publications are no longer in history is disconnected with INSUFFICIENT_STATE so that it
   * resubscribes with its cursor and is told `recovered: false`. Rejects when history cannot be read.
   */
  async drain(sub: Subscription, policy: NamespacePolicy): Promise<void> {
    while (sub.state === 'recovering') {
      if (sub.overflowed) {
        sub.overflowed = false;
        sub.buffer = [];
        const since = { epoch: sub.epoch, offset: sub.offset };
        const h = await this.host.history({ stream: sub.stream, since, limit: policy.historySize });
        if (sub.state !== 'recovering') return;
        if (!covers(h, since)) {
          sub.session.disconnect('INSUFFICIENT_STATE', {
            reason: `publications of "${sub.stream}" were lost`,
            flushFirst: true,
          });
          return;
        }
        for (const pub of h.publications) if (pub.offset === sub.offset + 1) this.deliver(sub, pub);
        continue;
      }
      const buffered = sub.buffer;
      sub.buffer = [];
      for (const pub of buffered) {
        if (pub.epoch !== sub.epoch || pub.offset > sub.offset + 1) {
          sub.overflowed = true;
          break;
        }
        if (pub.offset === sub.offset + 1) this.deliver(sub, pub);
      }
      if (!sub.overflowed && sub.buffer.length === 0) {
        sub.state = 'live';
        sub.buffer = NO_BUFFER;
      }
    }
  }

  /**
   * A live subscription fell behind (`first` is the publication that showed it, if any; none after
   * an engine gap): it recovers from history while live publications are buffered.
   */
  fellBehind(sub: Subscription, policy: NamespacePolicy, first: Publication | undefined): void {
    this.host.catchUps.inc();
    sub.state = 'recovering';
    // Live subscriptions share NO_BUFFER: never push into it.
    sub.buffer = first !== undefined ? [first] : [];
    if (first === undefined) sub.overflowed = true;
    this.drain(sub, policy).catch((err: unknown) => {
      sub.session.logger.warn({ err, stream: sub.stream }, 'recovery failed');
      sub.session.disconnect('INSUFFICIENT_STATE', { reason: `could not recover "${sub.stream}"`, flushFirst: true });
    });
  }

  private deliver(sub: Subscription, pub: Publication): void {
    sub.offset = pub.offset;
    sub.session.deliver(pub, {}, sub);
    this.host.deliveries.inc();
  }
}

/** Whether all of `pubs` fit in `maxBytes`; counted only when their number alone does not tell. */
function fitsWhole(pubs: readonly Publication[], policy: NamespacePolicy, maxBytes: number): boolean {
  if (pubs.length * (policy.maxMessageSize + MAX_PUBLICATION_OVERHEAD) <= maxBytes) return true;
  return fitCount(pubs, maxBytes) === pubs.length;
}

/** What a publication adds to its data in a reply, at most: see `publicationBytes` (a channel is 255 bytes at most). */
const MAX_PUBLICATION_OVERHEAD = 64 + 255;
