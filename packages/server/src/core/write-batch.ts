/**
 * One write per connection per turn of the event loop: a session with frames queued asks to be
 * flushed, and every session that asked is flushed once, together, at the next `setImmediate`. A
 * publication fanned out to N subscribers in one turn thus costs one write per subscriber, and a
 * subscriber that gets several frames in a turn gets them in one write.
 */
export interface Flushable {
  flush(): void;
}

export class WriteBatch {
  private dirty: Flushable[] = [];
  private scheduled = false;

  /** Calls `target.flush()` once, later in this turn of the event loop. Call once per turn per target. */
  schedule(target: Flushable): void {
    this.dirty.push(target);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    const batch = this.dirty;
    this.dirty = [];
    for (const s of batch) s.flush();
  };
}
