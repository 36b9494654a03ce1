import { formatCursorSet } from '@herald/protocol';

/**
 * The position of each stream of one HTTP connection, in the order the streams were added, written
 * as a cursor set (the SSE event id, the long-poll `cursor`). Most connections read one stream: its
 * position lives in three fields, and a Map is made only when a second stream is added (a Map with
 * one entry and its position object take about 250 bytes). Idle memory per connection counts.
 */
export class StreamCursors {
  private stream: string | undefined;
  private epoch = '';
  private offset = 0;
  private many: Map<string, { epoch: string; offset: number }> | undefined;

  get size(): number {
    if (this.many !== undefined) return this.many.size;
    return this.stream === undefined ? 0 : 1;
  }

  /** Sets the position of `stream` (a new stream goes last, as with Map.set). */
  set(stream: string, epoch: string, offset: number): void {
    const many = this.many;
    if (many !== undefined) {
      const pos = many.get(stream);
      if (pos === undefined) many.set(stream, { epoch, offset });
      else {
        pos.epoch = epoch;
        pos.offset = offset;
      }
    } else if (this.stream === undefined || this.stream === stream) {
      this.stream = stream;
      this.epoch = epoch;
      this.offset = offset;
    } else {
      this.many = new Map([
        [this.stream, { epoch: this.epoch, offset: this.offset }],
        [stream, { epoch, offset }],
      ]);
      this.stream = undefined;
    }
  }

  delete(stream: string): boolean {
    if (this.many !== undefined) return this.many.delete(stream);
    if (this.stream !== stream) return false;
    this.stream = undefined;
    return true;
  }

  /** `<stream>;<epoch>;<offset>` joined by `,` (see `formatCursorSet`); empty when there is none. */
  format(): string {
    if (this.many !== undefined) return formatCursorSet(this.many);
    return this.stream === undefined ? '' : `${this.stream};${this.epoch};${this.offset}`;
  }
}
