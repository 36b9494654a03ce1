/**
 * A subscriber to one channel over WebSocket, SSE or HTTP streaming (NDJSON) that reconnects to the
 * same URL (a proxy, in the proxy tests) whenever its connection ends, and resumes from its cursor
 * (`since`, `Last-Event-ID`, `cursor`). It checks continuity as it goes: one epoch, every
 * publication the next offset, every resume `recovered: true`. It records which node served each
 * session (the node id prefix of the client id) and when each publication arrived.
 */
import WebSocket from 'ws';
import { LineSplitter, SseParser, withTimeout } from '@herald/test-support';
import { type Frame } from '@herald/test-support/server';

export type ResumingTransport = 'ws' | 'sse' | 'stream';

export interface Arrival {
  offset: number;
  data: unknown;
  /** `performance.now()` when it arrived. */
  at: number;
}

/** The node id in a client id `<nodeId>-<seq>`. */
export function nodeOf(client: string): string {
  return client.slice(0, client.lastIndexOf('-'));
}

export class ResumingClient {
  readonly got: Arrival[] = [];
  /** The node id of each session that got as far as `connected`, in order. */
  readonly nodes: string[] = [];
  /** Subscribes that took effect (the first one, then one per resume). */
  subscribes = 0;
  /** `performance.now()` of each subscribe that took effect. */
  readonly subscribedAt: number[] = [];
  /** Continuity errors (gap, duplicate, epoch change, resume not recovered, stream refused). */
  readonly errors: string[] = [];
  /** Connections answered with something else than the stream (a proxy's 502/503, a reset). */
  readonly rejected: string[] = [];
  epoch: string | undefined;
  offset = 0;
  private stopped = false;
  private abort: AbortController | undefined;
  private ws: WebSocket | undefined;
  private waiters: (() => void)[] = [];
  private loop: Promise<void> | undefined;

  /** `base` is `http://host:port`. */
  constructor(
    private readonly base: string,
    readonly transport: ResumingTransport,
    readonly channel: string,
  ) {}

  /** Connects (again and again, 50 ms apart, until `stop()`); resolves once subscribed. */
  async start(ms = 5000): Promise<void> {
    this.loop = (async () => {
      while (!this.stopped) {
        try {
          await this.session();
        } catch (err) {
          if (!this.stopped) this.rejected.push(`session failed: ${(err as Error).message}`);
        }
        if (!this.stopped) await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await this.until(() => this.subscribes > 0, ms, `${this.transport} to subscribe to ${this.channel}`);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `check()` holds, re-checked whenever something arrives. */
  async until(check: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what} (${this.describe()})`);
      await withTimeout(new Promise<void>((r) => this.waiters.push(r)), left, `${what} (${this.describe()})`).catch(
        (err: unknown) => {
          if (!check()) throw err;
        },
      );
    }
  }

  /** Waits until the client has offset `top`. */
  reach(top: number, ms = 10_000): Promise<void> {
    return this.until(() => this.offset >= top, ms, `${this.transport} ${this.channel} to reach offset ${top}`);
  }

  describe(): string {
    const rejected = this.rejected.length > 0 ? `, rejected: ${this.rejected.join('; ')}` : '';
    return `${this.transport} at offset ${this.offset}, ${this.subscribes} subscribes, nodes ${this.nodes.join(',')}${rejected}`;
  }

  /** Ends the current connection; the client reconnects and resumes (the proxy picks the node). */
  drop(): void {
    this.abort?.abort();
    this.ws?.terminate();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.drop();
    await this.loop;
  }

  private accept(offset: number, epoch: string, data: unknown): void {
    if (this.epoch !== undefined && epoch !== this.epoch) this.errors.push(`epoch ${epoch} after ${this.epoch}`);
    if (offset !== this.offset + 1) this.errors.push(`offset ${offset} after ${this.offset}`);
    this.epoch = epoch;
    this.offset = offset;
    this.got.push({ offset, data, at: performance.now() });
  }

  /** A stream became active: `{epoch, offset, recovered?}`, the missed publications come with it or after. */
  private subscribed(r: { epoch: string; offset: number; recovered?: boolean }): void {
    if (this.subscribes > 0 && r.recovered !== true)
      this.errors.push(`resumed at ${this.offset} with recovered: ${String(r.recovered)}`);
    if (this.epoch === undefined) {
      this.epoch = r.epoch;
      this.offset = r.offset;
    } else if (r.epoch !== this.epoch) this.errors.push(`subscribed with epoch ${r.epoch} after ${this.epoch}`);
    this.subscribes += 1;
    this.subscribedAt.push(performance.now());
  }

  private onConnected(client: unknown): void {
    if (typeof client === 'string') this.nodes.push(nodeOf(client));
  }

  private session(): Promise<void> {
    if (this.transport === 'ws') return this.wsSession();
    return this.httpSession();
  }

  private wsSession(): Promise<void> {
    const ws = new WebSocket(`${this.base.replace(/^http/, 'ws')}/ws`);
    this.ws = ws;
    return new Promise<void>((resolve) => {
      let opened = false;
      ws.on('error', (err) => {
        if (!opened && !this.stopped) this.rejected.push(`/ws: ${err.message}`);
      });
      ws.on('close', () => {
        this.wake();
        resolve();
      });
      ws.on('open', () => {
        opened = true;
        const cmd: Frame = { id: 1, cmd: 'subscribe', channel: this.channel };
        if (this.epoch !== undefined) cmd['since'] = { epoch: this.epoch, offset: this.offset };
        ws.send(JSON.stringify(cmd));
      });
      ws.on('message', (raw: Buffer) => {
        for (const line of raw.toString('utf8').split('\n')) {
          if (line === '') continue;
          const f = JSON.parse(line) as Frame;
          if (f['push'] === 'connected') this.onConnected(f['client']);
          else if (f['id'] === 1) {
            if (f['error'] !== undefined) this.errors.push(`subscribe refused: ${JSON.stringify(f['error'])}`);
            else {
              const r = f['result'];
              const epoch = this.epoch;
              this.subscribed(r);
              for (const p of r.publications as { offset: number; data: unknown }[])
                this.accept(p.offset, epoch ?? r.epoch, p.data);
            }
          } else if (f['push'] === 'pub') this.accept(f['offset'], f['epoch'], f['data']);
        }
        this.wake();
      });
    });
  }

  private async httpSession(): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    const q = new URLSearchParams({ channel: this.channel });
    const headers: Record<string, string> = {};
    if (this.epoch !== undefined) {
      if (this.transport === 'sse') headers['Last-Event-ID'] = `${this.channel};${this.epoch};${this.offset}`;
      else q.set('cursor', `${this.epoch}:${this.offset}`);
    }
    const path = this.transport === 'sse' ? 'sse' : 'stream';
    try {
      const res = await fetch(`${this.base}/${path}?${q.toString()}`, { headers, signal: abort.signal });
      if (res.status !== 200 || res.body === null) {
        this.rejected.push(`/${path} answered ${res.status}`);
        await res.arrayBuffer().catch(() => undefined);
        return;
      }
      const feed = this.transport === 'sse' ? this.sseFeed() : this.ndjsonFeed();
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        feed(decoder.decode(chunk, { stream: true }));
        this.wake();
      }
    } catch {
      // the connection ended (node killed, proxy cut it, or drop()/stop()): reconnect
    } finally {
      this.wake();
    }
  }

  private sseFeed(): (text: string) => void {
    const parser = new SseParser((e) => {
      const d = JSON.parse(e.data) as Frame;
      if (e.event === 'connected') this.onConnected(d['client']);
      else if (e.event === 'subscribed') this.subscribed(d as { epoch: string; offset: number; recovered?: boolean });
      else if (e.event === 'message') this.accept(d['offset'], d['epoch'], d['data']);
      else if (e.event === 'unsubscribed') this.errors.push(`unsubscribed: ${e.data}`);
    });
    return (text) => parser.feed(text);
  }

  private ndjsonFeed(): (text: string) => void {
    const lines = new LineSplitter((line) => {
      const f = JSON.parse(line) as Frame;
      if (f['push'] === 'connected') this.onConnected(f['client']);
      else if (f['push'] === 'subscribed') {
        const epoch = this.epoch;
        this.subscribed(f as unknown as { epoch: string; offset: number; recovered?: boolean });
        for (const p of (f['publications'] ?? []) as { offset: number; data: unknown }[])
          this.accept(p.offset, epoch ?? f['epoch'], p.data);
      } else if (f['push'] === 'pub') this.accept(f['offset'], f['epoch'], f['data']);
      else if (f['push'] === 'unsubscribed') this.errors.push(`unsubscribed: ${line}`);
    });
    return (text) => lines.feed(text);
  }
}
