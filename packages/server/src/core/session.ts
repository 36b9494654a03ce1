/**
 * A session is one client connection as the hub sees it, whatever its transport: its client id, its
 * subscriptions, and a bounded send queue. Frames queued in one tick go out as one write; when the
 * bytes queued here plus those the transport has not yet flushed pass `maxQueueBytes`, the client is
 * too slow and is disconnected with `SLOW` (it then recovers from its cursors).
 *
 * Commands are bounded too, so that a client cannot make the server buffer more than it reads
 * (docs/security.md): at most `maxCommandsInFlight` run at once and `maxCommandsWaiting` wait their turn;
 * replies carrying publications are read one at a time, once the output is under half its bound;
 * and a transport that can (WebSocket) stops reading the client while commands wait or the output
 * is over half its bound.
 */
import {
  DisconnectCodes,
  splitFrames,
  decodeCommand,
  type Command,
  type DisconnectName,
  type ErrorBody,
} from '@herald/protocol';
import type { Clock, TimerHandle } from './clock.js';
import { CommandState } from './command-state.js';
import type { EncodeCache, FrameEncoder, NonPubPush } from './encoder.js';
import type { Publication } from './engine.js';
import { toErrorBody } from './errors.js';
import { disconnectChannel, reportDisconnect } from './diagnostics.js';
import { ANONYMOUS_IDENTITY, type SessionIdentity } from './identity.js';
import type { Logger } from './logger.js';
import type { Counter } from './metrics.js';
import type { HubLimits, SlowConsumerOptions } from './policy.js';
import { replyTooLarge, type ReplyOut } from './replies.js';
import { SmallMap } from './small-map.js';
import { Held, queueRelease } from './slow-consumer.js';
import type { DisconnectOptions, Subscriber, Subscription } from './subscription.js';
import type { TransportConnection } from './transport.js';
import type { WriteBatch } from './write-batch.js';

export type SessionState = 'open' | 'closing' | 'closed';

/** How soon held publications are looked at again when the transport reports no drain (ms). */
const HELD_RECHECK_MS = 50;
/**
 * How long a connection that fell behind keeps getting its drop-oldest and latest-only publications
 * in batches (held, and written every HELD_RECHECK_MS or on drain) after it last was behind (ms).
 * A slow reader that catches up for a moment (it read a chunk, and the kernel took what fit) used to
 * get one small write per publication until it fell behind again, and its peer's receive queue
 * filled with small segments: past its buffer, the kernel collapses that queue to make room, in the
 * sending thread — the server's — for milliseconds every time, and every other subscriber waited.
 */
const SLOW_LINGER_MS = 1000;
/**
 * Unsent bytes (beyond what the kernel's socket buffer took) past which publications of drop-oldest
 * and latest-only subscriptions are held rather than queued; at most half of maxQueueBytes. Small:
 * a reader this far behind gets the newest values next, not a backlog of stale ones, and a slow
 * connection costs the server little memory.
 */
const SLOW_OUTPUT_BYTES = 64 * 1024;

export interface SessionInit {
  readonly id: string;
  /** Who the client is (anonymous when absent). */
  readonly identity?: SessionIdentity;
  readonly remoteAddress?: string;
  /**
   * A detached session is not registered with the hub and holds no subscriptions: it runs the
   * commands of `POST /send` for a stateless long-poll client (subscribe answers with a snapshot).
   */
  readonly detached?: boolean;
}

/** The counters a session bumps (made by its host; see metrics.ts). */
export interface SessionCounters {
  readonly badFrames: Counter;
  readonly slowDisconnects: Counter;
  /** Publications dropped for subscribers behind, by the drop-oldest and latest-only policies. */
  readonly slowSkipped: Counter;
  /** Writes and bytes written, for the sessions of one transport (one object per transport). */
  output(transport: string): OutputCounters;
  /** Sessions that ended, by why (a disconnect's name in lower case, or `closed` when the connection went). */
  ended(reason: string): void;
}

export interface OutputCounters {
  readonly writes: Counter;
  readonly bytes: Counter;
}

/**
 * What a session needs of the node that holds it (the `Hub` implements it). The session depends on
 * this, not on the hub, so the hub can import the session and not the other way round.
 */
export interface SessionHost {
  /** Parent of the session's logger. */
  readonly logger: Logger;
  /** Token expiry timers. */
  readonly clock: Clock;
  readonly limits: HubLimits;
  readonly counters: SessionCounters;
  /** Where the session asks to be flushed, once per turn of the event loop (one write per turn). */
  readonly writes: WriteBatch;
  /** Forgets the session (it disconnected or closed) and drops its subscriptions. */
  detach(session: Session): void;
  /**
   * Runs one decoded command of the session; resolves with its encoded reply, or undefined when the
   * reply was already handed to `out` (see `runCommand` in commands.ts).
   */
  runCommand(
    session: Session,
    cmd: Command,
    out: ReplyOut,
    enc: FrameEncoder,
    effected: () => void,
  ): Promise<Uint8Array | undefined>;
}

export class Session implements ReplyOut, Subscriber {
  readonly id: string;
  /** Who the client is; replaced by a token refresh. */
  identity: SessionIdentity;
  private expiry: TimerHandle | undefined;
  readonly remoteAddress: string | undefined;
  readonly detached: boolean;
  /** When it was made, in ms since the epoch (the admin page's connection inspector shows it). */
  readonly openedAt = Date.now();
  /** By stream. */
  readonly subscriptions = new SmallMap<Subscription>();
  private log: Logger | undefined;
  state: SessionState = 'open';
  /**
   * Frames waiting for this tick's write, dropped after it (idle sessions hold none): the first in
   * `head`, all of them in `queue` once there is a second (most ticks carry one frame per
   * connection, which then costs no array).
   */
  private head: Uint8Array | undefined;
  private queue: Uint8Array[] | undefined;
  private queuedBytes = 0;
  private scheduled = false;
  /** Extra queue room granted to the largest reply still draining (see `enqueue`). */
  private burst = 0;
  /**
   * What the transport held unsent right after this session's last write. Only this session's
   * writes add to that (besides a few bytes of heartbeat or stream preamble), and the transport
   * drains it, so it is an upper bound of what the transport holds now.
   */
  private sentBacklog = 0;
  /** Commands on their way (made on the first command, dropped when none is left). */
  private cmds: CommandState | undefined;
  /** Subscriptions holding publications while the output is behind (see slow-consumer.ts); mostly none. */
  private holding: Subscription[] | undefined;
  /** A wait for the output to drain, to write what `holding` holds, is set. */
  private heldWatch: TimerHandle | boolean = false;
  /** Bytes `holding` holds, kept at most half of maxQueueBytes (see `hold`). */
  private holdingBytes = 0;
  /** Until when (host clock, ms) publications of held policies are batched (see SLOW_LINGER_MS); 0: never behind. */
  private slowUntil = 0;
  /** Where its writes are counted (shared by the sessions of its transport). */
  private readonly output: OutputCounters;

  constructor(
    readonly host: SessionHost,
    readonly transport: TransportConnection,
    readonly encoder: FrameEncoder,
    init: SessionInit,
  ) {
    this.id = init.id;
    // Detached sessions take their identity as is; others get it through setIdentity (expiry timers).
    this.identity = init.detached === true ? (init.identity ?? ANONYMOUS_IDENTITY) : ANONYMOUS_IDENTITY;
    this.remoteAddress = init.remoteAddress;
    this.detached = init.detached === true;
    this.output = host.counters.output(transport.name);
  }

  /** A child logger with the client id, made on first use (most sessions never log). */
  get logger(): Logger {
    this.log ??= this.host.logger.child({ client: this.id, transport: this.transport.name });
    return this.log;
  }

  get userId(): string {
    return this.identity.userId;
  }

  get anonymous(): boolean {
    return this.identity.anonymous;
  }

  /**
   * Sets who the client is, and arms its token's expiry: a `refresh` push shortly before (the
   * SDK then refreshes in place), and a disconnect with TOKEN_EXPIRED (3511, do not reconnect
   * without a new token) at the expiry itself if no refresh came. Never silently anonymous.
   */
  setIdentity(identity: SessionIdentity): void {
    this.identity = identity;
    this.expiry?.cancel();
    this.expiry = undefined;
    const at = identity.expiresAt;
    if (at === undefined || this.detached) return;
    const clock = this.host.clock;
    const left = at - clock.now();
    if (left <= 0) {
      this.disconnect('TOKEN_EXPIRED', { reason: 'the token expired' });
      return;
    }
    const lead = Math.min(30_000, Math.floor(left / 10));
    const warn = (): void => {
      this.sendPush({ push: 'refresh', expiresAt: at });
      this.expiry = clock.setTimeout(
        () => this.disconnect('TOKEN_EXPIRED', { reason: 'the token expired' }),
        at - clock.now(),
      );
    };
    if (lead > 0) this.expiry = clock.setTimeout(warn, left - lead);
    else warn();
  }

  /** Whether the token has expired (commands other than `refresh` are refused then). */
  expired(): boolean {
    const at = this.identity.expiresAt;
    return at !== undefined && at <= this.host.clock.now();
  }

  /** Handles one incoming transport message: one or more `\n`-separated JSON commands. */
  handleMessage(text: string): void {
    void this.dispatch(text, this, this.encoder);
  }

  /** Handles the values of one message the transport decoded itself (MessagePack): each one command. */
  handleValues(values: readonly unknown[]): void {
    if (this.state !== 'open') return;
    const running: Promise<void>[] = [];
    for (const value of values) {
      const cmd = this.check(value, this, this.encoder);
      if (cmd !== undefined) running.push(this.admit(cmd, this, this.encoder));
    }
    void this.started(running);
  }

  /** A message the transport could not decode: answered HERALD_ERR_PROTOCOL_MALFORMED, counted, logged. */
  malformed(message: string, out: ReplyOut = this, encoder: FrameEncoder = this.encoder): undefined {
    this.host.counters.badFrames.inc();
    this.logger.info({ code: 'HERALD_ERR_PROTOCOL_MALFORMED' }, 'malformed frame');
    out.put(encoder.error(undefined, { code: 'HERALD_ERR_PROTOCOL_MALFORMED', message }));
    return undefined;
  }

  /**
   * Runs the commands of one message; each reply (or error) goes to `out`, encoded by `encoder`.
   * Resolves once every command has replied. Never rejects.
   */
  dispatch(text: string, out: ReplyOut, encoder: FrameEncoder): Promise<void> {
    if (this.state !== 'open') return Promise.resolve();
    const running: Promise<void>[] = [];
    for (const frame of splitFrames(text)) {
      const cmd = this.accept(frame, out, encoder);
      if (cmd !== undefined) running.push(this.admit(cmd, out, encoder));
    }
    return this.started(running);
  }

  /** After the commands of one message were admitted: reading and the command state catch up. */
  private started(running: Promise<void>[]): Promise<void> {
    const st = this.cmds;
    if (st !== undefined) {
      this.updateReading(st);
      this.settle(st);
    }
    return Promise.all(running).then(() => undefined);
  }

  /** Parses and checks one JSON frame; answers a bad one with an error (and returns undefined). */
  private accept(frame: string, out: ReplyOut, encoder: FrameEncoder): Command | undefined {
    let value: unknown;
    try {
      value = JSON.parse(frame);
    } catch {
      return this.malformed('frame is not valid JSON', out, encoder);
    }
    return this.check(value, out, encoder);
  }

  /** Checks one decoded frame as a command; answers a bad one with an error (and returns undefined). */
  private check(value: unknown, out: ReplyOut, encoder: FrameEncoder): Command | undefined {
    const fail = (id: number | undefined, error: ErrorBody): undefined => {
      out.put(encoder.error(id, error));
      return undefined;
    };
    const decoded = decodeCommand(value);
    if (!decoded.ok) {
      this.host.counters.badFrames.inc();
      this.logger.info({ code: decoded.code, id: decoded.id }, decoded.message);
      return fail(decoded.id, { code: decoded.code, message: decoded.message });
    }
    const cmd = decoded.command;
    if (cmd.cmd !== 'refresh' && this.expired()) {
      return fail(cmd.id, {
        code: 'HERALD_ERR_AUTH_TOKEN_EXPIRED',
        message: 'the token expired: send refresh with a new one',
      });
    }
    const st = (this.cmds ??= new CommandState());
    if (st.ids.has(cmd.id)) {
      return fail(cmd.id, {
        code: 'HERALD_ERR_PROTOCOL_DUPLICATE_ID',
        message: `command ${cmd.id} is still in flight`,
      });
    }
    st.ids.add(cmd.id);
    return cmd;
  }

  /**
   * Runs `cmd` now when fewer than maxCommandsInFlight commands run, else queues it behind the
   * others (commands start in the order they came), or refuses it when maxCommandsWaiting wait.
   */
  private admit(cmd: Command, out: ReplyOut, enc: FrameEncoder): Promise<void> {
    const st = this.cmds as CommandState;
    const limits = this.host.limits;
    if (st.running < limits.maxCommandsInFlight && st.waiting.length === 0) return this.start(st, cmd, out, enc);
    if (st.waiting.length >= limits.maxCommandsWaiting) {
      st.ids.delete(cmd.id);
      this.logger.debug({ code: 'HERALD_ERR_TOO_MANY_COMMANDS', id: cmd.id }, 'too many commands waiting');
      const message = `${limits.maxCommandsInFlight} commands run and ${limits.maxCommandsWaiting} wait already: this one was not run`;
      out.put(enc.error(cmd.id, { code: 'HERALD_ERR_TOO_MANY_COMMANDS', message }));
      return Promise.resolve();
    }
    return new Promise((done) => st.waiting.push({ cmd, out, enc, done }));
  }

  private start(st: CommandState, cmd: Command, out: ReplyOut, enc: FrameEncoder): Promise<void> {
    st.running += 1;
    const channel = 'channel' in cmd ? cmd.channel : undefined;
    return st.lanes
      .run(channel, (effected) => this.host.runCommand(this, cmd, out, enc, effected))
      .then(
        (reply) => {
          if (reply !== undefined && !out.put(reply)) {
            out.put(enc.error(cmd.id, replyTooLarge(cmd.id, reply.byteLength).toJSON()));
          }
          this.finish(st, cmd.id);
        },
        (err: unknown) => {
          out.put(enc.error(cmd.id, toErrorBody(err, this.logger)));
          this.finish(st, cmd.id);
        },
      );
  }

  /** A command replied: the next waiting one starts. */
  private finish(st: CommandState, id: number): void {
    st.running -= 1;
    st.ids.delete(id);
    const next = this.state === 'open' ? st.waiting.shift() : undefined;
    if (next !== undefined) void this.start(st, next.cmd, next.out, next.enc).then(next.done);
    this.updateReading(st);
    this.settle(st);
  }

  /** Forgets the command state once nothing is on its way. */
  private settle(st: CommandState): void {
    if (st.idle && this.cmds === st) this.cmds = undefined;
  }

  /** ReplyOut: the session's own queue (WebSocket commands), which takes every reply. */
  put(bytes: Uint8Array): boolean {
    this.enqueue(bytes, 'reply');
    return true;
  }

  /** ReplyOut: a reply may carry up to limits.maxReplyBytes of publications. */
  room(): number {
    return this.host.limits.maxReplyBytes;
  }

  /** ReplyOut: every reply of a connection gets the full room (its queue bounds what it holds). */
  cut(): void {
    // Nothing to do.
  }

  /**
   * ReplyOut: replies carrying publications are read one at a time, each once the output is under
   * half its bound, so that however many such commands a client sends without reading, at most one
   * such reply is queued beyond that half.
   */
  turn(): Promise<() => void> {
    const st = (this.cmds ??= new CommandState());
    return new Promise((resolve) => {
      st.turns.push(() =>
        resolve(() => {
          st.turnHeld = false;
          this.grantTurn(st);
          this.settle(st);
        }),
      );
      this.grantTurn(st);
    });
  }

  private grantTurn(st: CommandState): void {
    if (st.turnHeld || st.turns.length === 0) return;
    // A closed session lets every waiting command through at once: each ends as soon as it sees it.
    if (this.state === 'open' && !this.outputLow() && this.watchOutput(st)) return;
    st.turnHeld = true;
    (st.turns.shift() as () => void)();
  }

  /** Bytes of publications held for slow-consumer policies (at most half of maxQueueBytes). */
  heldBytes(): number {
    return this.holdingBytes;
  }

  /** Bytes queued here and not yet handed to the operating system by the transport. */
  outputBytes(): number {
    return this.queuedBytes + this.transport.bufferedAmount();
  }

  private outputLow(): boolean {
    return this.outputBytes() <= this.host.limits.maxQueueBytes / 2;
  }

  /**
   * Makes sure the output is looked at again once it moved: at the next flush (when frames are
   * queued) or when the transport's buffer drains. False when neither will happen: what is left
   * is then too little for the transport to report.
   */
  private watchOutput(st: CommandState): boolean {
    if (this.scheduled || st.watching) return true;
    const drained = (): void => {
      st.watching = false;
      this.outputMoved(st);
    };
    st.watching = this.transport.onDrained?.(drained) === true;
    return st.watching;
  }

  /** The output went out or drained: reading and the next reply's turn may go on. */
  private outputMoved(st: CommandState): void {
    this.updateReading(st);
    this.grantTurn(st);
    this.settle(st);
  }

  /**
   * Stops reading the client (when the transport can) while commands wait their turn or the
   * output is over half its bound; restarts when neither holds. Only commands are held back this
   * way: publications to the client are bounded by the send queue as before.
   */
  private updateReading(st: CommandState): void {
    const t = this.transport;
    if (t.pauseReading === undefined || this.state !== 'open') return;
    const full = !this.outputLow();
    const hold = full || st.waiting.length > 0 || st.running >= this.host.limits.maxCommandsInFlight;
    if (hold && full) this.watchOutput(st);
    if (hold === st.paused) return;
    st.paused = hold;
    if (hold) t.pauseReading();
    else t.resumeReading?.();
  }

  /** The session closed: waiting commands are answered without running, turns let through. */
  private abandonCommands(): void {
    const st = this.cmds;
    if (st === undefined) return;
    st.paused = false;
    for (const w of st.waiting.splice(0)) {
      st.ids.delete(w.cmd.id);
      w.out.put(w.enc.error(w.cmd.id, { code: 'HERALD_ERR_SESSION_NOT_FOUND', message: 'the session closed' }));
      w.done();
    }
    this.grantTurn(st);
    this.settle(st);
  }

  sendError(id: number | undefined, error: ErrorBody): void {
    this.enqueue(this.encoder.error(id, error));
  }

  sendPush(push: NonPubPush): void {
    this.enqueue(this.encoder.push(push));
  }

  deliver(pub: Publication, cache: EncodeCache, sub: Subscription): void {
    const slow = sub.slow;
    if (slow !== undefined && (sub.held?.active === true || this.slowNow())) this.hold(sub, slow, pub, cache);
    else this.enqueue(this.encoder.publication(pub, cache));
  }

  /** Whether publications of held policies are held now: the output is behind, or was lately (SLOW_LINGER_MS). */
  private slowNow(): boolean {
    if (this.behind()) {
      this.slowUntil = this.host.clock.now() + SLOW_LINGER_MS;
      return true;
    }
    return this.lingering();
  }

  /** Whether the output was behind within SLOW_LINGER_MS: what is held goes out in batches, not turn by turn. */
  private lingering(): boolean {
    return this.slowUntil !== 0 && this.host.clock.now() < this.slowUntil;
  }

  /**
   * Whether the output is past `slowOutputBytes`: publications of drop-oldest and latest-only
   * subscriptions are then held, not queued. `sentBacklog` bounds what the transport holds (see
   * there), so the transport is asked only when the answer can matter.
   */
  private behind(): boolean {
    const bound = this.slowOutputBytes();
    return this.queuedBytes + this.sentBacklog > bound && this.outputBytes() > bound;
  }

  /** See SLOW_OUTPUT_BYTES. */
  private slowOutputBytes(): number {
    return Math.min(SLOW_OUTPUT_BYTES, this.host.limits.maxQueueBytes / 2);
  }

  /** Holds `pub` of `sub` (a subscription with a slow-consumer policy) until the output has room. */
  private hold(sub: Subscription, slow: SlowConsumerOptions, pub: Publication, cache: EncodeCache): void {
    if (this.state !== 'open') return;
    let held = sub.held;
    if (held === undefined || !held.active) {
      if (held === undefined) held = sub.held = Held.create(slow, pub);
      else held.restart(pub);
      (this.holding ??= []).push(sub);
      this.watchHeld();
    }
    const before = held.bytes;
    let dropped = held.add(pub, this.encoder.publication(pub, cache));
    this.holdingBytes += held.bytes - before;
    // What the connection holds is bounded by its own bound, whatever its subscriptions and `keep`:
    // past half of it, a subscription holding more than its share loses its oldest publication — the
    // one that just got one when it does (no search: a dashboard at its bound gets here on every
    // publication of every channel), else the one holding the most.
    const bound = this.host.limits.maxQueueBytes / 2;
    while (this.holdingBytes > bound) {
      const holding = this.holding ?? [];
      let most: Held | undefined = held.bytes * holding.length > this.holdingBytes ? held : undefined;
      if (most === undefined)
        for (const s of holding)
          if (s.held !== undefined && (most === undefined || s.held.bytes > most.bytes)) most = s.held;
      if (most === undefined) break;
      const size = most.bytes;
      if (!most.dropOldest()) break;
      this.holdingBytes -= size - most.bytes;
      dropped++;
    }
    if (dropped > 0) this.host.counters.slowSkipped.inc(dropped);
  }

  /**
   * Queues what subscriptions held (each run of dropped offsets announced by a `skip` push), only
   * as much as keeps the output under `slowOutputBytes`, so that writing them can never overflow
   * its bound; what does not fit holds on (it goes first next time) until the output drains again.
   */
  private releaseHeld(): void {
    const subs = this.holding;
    if (subs === undefined || this.state !== 'open') return;
    const output = this.outputBytes();
    // At most the slow output's room at a time (a release is work on the thread every connection
    // shares); an empty output takes the first frame whatever its size, so that a frame bigger than
    // that room cannot wait forever for room it would never get.
    let room = this.slowOutputBytes() - output;
    let force = output === 0;
    let rest: Subscription[] | undefined;
    const out = (bytes: Uint8Array): void => this.enqueue(bytes);
    for (const sub of subs) {
      const held = sub.held;
      if (held === undefined) continue;
      if (sub.state === 'closed') {
        this.holdingBytes -= held.bytes;
        sub.held = undefined;
        continue;
      }
      if (rest === undefined && (room > 0 || force)) {
        const before = held.bytes;
        const wrote = held.release(sub.stream, this.encoder, room, out, force);
        if (wrote > 0) force = false;
        room -= wrote;
        this.holdingBytes -= before - held.bytes;
        if (held.empty) {
          held.active = false; // kept for the next time (its memory, not its publications)
          continue;
        }
      }
      (rest ??= []).push(sub);
    }
    if (this.state !== 'open') return;
    this.holding = rest;
    if (rest !== undefined) this.watchHeld();
  }

  /**
   * Looks at the held publications again when the transport's buffer has drained, or (a transport
   * that cannot tell, or a buffer below its high-water mark, which reports no drain) a little later.
   */
  private watchHeld(): void {
    // A flush is on its way: it looks again once it has written (unless batching, see SLOW_LINGER_MS).
    if (this.heldWatch !== false || (this.scheduled && !this.lingering())) return;
    // Released in turn with the other connections that drained (see queueRelease); the watch stays
    // set until then, so that a flush meanwhile does not release ahead of the queue.
    const again = (): void => {
      this.heldWatch = true;
      queueRelease(() => {
        if (this.heldWatch !== true) return; // dropped meanwhile (the session ended)
        this.heldWatch = false;
        this.releaseHeld();
      });
    };
    this.heldWatch = this.transport.onDrained?.(again) === true || this.host.clock.setTimeout(again, HELD_RECHECK_MS);
  }

  /** The session ended: what was held is dropped, and so is the wait for the output to drain. */
  private dropHeld(): void {
    for (const sub of this.holding ?? []) sub.held = undefined;
    this.holding = undefined;
    this.holdingBytes = 0;
    if (typeof this.heldWatch === 'object') this.heldWatch.cancel();
    this.heldWatch = false;
  }

  /**
   * Queues one encoded frame. A large reply (history, recovery, backlog; at most maxReplyBytes of
   * publications) may legitimately exceed maxQueueBytes on its own: the limit is raised by the size
   * of the largest reply until the connection has drained below the normal limit again, so a client
   * is called slow only when it does not read. The raise is not cumulative: replies together never
   * buy more than one reply's room (they used to, and a client that never read could make the server
   * buffer gigabytes with cheap `history` commands; docs/security.md).
   */
  enqueue(bytes: Uint8Array, kind: 'reply' | 'push' = 'push'): void {
    if (this.state !== 'open') return;
    this.push(bytes);
    this.queuedBytes += bytes.byteLength;
    const limit = this.host.limits.maxQueueBytes;
    if (kind === 'reply' && bytes.byteLength > this.burst) this.burst = bytes.byteLength;
    // The transport is asked what it still holds only when the answer can matter: `sentBacklog` is
    // an upper bound of it (see there), so below the limit with it, the exact figure is too. This
    // keeps the fan-out loop from touching every subscriber's socket twice per publication.
    if (this.burst > 0 || this.queuedBytes + this.sentBacklog > limit) {
      const pending = this.queuedBytes + this.transport.bufferedAmount();
      if (kind !== 'reply' && this.burst > 0 && pending - bytes.byteLength <= limit) this.burst = 0;
      if (pending > limit + this.burst) {
        this.host.counters.slowDisconnects.inc();
        this.disconnect('SLOW', { reason: 'send queue overflow' });
        return;
      }
    }
    if (!this.scheduled) {
      this.scheduled = true;
      this.host.writes.schedule(this);
    }
  }

  private push(bytes: Uint8Array): void {
    if (this.head === undefined) this.head = bytes;
    else (this.queue ??= [this.head]).push(bytes);
  }

  private clearQueue(): void {
    this.head = undefined;
    this.queue = undefined;
    this.queuedBytes = 0;
  }

  /** Writes everything queued as one batch. Called by the hub's flush loop. */
  flush(): void {
    this.scheduled = false;
    const head = this.head;
    if (head === undefined) return;
    const queue = this.queue;
    const bytes = this.queuedBytes;
    this.clearQueue();
    if (this.state === 'closed') return;
    this.output.writes.inc();
    this.output.bytes.inc(bytes);
    if (queue === undefined) this.transport.write(head);
    // Several whole frames: one writev, no joined copy (a busy connection gets many per turn).
    else if (this.encoder.concatenates === true && this.transport.writeFrames !== undefined)
      this.transport.writeFrames(queue);
    else this.transport.write(this.encoder.join(queue));
    this.sentBacklog = this.transport.bufferedAmount();
    const st = this.cmds;
    if (st !== undefined) this.outputMoved(st);
    if (this.holding !== undefined && this.heldWatch === false) {
      if (this.lingering()) this.watchHeld();
      else this.releaseHeld();
    }
  }

  /** Tells the client why and closes the transport. Idempotent. */
  disconnect(name: DisconnectName, opts: DisconnectOptions = {}): void {
    if (this.state !== 'open') return;
    const info = DisconnectCodes[name];
    const reason = opts.reason ?? name.toLowerCase();
    if (opts.flushFirst !== true) this.clearQueue();
    // Held publications are dropped, not written: the client recovers them from its cursor.
    this.dropHeld();
    const push: NonPubPush = { push: 'disconnect', code: info.code, reason, reconnect: info.reconnect };
    if (opts.retryAfterMs !== undefined) push.retryAfterMs = opts.retryAfterMs;
    this.push(this.encoder.push(push));
    this.flush();
    this.state = 'closing';
    this.expiry?.cancel();
    this.logger.debug({ code: info.code, reason }, 'disconnect');
    if (!this.detached) {
      this.host.counters.ended(name.toLowerCase());
      if (disconnectChannel.hasSubscribers) reportDisconnect(this, info.code, reason);
    }
    this.transport.close(info.code, reason);
    this.host.detach(this);
    this.abandonCommands();
  }

  /** The transport reports that the connection is gone (closed by either side). */
  transportClosed(): void {
    if (this.state === 'closed') return;
    // Counted and reported here only when `disconnect` did not (once per session).
    if (this.state === 'open' && !this.detached) {
      this.host.counters.ended('closed');
      if (disconnectChannel.hasSubscribers) reportDisconnect(this, 0, 'closed');
    }
    this.state = 'closed';
    this.expiry?.cancel();
    this.dropHeld();
    this.clearQueue();
    this.host.detach(this);
    this.abandonCommands();
  }
}
