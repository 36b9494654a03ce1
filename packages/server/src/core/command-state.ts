/**
 * The bookkeeping of a session's commands while any is on its way: which ids run or wait, the
 * queue of those waiting for their turn, whether reading from the client is paused, and the turns
 * of replies that carry publications. The session decides (see `Session.admit`, `Session.turn`);
 * this only holds the state, and exists only while a command is on its way (most subscribers send
 * one or two commands in their life, and idle memory per connection counts).
 */
import type { Command } from '@herald/protocol';
import { ChannelLanes } from './channel-lanes.js';
import type { FrameEncoder } from './encoder.js';
import type { ReplyOut } from './replies.js';

/** A command waiting for its turn to run (see `Session.admit`). */
export interface Waiting {
  readonly cmd: Command;
  readonly out: ReplyOut;
  readonly enc: FrameEncoder;
  readonly done: () => void;
}

export class CommandState {
  /** Ids of the commands running or waiting. */
  readonly ids = new Set<number>();
  running = 0;
  readonly waiting: Waiting[] = [];
  /** Reading from the client is stopped (see `Session.updateReading`). */
  paused = false;
  /** The transport calls back once its output has drained. */
  watching = false;
  /** A reply carrying publications is being read and queued (see `Session.turn`). */
  turnHeld = false;
  readonly turns: (() => void)[] = [];
  /** Commands on one channel take effect in order (see channel-lanes.ts). */
  readonly lanes = new ChannelLanes();

  get idle(): boolean {
    return (
      this.running === 0 &&
      this.ids.size === 0 &&
      this.waiting.length === 0 &&
      !this.paused &&
      !this.watching &&
      !this.turnHeld &&
      this.turns.length === 0
    );
  }
}
