/**
 * What one node knows of one namespace's JetStream stream: for every Herald stream of the
 * namespace (exact channels and subtree streams) its epoch, top offset, history policy and where
 * its kept publications are (JetStream sequence, and index in that message). It is built only from
 * the JetStream stream itself, message by message in sequence order (`apply`), so every node that
 * has applied the same sequence holds the same state: that is what lets a node compute the next
 * offsets and have JetStream accept them only if nothing came in between (see nats-engine.ts).
 *
 * Messages Herald writes:
 * - A batch (subject `<prefix>.b.<ns>`): one or more publications, each with the epoch and offset
 *   of every stream of its channel (`streamsOf(channel)`), its history policy and its data
 *   (`encodeBatch`). Header `Herald-L`: the lineage.
 * - A lineage marker (subject `<prefix>.m.<ns>`): only the header `Herald-L`, a random id (8
 *   characters of base64url) chosen when the JetStream stream had no message (new, expired,
 *   storage lost). A batch of another lineage than the one applied means the stream restarted.
 */
import { streamsOf } from '@herald/protocol';
import type { HistoryPolicy, Publication } from '../../core/engine.js';

export const LINEAGE_HEADER = 'Herald-L';
const LINEAGE = /^[A-Za-z0-9_-]{8}$/;
/** Publications in one batch at most (a reference packs the index in 10 bits). */
export const MAX_BATCH = 1000;
const REF = 1024;

/** One message of the namespace's JetStream stream, as a consumer or a direct read gives it. */
export interface StoredMessage {
  readonly seq: number;
  readonly subject: string;
  /** Server time of the append, ms. */
  readonly time: number;
  readonly header: (name: string) => string | undefined;
  readonly data: Uint8Array;
}

/** One publication of a batch. */
export interface BatchEntry {
  readonly channel: string;
  /** `<epoch> <offset>` per stream of `streamsOf(channel)`, in that order. */
  readonly positions: string;
  /** `<size> <ttl ms> <meta ttl ms>` (`encodePolicy`). */
  readonly policy: string;
  /** JSON text of the payload. */
  readonly data: string;
}

interface StreamState {
  epoch: string;
  offset: number;
  /** Where each kept publication is (`seq * 1024 + index`) and its time, oldest first. */
  refs: number[];
  times: number[];
  /** Time of the last publication (server clock), ms. */
  lastAt: number;
  ttlMs: number;
  /** How long epoch and offset are kept after it, ms. */
  metaTtlMs: number;
}

export type ApplyResult =
  /** Applied (or already applied, or not a Herald message). */
  | { readonly kind: 'ok'; readonly publications: readonly Publication[] }
  /** A batch of another lineage: this node missed a restart. Reload. */
  | { readonly kind: 'reload' };

export class NamespaceLog {
  /** Lineage of the messages applied so far ('' before the first). */
  lineage = '';
  /** JetStream sequence of the last applied message. */
  applied = 0;
  /**
   * Streams that this log does not know (never published to, or forgotten) start a new epoch named
   * after `floor`, a JetStream sequence above every message of any stream forgotten so far.
   */
  floor = 1;
  private readonly streams = new Map<string, StreamState>();

  constructor(
    readonly namespace: string,
    /** Subject of batches (`<prefix>.b.<ns>`). */
    private readonly batchSubject: string,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  /** Forgets everything: the next message applied is `floor` or later. */
  reset(floor: number): void {
    this.streams.clear();
    this.lineage = '';
    this.applied = floor - 1;
    this.floor = floor;
  }

  /** The position a stream has now: its known one, or a new epoch at offset 0. */
  position(stream: string): { epoch: string; offset: number } {
    const st = this.streams.get(stream);
    return st !== undefined ? { epoch: st.epoch, offset: st.offset } : { epoch: this.freshEpoch(), offset: 0 };
  }

  /**
   * The epoch a stream this log does not know starts with: the lineage (8 characters) and the
   * floor in base 36, within the protocol's epoch alphabet and length.
   */
  freshEpoch(): string {
    return `${this.lineage}${this.floor.toString(36)}`;
  }

  /**
   * The positions of a batch of publications to `channels`, in that order, following the applied
   * state: per entry, the `positions` text and the channel's own position.
   */
  plan(channels: readonly string[]): { positions: string; epoch: string; offset: number }[] {
    const next = new Map<string, { epoch: string; offset: number }>();
    return channels.map((channel) => {
      const parts: string[] = [];
      let own: { epoch: string; offset: number } | undefined;
      for (const s of streamsOf(channel)) {
        const p = next.get(s) ?? this.position(s);
        const n = { epoch: p.epoch, offset: p.offset + 1 };
        next.set(s, n);
        parts.push(n.epoch, String(n.offset));
        own ??= n;
      }
      const o = own as { epoch: string; offset: number };
      return { positions: parts.join(' '), epoch: o.epoch, offset: o.offset };
    });
  }

  /**
   * Kept publications of `stream` now (`now`: ms on the local clock, against server times): where
   * they are and their offsets, oldest first.
   */
  kept(
    stream: string,
    now: number,
  ): { top: number; epoch: string; entries: { seq: number; index: number; offset: number }[] } {
    const st = this.streams.get(stream);
    if (st === undefined) return { top: 0, epoch: this.freshEpoch(), entries: [] };
    const cutoff = now - st.ttlMs;
    const entries: { seq: number; index: number; offset: number }[] = [];
    const first = st.offset - st.refs.length + 1;
    for (let i = 0; i < st.refs.length; i++) {
      if ((st.times[i] as number) <= cutoff) continue;
      const ref = st.refs[i] as number;
      entries.push({ seq: Math.floor(ref / REF), index: ref % REF, offset: first + i });
    }
    return { top: st.offset, epoch: st.epoch, entries };
  }

  /** Steps over a sequence whose message is gone (deleted or expired before it was read). */
  skip(seq: number): void {
    if (seq === this.applied + 1) this.applied = seq;
  }

  /** Applies the next message of the stream (messages at or below `applied` are ignored). */
  apply(msg: StoredMessage): ApplyResult {
    if (msg.seq <= this.applied) return { kind: 'ok', publications: [] };
    const lineage = msg.header(LINEAGE_HEADER);
    const batch = msg.subject === this.batchSubject;
    const entries = batch ? decodeBatch(msg.data) : undefined;
    if (lineage === undefined || !LINEAGE.test(lineage) || (batch && entries === undefined)) {
      this.applied = msg.seq; // not Herald's: it takes a sequence, nothing else
      return { kind: 'ok', publications: [] };
    }
    if (lineage !== this.lineage) {
      if (batch && this.lineage !== '') return { kind: 'reload' };
      // A marker starts a lineage on an empty stream; a first message read starts what is kept.
      this.streams.clear();
      this.lineage = lineage;
      this.floor = msg.seq;
    }
    this.applied = msg.seq;
    const out: Publication[] = [];
    if (entries !== undefined) {
      entries.forEach((entry, index) => this.applyEntry(msg.seq, index, msg.time, entry, out));
    }
    return { kind: 'ok', publications: out };
  }

  private applyEntry(seq: number, index: number, time: number, entry: BatchEntry, out: Publication[]): void {
    const streams = streamsOf(entry.channel);
    const positions = entry.positions.split(' ');
    const policy = parsePolicy(entry.policy);
    if (positions.length !== streams.length * 2 || policy === undefined) return;
    for (let i = 0; i < streams.length; i++) {
      const stream = streams[i] as string;
      const epoch = positions[2 * i] as string;
      const offset = Number(positions[2 * i + 1]);
      if (!Number.isSafeInteger(offset) || offset < 1) continue;
      let st = this.streams.get(stream);
      if (st === undefined) {
        st = { epoch, offset: 0, refs: [], times: [], lastAt: 0, ttlMs: 0, metaTtlMs: 0 };
        this.streams.set(stream, st);
      }
      if (st.epoch !== epoch || st.offset + 1 !== offset) {
        st.epoch = epoch;
        st.refs = [];
        st.times = [];
      }
      st.offset = offset;
      st.ttlMs = policy.ttlMs;
      st.metaTtlMs = policy.metaTtlMs;
      st.lastAt = time;
      if (policy.size > 0) {
        st.refs.push(seq * REF + index);
        st.times.push(time);
        const excess = st.refs.length - policy.size;
        if (excess > 0) {
          st.refs.splice(0, excess);
          st.times.splice(0, excess);
        }
      } else if (st.refs.length > 0) {
        st.refs = [];
        st.times = [];
      }
      out.push({ stream, channel: entry.channel, epoch, offset, data: entry.data, time });
    }
  }

  /**
   * Forgets streams idle for longer than their meta TTL (their messages left JetStream too) and
   * not in `keep`; raises `floor` above them, so they start a new epoch if they come back.
   */
  sweep(now: number, keep: (stream: string) => boolean): void {
    for (const [stream, st] of this.streams) {
      if (keep(stream) || now - st.lastAt <= Math.max(st.metaTtlMs, st.ttlMs)) continue;
      this.streams.delete(stream);
      this.floor = Math.max(this.floor, this.applied + 1);
    }
  }
}

export function encodePolicy(p: HistoryPolicy): string {
  const ttl = Math.max(1, Math.floor(p.ttlMs));
  return `${Math.max(0, Math.floor(p.size))} ${ttl} ${Math.max(ttl, Math.floor(p.metaTtlMs))}`;
}

function parsePolicy(text: string): HistoryPolicy | undefined {
  const [size, ttlMs, metaTtlMs] = text.split(' ').map(Number);
  if (size === undefined || ttlMs === undefined || metaTtlMs === undefined) return undefined;
  if (!(size >= 0) || !(ttlMs >= 0) || !(metaTtlMs >= 0)) return undefined;
  return { size, ttlMs, metaTtlMs };
}

/**
 * A batch's payload: one line of JSON, `[[channel, positions, policy, data bytes], ...]`, then the
 * entries' data, one after the other (JSON text never holds a raw newline, so the line ends at the
 * first one).
 */
export function encodeBatch(entries: readonly BatchEntry[]): Uint8Array {
  const datas = entries.map((e) => Buffer.from(e.data, 'utf8'));
  const head = JSON.stringify(entries.map((e, i) => [e.channel, e.positions, e.policy, (datas[i] as Buffer).length]));
  return Buffer.concat([Buffer.from(`${head}\n`, 'utf8'), ...datas]);
}

export function decodeBatch(bytes: Uint8Array): BatchEntry[] | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const nl = buf.indexOf(10);
  if (nl === -1) return undefined;
  let head: unknown;
  try {
    head = JSON.parse(buf.toString('utf8', 0, nl));
  } catch {
    return undefined;
  }
  if (!Array.isArray(head) || head.length === 0 || head.length > MAX_BATCH) return undefined;
  const out: BatchEntry[] = [];
  let at = nl + 1;
  for (const item of head as unknown[]) {
    if (!Array.isArray(item) || item.length !== 4) return undefined;
    const [channel, positions, policy, length] = item as unknown[];
    if (typeof channel !== 'string' || typeof positions !== 'string' || typeof policy !== 'string') return undefined;
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0 || at + length > buf.length) {
      return undefined;
    }
    out.push({ channel, positions, policy, data: buf.toString('utf8', at, at + length) });
    at += length;
  }
  return out;
}
