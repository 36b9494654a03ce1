import type { StreamPosition } from '@herald/protocol';
import { SmallMap } from '../core/small-map.js';

/**
 * The position of each stream of one HTTP connection, in the order the streams were added, written
 * as a cursor set (the SSE event id, the long-poll `cursor`). Most connections read one stream, so
 * the positions live in a `SmallMap` (no Map for a single stream).
 */
export class StreamCursors extends SmallMap<StreamPosition> {
  /** Moves `stream` to a position (in place: this runs for every publication delivered). */
  setPosition(stream: string, epoch: string, offset: number): void {
    const pos = this.get(stream) as { epoch: string; offset: number } | undefined;
    if (pos === undefined) this.set(stream, { epoch, offset });
    else {
      pos.epoch = epoch;
      pos.offset = offset;
    }
  }

  /** `<stream>;<epoch>;<offset>` joined by `,` (as `formatCursorSet`); empty when there is none. */
  format(): string {
    let out = '';
    this.forEach((pos, stream) => {
      if (out !== '') out += ',';
      out += `${stream};${pos.epoch};${pos.offset}`;
    });
    return out;
  }
}
