/**
 * Commands of one connection on one channel take effect in the order they were sent, whatever
 * asynchronous checks (permissions, hooks, the engine) each waits on. Without it,
 * `subscribe x; unsubscribe x; subscribe x` in one message (React StrictMode sends exactly that)
 * ran the unsubscribe while the first subscribe awaited its permission check: the unsubscribe found
 * nothing, the second subscribe was refused as ALREADY, and the server kept a subscription the
 * client no longer tracked.
 *
 * Each channel has a lane: a command starts once the previous command on its channel has taken
 * effect — a subscribe once it has replied (its recovery may go on after), any other command once
 * it has settled. Commands on different channels, and a command whose lane is free, start at once
 * (no extra tick on the common path).
 */
export class ChannelLanes {
  /** The last command of each channel with a command not yet in effect: resolves when it is. */
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Runs `fn` after the commands before it on `channel`; `fn` may call `effected` as soon as its
   * command has taken effect (otherwise it counts once `fn` settles).
   */
  run<T>(channel: string | undefined, fn: (effected: () => void) => Promise<T>): Promise<T> {
    if (channel === undefined) return fn(noop);
    const prev = this.tails.get(channel);
    let mark = noop;
    const effect = new Promise<void>((resolve) => (mark = resolve));
    this.tails.set(channel, effect);
    void effect.then(() => {
      if (this.tails.get(channel) === effect) this.tails.delete(channel);
    });
    const go = (): Promise<T> => {
      const p = fn(mark);
      p.then(mark, mark);
      return p;
    };
    return prev === undefined ? go() : prev.then(go);
  }

  get size(): number {
    return this.tails.size;
  }
}

function noop(): void {}
