/**
 * Minimal readers for the HTTP transports, on `fetch` streams: an SSE parser (per the WHATWG
 * event-stream rules, enough for tests: id/event/data/retry fields, comments) and an NDJSON reader.
 * Every wait has a timeout that fails.
 */
import { withTimeout } from '@herald/test-support';

export interface SseEvent {
  event: string;
  data: string;
  id: string | undefined;
}

abstract class StreamReader<T> {
  readonly items: T[] = [];
  readonly comments: string[] = [];
  status = 0;
  headers: Headers | undefined;
  ended = false;
  private waiters: (() => void)[] = [];
  private readonly abort = new AbortController();
  readonly done: Promise<void>;
  firstChunk: string | undefined;

  constructor(url: string, init: RequestInit = {}) {
    this.done = this.run(url, init);
  }

  private async run(url: string, init: RequestInit): Promise<void> {
    try {
      const res = await fetch(url, { ...init, signal: this.abort.signal });
      this.status = res.status;
      this.headers = res.headers;
      if (res.body === null) return;
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const text = dec.decode(value, { stream: true });
        this.firstChunk ??= text;
        buf += text;
        buf = this.consume(buf);
        this.wake();
      }
    } catch {
      // aborted or reset: `ended` tells
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  protected abstract consume(buf: string): string;

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  async waitFor(pred: (items: T[]) => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.items)) {
      if (this.ended) throw new Error(`stream ended while waiting for ${what} (status ${this.status})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await withTimeout(new Promise<void>((r) => this.waiters.push(r)), left, what);
    }
  }

  async waitForComment(what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.comments.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.ended) throw new Error(`timed out waiting for ${what}`);
      await withTimeout(new Promise<void>((r) => this.waiters.push(r)), left, what);
    }
  }

  close(): void {
    this.abort.abort();
  }
}

export class SseReader extends StreamReader<SseEvent> {
  lastEventId = '';
  retry: number | undefined;
  private event = { event: '', data: [] as string[], id: undefined as string | undefined };

  protected consume(buf: string): string {
    let nl: number;
    while ((nl = buf.search(/\r\n|\r|\n/)) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(buf[nl] === '\r' && buf[nl + 1] === '\n' ? nl + 2 : nl + 1);
      if (line === '') {
        if (this.event.id !== undefined) this.lastEventId = this.event.id;
        if (this.event.data.length > 0) {
          this.items.push({
            event: this.event.event || 'message',
            data: this.event.data.join('\n'),
            id: this.event.id,
          });
        }
        this.event = { event: '', data: [], id: undefined };
        continue;
      }
      if (line.startsWith(':')) {
        this.comments.push(line.slice(1));
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') this.event.event = value;
      else if (field === 'data') this.event.data.push(value);
      else if (field === 'id') this.event.id = value;
      else if (field === 'retry') this.retry = Number(value);
    }
    return buf;
  }

  /** Publication payloads (`message` events), parsed. */
  pubs(): Record<string, any>[] {
    return this.items.filter((e) => e.event === 'message').map((e) => JSON.parse(e.data) as Record<string, any>);
  }

  of(event: string): Record<string, any>[] {
    return this.items.filter((e) => e.event === event).map((e) => JSON.parse(e.data) as Record<string, any>);
  }
}

export class NdjsonReader extends StreamReader<Record<string, any>> {
  protected consume(buf: string): string {
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === '') {
        this.comments.push('');
        continue;
      }
      this.items.push(JSON.parse(line) as Record<string, any>);
    }
    return buf;
  }

  pubs(): Record<string, any>[] {
    return this.items.filter((f) => f['push'] === 'pub');
  }
}

/** POST /send with a session id; returns the reply lines. */
export async function send(
  base: string,
  session: string,
  body: string,
): Promise<{ status: number; lines: any[]; raw: string }> {
  const res = await fetch(`${base}/send`, { method: 'POST', headers: { 'X-Herald-Session': session }, body });
  const raw = await res.text();
  const lines = res.headers.get('content-type')?.includes('ndjson')
    ? raw
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as unknown)
    : [JSON.parse(raw) as unknown];
  return { status: res.status, lines, raw };
}
