/**
 * Test support for HTTP clients: an inbox that keeps what arrived and awaits matches with a timeout
 * that fails, an incremental Server-Sent Events parser, and an NDJSON line splitter.
 */
import { withTimeout } from './wait.js';

interface Waiter<T> {
  match: (item: T) => boolean;
  resolve: (item: T) => void;
}

/** Everything received, in order; `waitFor` resolves with the first match, now or later. */
export class Inbox<T> {
  readonly items: T[] = [];
  private waiters: Waiter<T>[] = [];

  push(item: T): void {
    this.items.push(item);
    const keep: Waiter<T>[] = [];
    for (const w of this.waiters) {
      if (w.match(item)) w.resolve(item);
      else keep.push(w);
    }
    this.waiters = keep;
  }

  waitFor(match: (item: T) => boolean, what: string, ms = 5000): Promise<T> {
    const have = this.items.find(match);
    if (have !== undefined) return Promise.resolve(have);
    return withTimeout(new Promise<T>((resolve) => this.waiters.push({ match, resolve })), ms, what);
  }

  /** Waits until `count` items match; resolves with them. */
  async waitForCount(match: (item: T) => boolean, count: number, what: string, ms = 5000): Promise<T[]> {
    const deadline = Date.now() + ms;
    for (;;) {
      const got = this.items.filter(match);
      if (got.length >= count) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${count} × ${what} (have ${got.length})`);
      const seen = new Set(got);
      await withTimeout(
        new Promise<T>((resolve) => this.waiters.push({ match: (x) => match(x) && !seen.has(x), resolve })),
        left,
        `${count} × ${what} (have ${got.length})`,
      );
    }
  }
}

export interface SseEvent {
  /** `message` when the event has no `event:` field. */
  event: string;
  data: string;
  /** The `id:` field of this event, if it had one. */
  id: string | undefined;
}

/** Splits an event stream into events as bytes arrive (the WHATWG parsing rules, minus `retry`). */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  constructor(private readonly onEvent: (e: SseEvent) => void) {}

  feed(text: string): void {
    this.buffer += text;
    for (;;) {
      const nl = this.buffer.search(/\r\n|\r|\n/);
      if (nl === -1) return;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(this.buffer[nl] === '\r' && this.buffer[nl + 1] === '\n' ? nl + 2 : nl + 1);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0)
        this.onEvent({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.data = [];
      this.event = '';
      this.id = undefined;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id') this.id = value;
  }
}

/** Splits text into lines as it arrives; calls `onLine` for each complete, non-empty line. */
export class LineSplitter {
  private buffer = '';
  constructor(private readonly onLine: (line: string) => void) {}
  feed(text: string): void {
    this.buffer += text;
    let nl;
    while ((nl = this.buffer.indexOf('\n')) !== -1) {
      const line = this.buffer.slice(0, nl).replace(/\r$/, '');
      this.buffer = this.buffer.slice(nl + 1);
      if (line.trim() !== '') this.onLine(line);
    }
  }
}
